"""NanumGothic for the product's HTML reports: the font embedded in the page itself.

A browser without a CJK font shows Hangul as empty boxes, so a report names no system font:
``embedded_font_css`` returns an ``@font-face`` rule whose ``data:`` URL holds the regular
NanumGothic that koreanize-matplotlib ships (SIL OFL; its bold face is the visible label's,
``likeness.provenance.visible_label``), cut down to the characters the page uses: a few tens of
KB instead of 4.7 MB.

Example:
    >>> css = embedded_font_css("AI 생성 · AI-generated")
    >>> css.startswith("@font-face{font-family:'NanumGothic'")
    True
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

#: Regular NanumGothic beside the label's bold face in koreanize-matplotlib.
REPORT_FONT_FILE = "NanumGothic.ttf"
REPORT_FONT_FAMILY = "NanumGothic"


def report_font_path() -> Path:
    """The regular NanumGothic TTF, found where the label font is (bold when it is missing)."""
    from likeness.assets import check_asset_file
    from likeness.errors import ProvenanceError
    from likeness.provenance.visible_label import label_font_path

    bold = label_font_path()
    regular = bold.with_name(REPORT_FONT_FILE)
    return check_asset_file("report-font", regular, error=ProvenanceError) if regular.is_file() else bold


def embedded_font_css(text: str, *, family: str = REPORT_FONT_FAMILY) -> str:
    """An ``@font-face`` rule for ``family`` embedding NanumGothic with the glyphs of ``text``
    (every character the page shows) as a WOFF ``data:`` URL."""
    data = base64.b64encode(font_subset(report_font_path(), text)).decode("ascii")
    return (
        f"@font-face{{font-family:'{family}';src:url(data:font/woff;base64,{data}) format('woff');"
        "font-weight:normal;font-style:normal}"
    )


def font_subset(path: Path, text: str, *, flavor: str = "woff") -> bytes:
    """The font at ``path`` cut down to the glyphs of ``text`` (plus space and '?'), as
    ``flavor`` (``woff``, or ``None`` for a plain TTF)."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.flavor = flavor
    options.notdef_outline = True
    options.name_IDs = ["*"]
    logger = logging.getLogger("fontTools.subset")
    level = logger.level
    logger.setLevel(logging.ERROR)  # it names each hinting table it drops
    try:
        with TTFont(str(path), lazy=True) as font:
            subsetter = subset.Subsetter(options)
            subsetter.populate(text="".join(sorted(set(text) | set(" ?"))))
            subsetter.subset(font)
            font.flavor = flavor
            buffer = io.BytesIO()
            font.save(buffer)
    finally:
        logger.setLevel(level)
    return buffer.getvalue()
