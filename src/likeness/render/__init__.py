"""likeness.render: swap and refine faces in video and images, output only through the labelled writer.

Public API: ``render_media``, ``RenderOptions``, ``RefineOptions``, ``RenderReport``,
``FrameRenderer``; refinement functions live in ``colour``, ``mask``, ``blend``, ``smoothing``,
``gating`` and ``quality``.
"""

from likeness.render.frame import FrameRenderer, RefineOptions
from likeness.render.pipeline import RenderOptions, render_media
from likeness.render.report import RenderReport

__all__ = ["FrameRenderer", "RefineOptions", "RenderOptions", "RenderReport", "render_media"]
