"""Perceptual hashes for grouping reposts: imagehash's DCT pHash of a picture and of its mirror.

A re-upload is rescaled, re-encoded, cropped a little or mirrored; its pHash stays within a few
bits of the original's, except for the mirror, whose pHash is unrelated. So each file gets the
hash of its picture and of the picture flipped left-right: a mirrored copy's hash is close to the
original's mirror hash. A clip is hashed at a few frames sampled evenly over its length, not at
its keyframes: a re-encode places keyframes elsewhere, while the same instants of the same clip
still hash alike.

Example::

    hashes = picture_hashes(rgb)               # PictureHashes(phash='c3…', mirror='9a…')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from likeness.media.video.budget import DecodeLimits

#: frames hashed per clip, spread over its length
CLIP_FRAMES = 4


@dataclass(frozen=True)
class PictureHashes:
    phash: str  # 16 hex digits (64 bits)
    mirror: str


def picture_hashes(rgb: np.ndarray) -> PictureHashes:
    """pHash of ``rgb`` (uint8, H×W×3) and of its left-right mirror."""
    import imagehash
    from PIL import Image

    from likeness.media import require_rgb

    rgb = require_rgb(rgb)
    return PictureHashes(
        phash=str(imagehash.phash(Image.fromarray(rgb))),
        mirror=str(imagehash.phash(Image.fromarray(np.ascontiguousarray(rgb[:, ::-1])))),
    )


def file_hashes(path: Path, media_type: str | None, limits: DecodeLimits | None = None) -> list[PictureHashes]:
    """Hashes of an image, or of up to ``CLIP_FRAMES`` sampled frames of a clip; empty when the
    file cannot be decoded (its verdict already says why)."""
    from likeness.errors import MediaError

    try:
        if media_type == "video":
            from likeness.media.video import sample_video_frames

            every = 1.0
            return [
                picture_hashes(frame.rgb)
                for frame in sample_video_frames(
                    path, every_s=every, max_frames=CLIP_FRAMES, max_side=256, autorotate=True, limits=limits
                )
            ]
        from likeness.media import read_image

        return [picture_hashes(read_image(path))]
    except (MediaError, OSError, ValueError):
        return []


def distance(a: str, b: str) -> int:
    """Hamming distance between two hex pHashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
