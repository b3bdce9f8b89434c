"""Sparse video sampling (`sample_video_frames`): targets spread over the clip, frames identical
to a full decode at the same times, seeking across groups of pictures, keyframes-only mode,
and bad or broken files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from likeness.errors import MediaError
from likeness.media import iter_video_frames, sample_times, sample_video_frames, synthetic

FPS = 25
SECONDS = 6.0
SIZE = (192, 128)
GOP = 25  # one keyframe per second


def write_gop_clip(path: Path, *, seconds: float, fps: int, gop: int, bframes: int = 2) -> Path:
    """An H.264 clip with a keyframe every ``gop`` frames and B-frames (so non-reference
    frames exist), animating the astronaut with seeded head motion."""
    n_frames = int(round(seconds * fps))
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(
            "libx264",
            rate=fps,
            options={
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}",
                "preset": "veryfast",
                "crf": "23",
            },
        )
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for rgb in synthetic.animate_portrait(synthetic.astronaut(), n_frames=n_frames, size=SIZE, seed=7):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.is_keyframe and p.size)


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gop_clip(tmp_path_factory.mktemp("sampling") / "gop.mp4", seconds=SECONDS, fps=FPS, gop=GOP)


@pytest.fixture(scope="module")
def long_gop_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One keyframe for the whole clip, like the x264 default (keyint 250) on short clips.
    return write_gop_clip(tmp_path_factory.mktemp("sampling") / "long_gop.mp4", seconds=SECONDS, fps=FPS, gop=250)


@pytest.fixture(scope="module")
def full_decode(gop_clip: Path) -> dict[float, np.ndarray]:
    return {round(f.pts_s, 4): f.rgb for f in iter_video_frames(gop_clip)}


def test_sample_times_spread_over_the_clip() -> None:
    assert sample_times(10.0) == [float(k) for k in range(10)]
    assert sample_times(10.5, every_s=2.0) == [0.0, 2.0, 4.0, 6.0, 8.0]
    long = sample_times(600.0, max_frames=16)
    assert len(long) == 16 and long[1] == pytest.approx(37.5) and long[-1] == pytest.approx(562.5)
    assert sample_times(0.4) == [0.0]  # shorter than one interval: the first frame
    assert sample_times(0.0) == [0.0] and sample_times(float("nan")) == [0.0]


@pytest.mark.parametrize("clip_name", ["gop_clip", "long_gop_clip"])
def test_sampled_frames_equal_a_full_decode_at_the_same_times(
    clip_name: str, request: pytest.FixtureRequest, full_decode: dict[float, np.ndarray]
) -> None:
    clip = request.getfixturevalue(clip_name)
    reference = full_decode if clip_name == "gop_clip" else {round(f.pts_s, 4): f.rgb for f in iter_video_frames(clip)}
    frames = list(sample_video_frames(clip, every_s=1.0))
    assert [f.index for f in frames] == list(range(len(frames)))
    times = [f.pts_s for f in frames]
    assert len(frames) == 6
    # Each target t gets the first decoded frame at or just after t (non-reference frames are
    # not decoded, so it may be a frame or two later), in increasing time order.
    for target, got in zip(range(6), times, strict=True):
        assert target - 0.5 / FPS <= got <= target + 3.0 / FPS, (target, got)
    assert times == sorted(times)
    for frame in frames:
        # Seeking and skipping non-reference frames must not change a single pixel.
        np.testing.assert_array_equal(frame.rgb, reference[round(frame.pts_s, 4)])


def test_at_most_max_frames_spread_evenly(gop_clip: Path) -> None:
    frames = list(sample_video_frames(gop_clip, every_s=0.1, max_frames=4))
    assert len(frames) == 4
    np.testing.assert_allclose([f.pts_s for f in frames], [0.0, 1.5, 3.0, 4.5], atol=3.0 / FPS)


def test_keyframes_only_yields_keyframes(
    gop_clip: Path, long_gop_clip: Path, full_decode: dict[float, np.ndarray]
) -> None:
    keyframes = keyframe_times(gop_clip)
    assert len(keyframes) == 6
    frames = list(sample_video_frames(gop_clip, every_s=1.0, keyframes_only=True))
    np.testing.assert_allclose([f.pts_s for f in frames], keyframes, atol=1e-6)
    for frame in frames:
        np.testing.assert_array_equal(frame.rgb, full_decode[round(frame.pts_s, 4)])
    # A single group of pictures: one keyframe stands for every target, yielded once.
    only = list(sample_video_frames(long_gop_clip, every_s=1.0, keyframes_only=True))
    assert [f.pts_s for f in only] == [0.0]


def test_max_side_and_shapes(gop_clip: Path) -> None:
    frames = list(sample_video_frames(gop_clip, every_s=2.0, max_side=96))
    assert len(frames) == 3
    assert all(f.rgb.shape == (64, 96, 3) and f.rgb.dtype == np.uint8 for f in frames)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthetic.write_corrupt_variants(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("zero_byte_mp4", "empty"),
        ("malformed_mp4", ""),
        ("audio_only_m4a", "no video stream"),
        ("random_bytes_jpg", ""),
    ],
)
def test_unreadable_files_raise_media_error_naming_the_file(
    bad_files: dict[str, Path], name: str, fragment: str
) -> None:
    with pytest.raises(MediaError) as caught:
        list(sample_video_frames(bad_files[name]))
    assert str(bad_files[name]) in str(caught.value)
    assert fragment in caught.value.reason


def test_truncated_clip_yields_frames_then_raises(bad_files: dict[str, Path]) -> None:
    got = []
    with pytest.raises(MediaError) as caught:
        for frame in sample_video_frames(bad_files["truncated_mp4"], every_s=0.25):
            got.append(frame.pts_s)
    assert got, "frames before the damage must be yielded"
    assert got[-1] < 2.0
    assert "truncated" in caught.value.reason or "decoding stopped" in caught.value.reason


def test_missing_file_and_bad_arguments(tmp_path: Path, gop_clip: Path) -> None:
    with pytest.raises(MediaError, match="file not found"):
        sample_video_frames(tmp_path / "nope.mp4")
    for kwargs in ({"every_s": 0}, {"every_s": float("inf")}, {"max_frames": 0}, {"max_side": 1}):
        with pytest.raises(MediaError):
            sample_video_frames(gop_clip, **kwargs)
    with pytest.raises(MediaError, match="too large"):
        list(sample_video_frames(gop_clip, max_pixels=100))


def _ts_packets(pid: int, section: bytes) -> list[bytes]:
    """A PSI section (pointer field first) cut into 188-byte transport packets on ``pid``."""
    data, packets, counter = b"\x00" + section, [], 0
    while data:
        flags = 0x40 if not packets else 0
        head = bytes([0x47, flags | (pid >> 8), pid & 0xFF, 0x10 | (counter & 0xF)])
        packets.append(head + data[:184].ljust(184, b"\xff"))
        data, counter = data[184:], counter + 1
    return packets


def _psi_section(table_id: int, table_ext: int, body: bytes) -> bytes:
    # MPEG's CRC-32 (not zlib's: no reflection, no final xor)
    length = 5 + len(body) + 4
    section = bytes([table_id, 0xB0 | (length >> 8), length & 0xFF, table_ext >> 8, table_ext & 0xFF, 0xC1, 0, 0])
    section += body
    crc = 0xFFFFFFFF
    for byte in section:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return section + crc.to_bytes(4, "big")


def test_a_transport_stream_declaring_more_streams_than_ffmpeg_takes_says_so(gop_clip: Path, tmp_path: Path) -> None:
    """Trial 12: a transport stream whose tables declare 1,200 streams (8 programs of 150) before a
    real clip was refused with FFmpeg's "Cannot allocate memory", which reads as the machine
    running out of memory; FFmpeg stops at its limit of streams per file."""
    programs = [(1 + n, 0x20 + n) for n in range(8)]
    packets = _ts_packets(
        0,
        _psi_section(
            0x00, 1, b"".join(n.to_bytes(2, "big") + (0xE000 | pid).to_bytes(2, "big") for n, pid in programs)
        ),
    )
    for n, pid in programs:
        streams = b"".join(
            bytes([0x02, 0xE0 | (es >> 8), es & 0xFF, 0xF0, 0x00])
            for es in range(0x100 + n * 150, 0x100 + (n + 1) * 150)
        )
        packets += _ts_packets(pid, _psi_section(0x02, n, bytes([0xFF, 0xFF, 0xF0, 0x00]) + streams))
    with av.open(str(gop_clip)) as source, av.open(str(tmp_path / "clip.ts"), "w", format="mpegts") as output:
        stream = output.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for frame in source.decode(video=0):
            output.mux(stream.encode(frame.reformat(width=320, height=240, format="yuv420p")))
        output.mux(stream.encode(None))
    crafted = tmp_path / "many_streams.ts"
    crafted.write_bytes(b"".join(packets) + (tmp_path / "clip.ts").read_bytes())
    with pytest.raises(MediaError) as refused:
        list(sample_video_frames(crafted, every_s=0.5))
    said = str(refused.value)
    assert str(crafted) in said and "Cannot allocate memory" not in said, said
    assert "more streams than the decoder takes" in said, said
