"""A 128 px model end to end: trained a few iterations, exported, loaded and rendered onto a frame.

The render fixtures train at 64 px; ``workspace_with_128_model`` (tests/render/conftest.py) trains
``df_tiny`` at 128 px with the ``cpu-overnight-128`` recipe's ``-d`` decoder, so the renderer's crop size follows the card's
``resolution`` rather than assuming 64.
"""

from __future__ import annotations

import numpy as np

from likeness.faces.detect import FaceDetector
from likeness.faces.identity import IDENTITY_THRESHOLD, FaceEmbedder
from likeness.media.synthetic import grace_hopper
from likeness.render.frame import FrameRenderer
from likeness.train.swap_model import SwapModel

RESOLUTION = 128  # workspace_with_128_model's (tests/render/conftest.py)


def test_a_128_px_model_renders_a_frame_at_its_own_resolution(workspace_with_128_model, monkeypatch):
    from likeness.train import load_swap_model

    workspace, model_dir = workspace_with_128_model
    fed: list[tuple[int, ...]] = []
    original = SwapModel.run

    def run(self, faces: np.ndarray):
        fed.append(faces.shape)
        rgb, mask = original(self, faces)
        assert rgb.shape[-2:] == (RESOLUTION, RESOLUTION) and mask.shape[-2:] == (RESOLUTION, RESOLUTION)
        return rgb, mask

    monkeypatch.setattr(SwapModel, "run", run)
    authz = workspace.policy.authorize("mina", "music_video", "studio")
    model = load_swap_model(workspace, model_dir, authz=authz, threads=1)
    renderer = FrameRenderer(
        model,
        FaceDetector(mode="image"),
        FaceEmbedder(),
        workspace.registry.reference_embeddings("jun"),
        authz=authz,
        release=workspace.policy.authorize_release("jun", "studio"),
        identity_threshold=IDENTITY_THRESHOLD,
    )
    frame = grace_hopper()
    out, outcomes = renderer.process(frame, frame_index=0, t_s=0.0)
    assert [o.swapped for o in outcomes] == [True]
    assert fed and all(shape[1:] == (3, RESOLUTION, RESOLUTION) for shape in fed)
    assert out.shape == frame.shape and not np.array_equal(out, frame)
