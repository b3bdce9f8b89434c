"""Video and audio codec I/O through PyAV: probe, stream frames, encode H.264 + copied audio.

Conventions:

* Frames are ``uint8`` RGB ``(H, W, 3)`` *as stored* in the file. Phone footage often stores
  landscape pixels plus a display rotation; :attr:`VideoInfo.rotation` gives it (degrees,
  counter-clockwise, one of 0/90/180/270) and ``iter_video_frames(..., autorotate=True)`` turns
  frames upright (then pass ``rotation=0`` to :class:`VideoEncoder`). Without autorotate, pass
  ``rotation=info.rotation`` to the encoder to keep the original display orientation.
* YUV -> RGB uses the matrix the stream declares (BT.709 when it declares none and is HD, else
  BT.601); the encoder converts RGB -> YUV with BT.709 (limited range) and tags the stream so.
* Timestamps are seconds (``pts_s``) on the source stream's clock.
* Every read is bounded per file (:class:`DecodeLimits`: what the container may declare, and
  what sampling may decode) and takes an ``interrupt`` hook, called between packets, that
  stops it by raising (a cancelled job, a request past its deadline).

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from likeness.media import probe_video, iter_video_frames, VideoEncoder
    >>> from likeness.media.synthetic import grace_hopper, write_clip
    >>> folder = Path(tempfile.mkdtemp())
    >>> clip = write_clip(folder / "clip.mp4", grace_hopper(), seconds=1.0, size=(320, 180))
    >>> info = probe_video(clip)
    >>> info.width, info.height, info.frame_count
    (320, 180, 25)
    >>> with VideoEncoder(folder / "out.mp4", width=info.width, height=info.height,
    ...                   fps=info.frame_rate, audio_source=clip) as enc:
    ...     for frame in iter_video_frames(clip):
    ...         enc.write(frame.rgb, pts_s=frame.pts_s)
    >>> probe_video(folder / "out.mp4").frame_count
    25
"""

from likeness.media.video.budget import DecodeLimits, Interrupt
from likeness.media.video.colour import ColourTags
from likeness.media.video.decode import DEFAULT_MAX_VIDEO_PIXELS, VideoFrame, VideoInfo, iter_video_frames, probe_video
from likeness.media.video.deinterlace import deinterlacer_available
from likeness.media.video.encode import (
    COPYABLE_AUDIO_CODECS,
    VideoEncoder,
    transcode,
)
from likeness.media.video.sampling import sample_times, sample_video_frames

__all__ = [
    "deinterlacer_available",
    "COPYABLE_AUDIO_CODECS",
    "DEFAULT_MAX_VIDEO_PIXELS",
    "ColourTags",
    "DecodeLimits",
    "Interrupt",
    "VideoEncoder",
    "VideoFrame",
    "VideoInfo",
    "iter_video_frames",
    "probe_video",
    "sample_times",
    "sample_video_frames",
    "transcode",
]
