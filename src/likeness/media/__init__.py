"""likeness.media: the only codec I/O in the product (images via Pillow, video/audio via PyAV).

Every failure a user can cause raises :class:`likeness.errors.MediaError` naming the file and
the reason. Generated test and demo media live in :mod:`likeness.media.synthetic`.
"""

from likeness.media.images import (
    DEFAULT_MAX_PIXELS,
    encode_image,
    read_image,
    read_image_bytes,
    require_rgb,
    write_image,
)
from likeness.media.video import (
    COPYABLE_AUDIO_CODECS,
    ColourTags,
    DecodeLimits,
    VideoEncoder,
    VideoFrame,
    VideoInfo,
    iter_video_frames,
    probe_video,
    sample_times,
    sample_video_frames,
    transcode,
)

__all__ = [
    "COPYABLE_AUDIO_CODECS",
    "DEFAULT_MAX_PIXELS",
    "ColourTags",
    "DecodeLimits",
    "VideoEncoder",
    "VideoFrame",
    "VideoInfo",
    "encode_image",
    "iter_video_frames",
    "probe_video",
    "read_image",
    "read_image_bytes",
    "require_rgb",
    "sample_times",
    "sample_video_frames",
    "transcode",
    "write_image",
]
