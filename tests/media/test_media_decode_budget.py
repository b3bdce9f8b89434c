"""Decoding one video is bounded (trial finding 3): a container declaring more than its bytes can
hold is refused before decoding, sampling stops when its frame or time budget is spent, and the
caller's interrupt stops any read within a frame. Real footage is never refused."""

from __future__ import annotations

import threading
import time

import pytest

from likeness.config import Settings
from likeness.errors import MediaError
from likeness.media import DecodeLimits, iter_video_frames, sample_video_frames
from likeness.media.synthetic import grace_hopper, write_clip
from likeness.media.video.budget import container_refusal

from .crafted_clips import skip_frame_clip


class Stopped(Exception):
    """What the test's interrupt raises (a job's cancellation, in the service)."""


def stop_after(seconds: float):
    """An interrupt that raises ``Stopped`` once ``seconds`` have passed (set by another thread,
    as a worker's heartbeat or a request's deadline would)."""
    asked = threading.Event()
    threading.Timer(seconds, asked.set).start()

    def interrupt() -> None:
        if asked.is_set():
            raise Stopped("asked to stop")

    return interrupt


@pytest.fixture(scope="module")
def crafted_1080p(tmp_path_factory):
    """20,000 frames of 1080p in 600 KB: decoding them all takes tens of seconds."""
    return skip_frame_clip(tmp_path_factory.mktemp("crafted") / "skip.mp4", 20_000)


def test_a_clip_with_more_frames_than_its_bytes_hold_is_refused_before_decoding(tmp_path):
    # The trial's file at a smaller scale: 40,000 frames of 30 bytes (1.2 MB); a full decode
    # would take about a minute.
    crafted = skip_frame_clip(tmp_path / "skip.mp4", 40_000, size=(320, 180))
    started = time.monotonic()
    for read in (sample_video_frames, iter_video_frames):
        with pytest.raises(MediaError, match="declares 40,000 frames in .* too many frames for its size") as caught:
            next(iter(read(crafted)))
        assert caught.value.path == str(crafted)
    assert time.monotonic() - started < 2


def test_the_default_limits_never_refuse_real_footage():
    limits = DecodeLimits.of(Settings())
    assert limits == DecodeLimits()
    real = {
        # 10 minutes at 60 fps, however small (a still picture with music)
        "10 min 60 fps in 1 MB": (36_000, 600.0, 1_000_000),
        "10 min 60 fps phone clip": (36_000, 600.0, 450_000_000),
        "2 h concert film at 30 fps": (216_000, 7_200.0, 1_500_000_000),
        "4 h stream at 60 fps": (864_000, 14_400.0, 2_000_000_000),
        "1 h at 25 fps, mostly static (keyframes every 10 s)": (90_000, 3_600.0, 20_000_000),
    }
    for name, (frames, seconds, size) in real.items():
        assert container_refusal(declared_frames=frames, duration_s=seconds, size_bytes=size, limits=limits) is None, (
            name
        )
    assert "too long" in container_refusal(declared_frames=None, duration_s=5 * 3600.0, size_bytes=10**9, limits=limits)
    assert "the limit is 864,000" in container_refusal(
        declared_frames=900_000, duration_s=None, size_bytes=10**10, limits=limits
    )
    # The trial's file: 200,000 frames of 1080p in 6 MB
    assert "too many frames for its size" in container_refusal(
        declared_frames=200_000, duration_s=8_000.0, size_bytes=6_000_000, limits=limits
    )


def test_sampling_stops_when_its_frame_budget_is_spent(crafted_1080p):
    # Under the size check (20,000 frames), so only the budget inside the loop can stop it.
    limits = DecodeLimits(sample_max_frames=500)
    started = time.monotonic()
    sampled = []
    with pytest.raises(MediaError, match="more than 500 frames decoded, the limit for one file") as caught:
        for frame in sample_video_frames(crafted_1080p, limits=limits):
            sampled.append(frame)
    assert "video_sample_max_frames" in caught.value.reason
    assert [f.pts_s for f in sampled] == [0.0]  # the frames before the budget ran out are kept
    assert time.monotonic() - started < 5


def test_sampling_stops_when_its_time_budget_is_spent(crafted_1080p):
    limits = DecodeLimits(sample_max_decode_s=0.5)
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"decoding budget spent: .* the limit for one file is 0.5 s"):
        list(sample_video_frames(crafted_1080p, limits=limits))
    assert time.monotonic() - started < 3


def test_the_time_a_caller_holds_a_frame_is_not_decoding_time(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", grace_hopper(), seconds=4.0, size=(160, 90))
    limits = DecodeLimits(sample_max_decode_s=0.5)
    times = []
    for frame in sample_video_frames(clip, limits=limits):
        time.sleep(0.25)  # face analysis of the frame, say: 1 s in all, twice the budget
        times.append(round(frame.pts_s))
    assert times == [0, 1, 2, 3]


@pytest.mark.parametrize("read", [sample_video_frames, iter_video_frames])
def test_an_interrupt_stops_a_read_within_a_frame(crafted_1080p, read):
    started = time.monotonic()
    with pytest.raises(Stopped):  # the caller's own exception, not a MediaError
        list(read(crafted_1080p, interrupt=stop_after(0.3)))
    assert time.monotonic() - started < 1.5


def test_a_full_read_of_a_stream_declaring_no_count_stops_at_the_frame_limit(tmp_path):
    # A raw H.264 stream declares neither a frame count nor a duration: only the loop can count.
    raw = skip_frame_clip(tmp_path / "skip.h264", 3_000, size=(320, 180), fmt="h264")
    read = []
    with pytest.raises(MediaError, match="more than 100 frames decoded, the limit for one file .video_max_frames."):
        for frame in iter_video_frames(raw, limits=DecodeLimits(max_frames=100)):
            read.append(frame.index)
    assert read == list(range(100))
