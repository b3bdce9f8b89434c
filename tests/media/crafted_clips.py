"""Videos crafted in the test. ``skip_frame_clip``, a hostile one: one keyframe, then thousands
of copies of one tiny P-frame; every copy is a reference frame, so even sparse sampling decodes
them all, and the file is a few bytes a frame. ``with_display_matrix``: an MP4 that a player
shows turned or mirrored (phone and front-camera footage). ``interlaced_clip``: 1080i-style
footage, each frame woven from two instants, and ``comb_energy``, how much it combs."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np


def skip_frame_clip(
    path: Path, frames: int, *, size: tuple[int, int] = (1920, 1080), fmt: str | None = None, padding: int = 0
) -> Path:
    """Write ``frames`` frames at 25 fps to ``path``: an x264 keyframe of a flat grey picture,
    then its next P-frame (about 25 bytes, 'nothing changed') repeated. ``fmt`` names the
    container when the suffix does not (``"h264"``: a raw stream that declares no frame count).
    ``padding`` > 0 appends a filler NAL unit of that many bytes to each P-frame (the decoder
    ignores it): a file big enough for its frame count, which only the decode budget stops."""
    width, height = size
    encoded = io.BytesIO()
    with av.open(encoded, "w", format="mp4") as encoder:
        stream = encoder.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One group of pictures, no B-frames: every frame after the first is a P-frame.
        stream.options = {"preset": "ultrafast", "g": "100000", "bf": "0", "keyint_min": "100000", "sc_threshold": "0"}
        grey = np.full((height, width, 3), 120, np.uint8)
        for pts in range(4):
            frame = av.VideoFrame.from_ndarray(grey, format="rgb24")
            frame.pts = pts
            for packet in stream.encode(frame):
                encoder.mux(packet)
        for packet in stream.encode(None):
            encoder.mux(packet)
    encoded.seek(0)
    with av.open(encoded) as source:
        template = source.streams.video[0]
        packets = [p for p in source.demux(template) if p.size]
        step = packets[1].pts - packets[0].pts
        keyframe, repeated = bytes(packets[0]), bytes(packets[-1])
        if padding > 0 and fmt is None:
            # MP4 holds length-prefixed NAL units: type 12 (filler data), 0xFF bytes, stop bit.
            filler = b"\x0c" + b"\xff" * max(0, padding - 6) + b"\x80"
            repeated += len(filler).to_bytes(4, "big") + filler
        with av.open(str(path), "w", format=fmt) as out:
            stream = out.add_stream_from_template(template)
            for number in range(frames):
                packet = av.Packet(keyframe if number == 0 else repeated)
                packet.pts = packet.dts = number * step
                packet.time_base = template.time_base
                packet.stream = stream
                packet.is_keyframe = number == 0
                out.mux(packet)
    return path


def with_display_matrix(path: Path, a: int, b: int, c: int, d: int) -> Path:
    """``path`` (an MP4 of one video track, no rotation) with its track header's matrix set to
    [[a, b], [c, d]] (units of 1), with the translation that keeps the shown picture at the
    origin (FFmpeg's autorotate reads only the 2x2 part). Rewritten in place; returns ``path``."""
    data = path.read_bytes()
    identity = struct.pack(">9i", 1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)
    at = data.index(identity, data.index(b"tkhd"))
    width, height = (size >> 16 for size in struct.unpack(">2I", data[at + 36 : at + 44]))
    shift_x = -(min(0, a) * width + min(0, c) * height)
    shift_y = -(min(0, b) * width + min(0, d) * height)
    matrix = struct.pack(">9i", a << 16, b << 16, 0, c << 16, d << 16, 0, shift_x << 16, shift_y << 16, 1 << 30)
    path.write_bytes(data[:at] + matrix + data[at + len(identity) :])
    return path


def interlaced_clip(path: Path, instants: list[np.ndarray], *, top_first: bool = True, fps: int = 25) -> Path:
    """An interlaced H.264 MP4 at ``fps`` frames a second: frame ``k`` weaves ``instants[2k]``
    (the field shown first: the top lines when ``top_first``) with ``instants[2k + 1]``, as a
    camera shooting 50 fields a second stores them. The stream declares its field order."""
    height, width = instants[0].shape[:2]
    first, second = (0, 1) if top_first else (1, 0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264",
            rate=fps,
            options={
                "flags": "+ilme+ildct",
                "x264-params": "interlaced=1:tff=1" if top_first else "interlaced=1:bff=1",
                "crf": "12",
            },
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for early, late in zip(instants[0::2], instants[1::2], strict=True):
            woven = early.copy()
            woven[second::2] = late[second::2]
            woven[first::2] = early[first::2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(woven, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def comb_energy(rgb: np.ndarray) -> float:
    """Mean magnitude of the vertical [1, -2, 1] filter on luma: large where lines alternate
    between two instants (combing), small on a progressive picture."""
    luma = rgb.astype(np.float32).mean(axis=2)
    return float(np.abs(luma[:-2] - 2 * luma[1:-1] + luma[2:]).mean())
