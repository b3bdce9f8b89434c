"""Video: probe, streaming decode with start/step, encoding (odd sizes, rotation, timestamps,
audio copy and re-encode), atomic output, and bad or broken files."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from likeness.errors import MediaError
from likeness.media import (
    ColourTags,
    VideoEncoder,
    iter_video_frames,
    probe_video,
    synthetic,
    transcode,
)
from likeness.media.video.decode import disputed_views, first_frame_shown, show_as_displayed
from tests.media.crafted_clips import with_display_matrix

SIZE = (320, 180)
FPS = 25
SECONDS = 1.2
N_FRAMES = 30
AAC_FRAME_S = 1024 / synthetic.AUDIO_SAMPLE_RATE


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    return synthetic.write_clip(folder / "mina.mp4", synthetic.astronaut(), seconds=SECONDS, fps=FPS, size=SIZE, seed=4)


@pytest.fixture(scope="module")
def source_frames() -> list[np.ndarray]:
    return list(synthetic.animate_portrait(synthetic.astronaut(), n_frames=N_FRAMES, size=SIZE, seed=4))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthetic.write_corrupt_variants(tmp_path_factory.mktemp("bad"))


def _audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(p.pts, bytes(p)) for p in container.demux(stream) if p.size]


def _audio_duration_s(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base)


def test_a_written_video_gets_the_umask_permissions(tmp_path: Path) -> None:
    import os

    previous = os.umask(0o027)
    try:
        written = synthetic.write_clip(
            tmp_path / "shared.mp4", synthetic.astronaut(), seconds=0.2, fps=10, size=(64, 64), with_audio=False
        )
    finally:
        os.umask(previous)
    assert written.stat().st_mode & 0o777 == 0o640


def test_probe_reports_the_clip(clip: Path) -> None:
    info = probe_video(clip)
    assert (info.width, info.height) == SIZE
    assert info.frame_rate == Fraction(FPS) and info.fps == pytest.approx(FPS)
    assert info.frame_count == N_FRAMES
    assert info.duration_s == pytest.approx(SECONDS, abs=1e-3)
    assert info.has_audio and info.audio_codec == "aac" and info.audio_sample_rate == 48_000
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.rotation == 0
    assert (info.colorspace, info.color_primaries, info.color_trc, info.color_range) == (
        "bt709",
        "bt709",
        "bt709",
        "tv",
    )
    assert info.display_size == SIZE


def test_frames_stream_in_order_and_match_the_source(clip: Path, source_frames: list[np.ndarray]) -> None:
    frames = list(iter_video_frames(clip))
    assert [f.index for f in frames] == list(range(N_FRAMES))
    np.testing.assert_allclose([f.pts_s for f in frames], np.arange(N_FRAMES) / FPS, atol=1e-6)
    for frame, original in zip(frames, source_frames, strict=True):
        assert frame.rgb.shape == (SIZE[1], SIZE[0], 3) and frame.rgb.dtype == np.uint8
        # CRF 20 on a detailed portrait: small error, and no colour-matrix shift in the mean.
        error = frame.rgb.astype(np.int16) - original
        assert np.abs(error).mean() < 6.0
        assert np.abs(error.mean(axis=(0, 1))).max() < 1.5


def test_start_and_step_match_a_full_decode(clip: Path) -> None:
    full = {f.index: f for f in iter_video_frames(clip)}
    picked = list(iter_video_frames(clip, start=13, step=4))
    assert [f.index for f in picked] == [13, 17, 21, 25, 29]
    for frame in picked:
        np.testing.assert_array_equal(frame.rgb, full[frame.index].rgb)
        assert frame.pts_s == pytest.approx(full[frame.index].pts_s)
    assert list(iter_video_frames(clip, start=N_FRAMES)) == []


def test_max_side_downscales(clip: Path) -> None:
    frame = next(iter_video_frames(clip, max_side=160))
    assert frame.rgb.shape == (90, 160, 3)


@pytest.mark.parametrize(("argument", "value"), [("start", -1), ("step", 0), ("max_side", 1)])
def test_bad_iteration_arguments(clip: Path, argument: str, value: int) -> None:
    with pytest.raises(MediaError, match=argument):
        iter_video_frames(clip, **{argument: value})


def test_transcode_keeps_frames_duration_and_copies_audio_unchanged(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.mp4"
    assert transcode(clip, out, crf=23) == N_FRAMES
    before, after = probe_video(clip), probe_video(out)
    assert after.frame_count == before.frame_count == N_FRAMES
    assert after.duration_s == pytest.approx(before.duration_s, abs=1e-3)
    assert abs(_audio_duration_s(out) - _audio_duration_s(clip)) <= AAC_FRAME_S
    assert abs(_audio_duration_s(out) - SECONDS) <= AAC_FRAME_S
    # Copied, not re-encoded: the compressed audio packets are byte-identical.
    assert _audio_packets(out) == _audio_packets(clip)


@pytest.mark.parametrize(("width", "height", "encoded"), [(641, 359, (642, 360)), (360, 640, (360, 640))])
def test_odd_and_vertical_sizes(tmp_path: Path, width: int, height: int, encoded: tuple[int, int]) -> None:
    frames = list(synthetic.animate_portrait(synthetic.grace_hopper(), n_frames=6, size=(width, height)))
    out = tmp_path / f"{width}x{height}.mp4"
    with VideoEncoder(out, width=width, height=height, fps=FPS) as encoder:
        for frame in frames:
            encoder.write(frame)
    assert encoder.encoded_size == encoded and encoder.padded == (encoded != (width, height))
    info = probe_video(out)
    assert (info.width, info.height) == encoded and info.frame_count == 6
    decoded = list(iter_video_frames(out))
    assert len(decoded) == 6
    for back, original in zip(decoded, frames, strict=True):
        # Padding is on the right/bottom: the content keeps its pixel coordinates.
        assert np.abs(back.rgb[:height, :width].astype(np.int16) - original).mean() < 6.0
    if encoder.padded:
        np.testing.assert_allclose(decoded[0].rgb[:height, -1], decoded[0].rgb[:height, -2], atol=12)


def test_rotation_metadata_round_trips(tmp_path: Path) -> None:
    stored = np.zeros((90, 160, 3), np.uint8)
    stored[:30, :40] = (255, 255, 255)  # marker in the stored top-left
    out = tmp_path / "phone.mp4"
    with VideoEncoder(out, width=160, height=90, fps=30, rotation=90) as encoder:
        for _ in range(3):
            encoder.write(stored)
    info = probe_video(out)
    assert info.rotation == 90 and info.display_size == (90, 160)
    as_stored = next(iter_video_frames(out))
    upright = next(iter_video_frames(out, autorotate=True))
    assert as_stored.rgb.shape == (90, 160, 3)
    assert upright.rgb.shape == (160, 90, 3)
    assert np.abs(upright.rgb.astype(np.int16) - np.rot90(stored, k=1)).mean() < 3.0
    # Transcode keeps the display rotation.
    transcode(out, tmp_path / "again.mp4")
    assert probe_video(tmp_path / "again.mp4").rotation == 90


def test_the_first_frame_of_an_open_file_is_shown_upright(tmp_path: Path) -> None:
    """Read from a handle (a caller that hashed the bytes reads those), turned as autorotate turns."""
    stored = np.zeros((90, 160, 3), np.uint8)
    stored[:30, :40] = (255, 255, 255)
    out = tmp_path / "phone.mp4"
    with VideoEncoder(out, width=160, height=90, fps=30, rotation=90) as encoder:
        for _ in range(3):
            encoder.write(stored)
    with out.open("rb") as handle:
        shown = first_frame_shown(handle, name=out, max_side=80)
    upright = next(iter_video_frames(out, autorotate=True, max_side=80)).rgb
    assert shown.shape == upright.shape == (80, 45, 3)
    assert np.array_equal(shown, upright)
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"not a video at all" * 100)
    with not_video.open("rb") as handle, pytest.raises(MediaError, match="notes.mp4"):
        first_frame_shown(handle, name=not_video)


@pytest.mark.parametrize(
    ("matrix", "shown"),
    [
        # a player (FFmpeg's autorotate) shows: mirrored left to right; upside down; turned and
        # mirrored (a transpose), both ways. Before, a mirror read as 180 degrees or nothing.
        ((-1, 0, 0, 1), lambda s: s[:, ::-1]),
        ((1, 0, 0, -1), lambda s: s[::-1]),
        ((0, 1, 1, 0), lambda s: s.transpose(1, 0, 2)),
        ((0, -1, -1, 0), lambda s: np.rot90(s, -1)[::-1]),
    ],
    ids=["mirrored", "flipped", "transposed", "anti-transposed"],
)
def test_a_display_matrix_that_mirrors_is_shown_as_players_show_it(tmp_path: Path, matrix, shown) -> None:
    stored = np.zeros((90, 160, 3), np.uint8)
    stored[:30, :40] = (255, 255, 255)  # marker in the stored top-left
    stored[60:, 100:] = (0, 0, 255)  # and blue lower right
    out = tmp_path / "selfie.mp4"
    with VideoEncoder(out, width=160, height=90, fps=30) as encoder:
        for _ in range(3):
            encoder.write(stored)
    with_display_matrix(out, *matrix)
    info = probe_video(out)
    want = shown(stored)
    assert info.mirrored and info.display_size == (want.shape[1], want.shape[0])
    upright = next(iter_video_frames(out, autorotate=True)).rgb
    assert upright.shape == want.shape and np.abs(upright.astype(np.int16) - want).mean() < 3.0
    # A flip cannot be written back as a rotation: transcoding keeps the picture as shown.
    transcode(out, tmp_path / "again.mp4")
    again = probe_video(tmp_path / "again.mp4")
    assert again.rotation == 0 and not again.mirrored
    assert np.abs(next(iter_video_frames(tmp_path / "again.mp4")).rgb.astype(np.int16) - want).mean() < 3.0


def test_explicit_timestamps_preserve_variable_frame_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.02, 0.09, size=19))])
    frame = np.full((72, 128, 3), 90, np.uint8)
    out = tmp_path / "vfr.mp4"
    with VideoEncoder(out, width=128, height=72, fps=25) as encoder:
        for t in times:
            encoder.write(frame, pts_s=float(t))
    decoded = list(iter_video_frames(out))
    np.testing.assert_allclose([f.pts_s for f in decoded], times, atol=1e-4)
    later = list(iter_video_frames(out, start=11, step=4))
    assert [f.index for f in later] == [11, 15, 19]
    np.testing.assert_allclose([f.pts_s for f in later], times[[11, 15, 19]], atol=1e-4)


def test_a_long_pause_in_variable_rate_footage_does_not_stretch_the_last_frame(tmp_path: Path) -> None:
    """Frames at 0, 0.04 and 3600 s (a screen recording left on a still picture): the rate the
    container gives is its average, 3 frames an hour, and the last frame was held for 1/that
    (20 minutes), so the copy ran 4,800 s against the source's 3,600.04 s."""
    out = tmp_path / "pause.mp4"
    with VideoEncoder(out, width=64, height=48, fps=Fraction(3, 3600)) as encoder:
        for time_s in (0.0, 0.04, 3600.0):
            encoder.write(np.zeros((48, 64, 3), np.uint8), pts_s=time_s)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert abs(float(stream.duration * stream.time_base) - 3600.04) < 0.01
    assert [round(f.pts_s, 2) for f in iter_video_frames(out)] == [0.0, 0.04, 3600.0]


def _black_video_with_audio(out: Path, source: Path, *, frames: int) -> VideoEncoder:
    """``frames`` black 64x48 frames at 25 fps written to ``out`` with ``source``'s audio; the
    closed encoder (its ``audio_mode``)."""
    with VideoEncoder(out, width=64, height=48, fps=25, audio_source=source) as encoder:
        for _ in range(frames):
            encoder.write(np.zeros((48, 64, 3), np.uint8))
    return encoder


def test_pcm_audio_is_reencoded_to_aac(tmp_path: Path) -> None:
    source = tmp_path / "speech.mov"
    rate = 44_100
    samples = (np.sin(np.arange(rate) * 0.05) * 8000).astype(np.int16)
    with av.open(str(source), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        chunk = av.AudioFrame.from_ndarray(
            np.stack([samples, samples]).T.reshape(1, -1).copy(), format="s16", layout="stereo"
        )
        chunk.sample_rate = rate
        chunk.pts = 0
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    out = tmp_path / "with_aac.mp4"
    encoder = _black_video_with_audio(out, source, frames=25)
    assert encoder.audio_mode == "aac"
    info = probe_video(out)
    assert info.audio_codec == "aac" and info.audio_channels == 2 and info.audio_sample_rate == rate
    assert abs(_audio_duration_s(out) - 1.0) <= 1024 / rate + 1e-6


def _pcm_audio(path: Path, spans_s: list[tuple[float, float]], *, rate: int = 48_000) -> Path:
    """A file (MOV, Matroska) holding only PCM audio: a tone over each (start, end) span and
    nothing between (sound that starts after the picture; a capture that skipped a stretch)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        for start_s, end_s in spans_s:
            tone = (np.sin(np.arange(round((end_s - start_s) * rate)) * 0.05) * 8000).astype(np.int16)
            for first in range(0, tone.size, 1024):
                piece = tone[first : first + 1024]
                chunk = av.AudioFrame.from_ndarray(
                    np.stack([piece, piece]).T.reshape(1, -1).copy(), format="s16", layout="stereo"
                )
                chunk.sample_rate, chunk.time_base = rate, Fraction(1, rate)
                for packet in stream.encode(chunk):
                    # PCM packets are one per frame; stamped here, as the encoder counts on
                    packet.pts = packet.dts = round(start_s * rate) + first
                    container.mux(packet)
    return path


def _audible_at(path: Path, times_s: list[float]) -> list[bool]:
    """Whether the AAC track of ``path`` is audible within 5 ms of each time, as a player
    schedules it."""
    heard = [False] * len(times_s)
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            level = np.abs(frame.to_ndarray()).max(axis=0)  # fltp: (channels, samples)
            for n, t in enumerate(times_s):
                first = max(0, round((t - 0.005 - float(frame.time)) * frame.sample_rate))
                last = round((t + 0.005 - float(frame.time)) * frame.sample_rate)
                heard[n] |= bool((level[first : max(first, last)] > 0.05).any())
    return heard


@pytest.mark.parametrize("name", ["take.mkv", "take.wav"])
def test_pcm_audio_whose_channels_have_no_layout_is_reencoded(tmp_path: Path, name: str) -> None:
    # Matroska and WAV say "2 channels", not "stereo"; the AAC encoder refused that and the
    # whole video failed ("encoding failed at frame 0: Invalid argument").
    source = _pcm_audio(tmp_path / name, [(0.0, 1.0)])
    out = tmp_path / "out.mp4"
    encoder = _black_video_with_audio(out, source, frames=25)
    info = probe_video(out)
    assert encoder.audio_mode == "aac" and info.audio_channels == 2
    assert abs(_audio_duration_s(out) - 1.0) <= AAC_FRAME_S


@pytest.mark.parametrize("layout", ["9 channels", "64 channels"])
def test_sound_in_more_channels_than_aac_holds_and_no_order_is_refused_naming_the_source(
    tmp_path: Path, layout: str
) -> None:
    # A Matroska take of 9 (or 64) PCM channels in no named order (a field recorder's mics):
    # FFmpeg cannot mix them down, and the video failed naming the output, "encoding failed at
    # frame 0: Invalid argument", not the sound or why. Named layouts (22.2) are mixed to stereo.
    source = tmp_path / "mics.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=48_000, layout=layout)
        chunk = av.AudioFrame(format="s16", layout=layout, samples=1024)
        for plane in chunk.planes:
            plane.update(bytes(plane.buffer_size))
        chunk.sample_rate, chunk.pts = 48_000, 0
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError) as refused:
        _black_video_with_audio(out, source, frames=5)
    channels = layout.split()[0]
    assert str(source) in str(refused.value) and f"{channels} channels in no named order" in str(refused.value)
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "spans_s", "times_s", "audible"),
    [
        # a studio's MOV whose sound starts 0.3 s after the picture: it played at 0 s
        ("late.mov", [(0.3, 1.2)], [0.1, 0.25, 0.35, 1.15], [False, False, True, True]),
        # a capture that skipped 0.2 s of sound: what followed played 0.2 s early
        (
            "skip.mkv",
            [(0.0, 0.6), (0.8, 1.2)],
            [0.05, 0.55, 0.65, 0.75, 0.85, 1.15],
            [True, True, False, False, True, True],
        ),
    ],
)
def test_reencoded_audio_keeps_its_place_against_the_picture(
    tmp_path: Path, name: str, spans_s: list[tuple[float, float]], times_s: list[float], audible: list[bool]
) -> None:
    source = _pcm_audio(tmp_path / name, spans_s)
    out = tmp_path / "out.mp4"
    encoder = _black_video_with_audio(out, source, frames=30)
    assert encoder.audio_mode == "aac"
    assert _audible_at(out, times_s) == audible


def test_every_audio_track_is_kept(tmp_path: Path) -> None:
    """A take with two sound tracks (a mix and a vocal stem, or two languages), one AAC and one
    PCM: only the first was written, and the second was dropped without a word."""
    rate = 48_000
    source = tmp_path / "take.mov"
    with av.open(str(source), "w") as container:
        tracks = [
            container.add_stream("aac", rate=rate, layout="stereo"),
            container.add_stream("pcm_s16le", rate=rate, layout="mono"),
        ]
        for number, track in enumerate(tracks):
            tone = (np.sin(np.arange(rate) * 0.03 * (number + 1)) * 8000).astype(np.int16)
            channels = 2 - number
            for first in range(0, rate, 1024):
                piece = np.repeat(tone[first : first + 1024][:, None], channels, axis=1).reshape(1, -1)
                chunk = av.AudioFrame.from_ndarray(
                    piece.copy(), format="s16", layout="stereo" if channels == 2 else "mono"
                )
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, first, Fraction(1, rate)
                container.mux(track.encode(chunk))
            container.mux(track.encode(None))
    out = tmp_path / "out.mp4"
    _black_video_with_audio(out, source, frames=25)
    with av.open(str(out)) as written:
        kept = [(s.codec_context.name, s.codec_context.channels) for s in written.streams.audio]
        durations = [float(s.duration * s.time_base) for s in written.streams.audio]
    assert kept == [("aac", 2), ("aac", 1)]
    assert all(abs(d - 1.0) <= AAC_FRAME_S + 1e-6 for d in durations), durations


def test_a_file_declaring_more_audio_tracks_than_are_kept_gives_the_first_ones(tmp_path: Path) -> None:
    """Each kept track gets its own encoder: a file declaring hundreds (crafted, or a capture
    card's) keeps its first ``MAX_AUDIO_TRACKS``, in order, not one encoder per track."""
    from likeness.media.video.encode import MAX_AUDIO_TRACKS

    rate = 8_000
    source = tmp_path / "tracks.mkv"
    with av.open(str(source), "w") as container:
        tracks = [container.add_stream("pcm_s16le", rate=rate, layout="mono") for _ in range(MAX_AUDIO_TRACKS + 2)]
        for number, track in enumerate(tracks):
            tone = (np.sin(np.arange(800) * 0.2) * 500 * (number + 1)).astype(np.int16)[None, :]
            chunk = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, 0, Fraction(1, rate)
            container.mux(track.encode(chunk))
            container.mux(track.encode(None))
    out = tmp_path / "out.mp4"
    encoder = _black_video_with_audio(out, source, frames=3)
    # the tracks left out are said, not dropped without a word
    assert encoder.audio_note == f"kept 16 of {MAX_AUDIO_TRACKS + 2} sound tracks (at most 16)"
    loudest: dict[int, float] = {}
    with av.open(str(out)) as written:
        kept = [stream.index for stream in written.streams.audio]
        for packet in written.demux(*written.streams.audio):
            for frame in packet.decode():
                level = float(np.abs(frame.to_ndarray()).max())
                loudest[packet.stream.index] = max(loudest.get(packet.stream.index, 0.0), level)
    assert len(kept) == MAX_AUDIO_TRACKS
    # the n-th kept track is n times as loud as the first: the source's first tracks, in order
    levels = [loudest[index] / loudest[kept[0]] for index in kept]
    assert all(abs(level - n) < 0.25 for n, level in enumerate(levels, start=1)), levels


def _sound_with_a_skip(path: Path, *, skip_s: float, layout: str = "7.1") -> Path:
    """Matroska of two black frames ``skip_s`` apart and one PCM track (8 kHz) whose only
    packets play at 0 and at ``skip_s``: a few kB whose sound lasts ``skip_s``."""
    rate, channels = 8_000, av.AudioLayout(layout).nb_channels
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream("pcm_s16le", rate=rate, layout=layout)
        for time_s in (0.0, skip_s):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(time_s * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for time_s in (0.0, skip_s):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 256 * channels), np.int16), format="s16", layout=layout)
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, round(time_s * rate), Fraction(1, rate)
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return path


def test_sound_skipping_far_beyond_what_the_file_holds_is_refused(tmp_path: Path) -> None:
    """A file of a few packets whose sound skips 700 s of 7.1 had every second filled with
    silence and encoded (16 such tracks of 96 kHz: 334 s of work from 528 kB); now refused,
    naming the file, before the silence is encoded."""
    source = _sound_with_a_skip(tmp_path / "skip.mkv", skip_s=700.0)
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match="more than its size holds as real sound") as caught:
        transcode(source, out)
    assert Path(caught.value.path) == source
    assert not out.exists() and not list(tmp_path.glob(".out.mp4.*"))


def test_a_skip_in_sound_within_what_any_file_may_encode_is_filled(tmp_path: Path) -> None:
    source = _sound_with_a_skip(tmp_path / "skip.mkv", skip_s=30.0)
    out = tmp_path / "out.mp4"
    transcode(source, out)
    with av.open(str(out)) as written:
        stream = written.streams.audio[0]
        assert stream.codec_context.channels == 8
        assert float(stream.duration * stream.time_base) >= 30.0


def test_real_sound_is_never_refused_for_its_size() -> None:
    from likeness.media.video.budget import sound_refusal

    # an hour of 16 tracks of 7.1, each at 48 kbps AAC (the lowest a studio would send), in the file
    channel_s = 3600 * 16 * 8
    assert sound_refusal(channel_seconds=channel_s, size_bytes=3600 * 16 * 6_000) is None
    # ten minutes of one 7.1 track, whatever the file's size
    assert sound_refusal(channel_seconds=600 * 8, size_bytes=1) is None
    assert sound_refusal(channel_seconds=600 * 8 + 1, size_bytes=1) is not None


def test_audio_source_without_audio_gives_silent_video(clip: Path, tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    synthetic.write_clip(silent, synthetic.astronaut(), seconds=0.2, size=(64, 48), with_audio=False)
    with VideoEncoder(tmp_path / "out.mp4", width=64, height=48, fps=25, audio_source=silent) as encoder:
        encoder.write(np.zeros((48, 64, 3), np.uint8))
    assert encoder.audio_mode is None and not probe_video(tmp_path / "out.mp4").has_audio


def test_audio_is_trimmed_to_the_video(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "short.mp4"
    with VideoEncoder(out, width=SIZE[0], height=SIZE[1], fps=FPS, audio_source=clip) as encoder:
        for frame in iter_video_frames(clip):
            if frame.index == 10:
                break
            encoder.write(frame.rgb)
    assert abs(_audio_duration_s(out) - 10 / FPS) <= AAC_FRAME_S


def test_encoder_rejects_bad_frames_and_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "never.mp4"
    with pytest.raises(MediaError, match=r"never\.mp4.*expected shape \(48, 64, 3\)"):
        with VideoEncoder(out, width=64, height=48, fps=25) as encoder:
            encoder.write(np.zeros((48, 64, 3), np.uint8))
            encoder.write(np.zeros((64, 48, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(MediaError, match="timestamps must increase"):
        with VideoEncoder(out, width=64, height=48, fps=25) as encoder:
            encoder.write(np.zeros((48, 64, 3), np.uint8), pts_s=1.0)
            encoder.write(np.zeros((48, 64, 3), np.uint8), pts_s=1.0)
    with pytest.raises(MediaError, match="no frames"):
        with VideoEncoder(out, width=64, height=48, fps=25):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_failure_on_the_encoding_thread_surfaces_on_the_writer_and_leaves_no_file(tmp_path: Path) -> None:
    # Frames are encoded on the encoder's own thread; a failure there (here: the disk filling up
    # while muxing frame 3) must reach the caller as a MediaError naming the file and the frame,
    # from a later write or from close, and the partial file must go.
    out = tmp_path / "full.mp4"
    frame = np.zeros((48, 64, 3), np.uint8)
    encoder = VideoEncoder(out, width=64, height=48, fps=25)
    muxed: list[float] = []

    def disk_full(*, until_s: float, final: bool = False) -> None:
        muxed.append(until_s)
        if len(muxed) == 4:
            raise OSError(28, "No space left on device")

    encoder._pump_audio = disk_full  # type: ignore[method-assign]
    with pytest.raises(MediaError, match=r"full\.mp4.*encoding failed at frame 3.*No space left") as caught:
        for _ in range(50):
            encoder.write(frame)
        encoder.close()
    assert caught.value.path == str(out)
    assert len(muxed) == 4  # nothing was encoded after the failure
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MediaError, match="closed"):
        encoder.write(frame)


@pytest.mark.parametrize(("width", "height"), [(330, 180), (1080, 1920), (64, 48)])
def test_luma_offset_is_added_to_the_y_plane_in_place_with_saturation(width: int, height: int) -> None:
    from likeness.media.video.encode import _add_to_luma

    rgb = np.full((height, width, 3), 100, np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    before = rows.copy()
    offset = np.full((height, width), 3, np.int16)
    offset[0, 0], offset[1, 1] = -300, 300
    _add_to_luma(frame, offset)
    change = rows.astype(int) - before
    assert rows[0, 0] == 0 and rows[1, 1] == 255  # saturated, not wrapped
    expected = np.full((height, width), 3)
    expected[0, 0], expected[1, 1] = -int(before[0, 0]), 255 - int(before[1, 1])
    np.testing.assert_array_equal(change[:, :width], expected)
    assert not change[:, width:].any()  # the row padding is untouched


def test_encoder_rejects_a_luma_offset_of_the_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"luma_offset must be int16 \(48, 64\)"):
        with VideoEncoder(tmp_path / "x.mp4", width=64, height=48, fps=25) as encoder:
            encoder.write(np.zeros((48, 64, 3), np.uint8), luma_offset=np.zeros((48, 64), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_abort_with_frames_still_queued_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "aborted.mp4"
    encoder = VideoEncoder(out, width=320, height=180, fps=25)
    for n in range(12):
        encoder.write(np.full((180, 320, 3), n * 20, np.uint8))
    encoder.abort()
    assert list(tmp_path.iterdir()) == []
    assert encoder._worker is None  # the encoding thread has finished


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"crf": 99}, "crf"),
        ({"preset": "warp"}, "preset"),
        ({"rotation": 45}, "rotation"),
        ({"fps": 0}, "fps"),
        ({"width": 0}, "width"),
        ({"deadzones": (6, 40)}, "deadzones"),
        ({"deadzones": (6,)}, "deadzones"),
        ({"deadzones": [6, 6]}, "deadzones"),
    ],
)
def test_encoder_rejects_bad_options(tmp_path: Path, options: dict[str, object], reason: str) -> None:
    arguments: dict[str, object] = {"width": 64, "height": 48, "fps": 25, **options}
    with pytest.raises(MediaError, match=reason):
        VideoEncoder(tmp_path / "x.mp4", **arguments)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_truncated_mp4_yields_frames_then_names_where_it_stopped(bad_files: dict[str, Path]) -> None:
    path = bad_files["truncated_mp4"]
    got = []
    with pytest.raises(MediaError, match=r"truncated\.mp4.*stopped at frame (\d+)") as caught:
        for frame in iter_video_frames(path):
            got.append(frame.index)
    assert 0 < len(got) < 50
    assert got == list(range(len(got)))
    assert f"frame {len(got)}" in str(caught.value)


@pytest.mark.parametrize("reader", [probe_video, lambda p: list(iter_video_frames(p))])
def test_audio_only_has_no_video_stream(bad_files: dict[str, Path], reader) -> None:  # noqa: ANN001
    with pytest.raises(MediaError, match="no video stream") as caught:
        reader(bad_files["audio_only_m4a"])
    assert caught.value.path == str(bad_files["audio_only_m4a"])


@pytest.mark.parametrize("variant", ["zero_byte_mp4", "malformed_mp4", "random_bytes_jpg", "text_png", "bomb_png"])
@pytest.mark.parametrize("reader", [probe_video, lambda p: list(iter_video_frames(p))])
def test_unreadable_video_files(bad_files: dict[str, Path], variant: str, reader) -> None:  # noqa: ANN001
    with pytest.raises(MediaError) as caught:
        reader(bad_files[variant])
    assert caught.value.path == str(bad_files[variant])


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="file not found"):
        probe_video(tmp_path / "gone.mp4")
    with pytest.raises(MediaError, match="file not found"):
        iter_video_frames(tmp_path / "gone.mp4")


def _colour_bars(height: int = 240, width: int = 320) -> np.ndarray:
    """Saturated flat bars: where the BT.601 and BT.709 matrices disagree by tens of levels."""
    bars = np.array(
        [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 255, 0],
            [0, 255, 255],
            [255, 0, 255],
            [200, 120, 60],
            [128, 128, 128],
        ],
        np.uint8,
    )
    return np.repeat(np.repeat(bars[None], height, axis=0), width // len(bars), axis=1)


@pytest.mark.parametrize("space", ["smpte170m", "bt470bg", "bt2020nc"])
def test_colour_tags_are_written_and_the_matching_matrix_is_used(tmp_path: Path, space: str) -> None:
    primaries = {"smpte170m": "smpte170m", "bt470bg": "bt470bg", "bt2020nc": "bt2020"}[space]
    trc = {"smpte170m": "smpte170m", "bt470bg": "gamma28", "bt2020nc": "bt2020-10"}[space]
    bars = _colour_bars()
    out = tmp_path / f"{space}.mp4"
    with VideoEncoder(out, width=320, height=240, fps=25, colour=ColourTags(primaries, trc, space)) as encoder:
        for _ in range(3):
            encoder.write(bars)
    info = probe_video(out)
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (primaries, trc, space, "tv")
    decoded = next(iter_video_frames(out)).rgb
    # Flat bars survive 4:2:0 and CRF 20 within a few levels away from the bar edges; a matrix
    # mismatch between encoding and the tag shifts saturated bars by 20+ levels.
    inner = np.concatenate([np.arange(i * 40 + 6, i * 40 + 34) for i in range(8)])
    error = np.abs(decoded[:, inner].astype(int) - bars[:, inner].astype(int))
    assert error.max() <= 8, error.max()


def test_unspecified_or_unusable_colour_tags_fall_back_to_what_decoding_assumed(tmp_path: Path) -> None:
    assert ColourTags(None, None, None).resolved()[:3] == (1, 1, 1)
    assert ColourTags("bt709", "bt709", "ycgco").resolved()[:3] == (1, 1, 1)  # no such swscale matrix
    sd = probe_video(
        synthetic.write_clip(
            tmp_path / "sd.mp4", synthetic.grace_hopper(), seconds=0.2, fps=10, size=(320, 240), seed=1
        )
    )
    assert ColourTags.of(sd) == ColourTags("bt709", "bt709", "bt709")  # the encoder's tags are kept
    unspecified = {f: None for f in ("color_primaries", "color_trc", "colorspace")}
    assert ColourTags.of(replace(sd, **unspecified)) == ColourTags("smpte170m", "smpte170m", "smpte170m")
    assert ColourTags.of(replace(sd, height=720, **unspecified)) == ColourTags("bt709", "bt709", "bt709")
    with pytest.raises(MediaError, match="ColourTags"):
        VideoEncoder(tmp_path / "x.mp4", width=8, height=8, fps=25, colour="bt601")  # type: ignore[arg-type]


def test_transcode_keeps_the_source_colour_tags(tmp_path: Path) -> None:
    source = tmp_path / "sd601.mp4"
    with VideoEncoder(
        source, width=320, height=240, fps=25, colour=ColourTags("smpte170m", "smpte170m", "smpte170m")
    ) as encoder:
        for _ in range(3):
            encoder.write(_colour_bars())
    out = tmp_path / "copy.mp4"
    transcode(source, out)
    info = probe_video(out)
    assert (info.color_primaries, info.color_trc, info.colorspace) == ("smpte170m", "smpte170m", "smpte170m")
    assert (
        np.abs(next(iter_video_frames(out)).rgb.astype(int) - next(iter_video_frames(source)).rgb.astype(int)).mean()
        < 2.0
    )


def test_smaller_deadzones_keep_low_amplitude_detail(source_frames: list[np.ndarray], tmp_path: Path) -> None:
    """x264's deadzones round small residuals to zero; smaller ones keep a faint pattern (what
    the watermark is) in P and B frames, at a larger file."""
    rng = np.random.default_rng(0)
    faint = rng.choice(np.array([-2, 2], np.int16), size=(SIZE[1] // 4, SIZE[0] // 4))
    faint = np.kron(faint, np.ones((4, 4), np.int16))[..., None]
    frames = [np.clip(f.astype(np.int16) + faint, 0, 255).astype(np.uint8) for f in source_frames]
    residual_kept, sizes = {}, {}
    for deadzones in (None, (6, 6)):
        out = tmp_path / f"{deadzones}.mp4"
        with VideoEncoder(out, width=SIZE[0], height=SIZE[1], fps=FPS, deadzones=deadzones) as encoder:
            assert encoder.deadzones == deadzones
            for frame in frames:
                encoder.write(frame)
        decoded = [f.rgb for f in iter_video_frames(out)]
        # Correlation of the decoded frames (minus the unmarked source) with the faint pattern.
        kept = [
            np.mean((d.astype(np.float64) - s).mean(axis=2) * faint[..., 0]) / 4.0
            for d, s in zip(decoded[1:], source_frames[1:])
        ]
        residual_kept[deadzones], sizes[deadzones] = float(np.median(kept)), out.stat().st_size
    assert residual_kept[(6, 6)] > residual_kept[None] + 0.05
    assert sizes[(6, 6)] > sizes[None]


def test_a_display_matrix_offers_the_other_quarter_turns_players_may_show() -> None:
    stored = np.arange(2 * 3 * 1, dtype=np.uint8).reshape(2, 3, 1)
    one, cos_45 = 1 << 16, 46341
    assert list(disputed_views(stored, None)) == []
    # A quarter turn: the three others (a frame's H.264 message may say it, which Chromium ignores).
    quarter = (0, one, 0, -one, 0, 0, 0, 0, 1 << 30)
    views = list(disputed_views(stored, quarter))
    assert len(views) == 3 and not any(np.array_equal(v, show_as_displayed(stored, quarter)) for v in views)
    # Chromium shows these stored (or turned another way); FFmpeg, at the nearest quarter turn.
    half_turn_scaled = (-2 * one, 0, 0, 0, -2 * one, 0, 0, 0, 1 << 30)
    views = list(disputed_views(stored, half_turn_scaled))
    assert len(views) == 3 and not any(np.array_equal(v, np.rot90(stored, 2)) for v in views)
    assert any(np.array_equal(v, stored) for v in views)
    # A mirror: every quarter turn (a mirrored face is still the face).
    mirror = (-one, 0, 0, 0, one, 0, 0, 0, 1 << 30)
    assert len(list(disputed_views(stored, mirror))) == 4
    for odd in [
        (cos_45, cos_45, 0, -cos_45, cos_45, 0, 0, 0, 1 << 30),
        (one, one, 0, 0, one, 0, 0, 0, 1 << 30),
        (0,) * 9,
    ]:
        assert len(list(disputed_views(stored, odd))) in (3, 4)


def test_an_all_zero_display_matrix_is_no_turn(tmp_path: Path) -> None:
    """FFmpeg and Chromium show a clip whose matrix is all zeros as stored; its rotation read as
    a number (NaN as an integer) was 270, so transcode and render wrote the copy turned sideways."""
    stored = np.zeros((90, 160, 3), np.uint8)
    stored[:30, :40] = (255, 255, 255)
    out = tmp_path / "zero.mp4"
    with VideoEncoder(out, width=160, height=90, fps=30) as encoder:
        for _ in range(3):
            encoder.write(stored)
    with_display_matrix(out, 0, 0, 0, 0)
    info = probe_video(out)
    assert (info.rotation, info.mirrored, info.display_size) == (0, False, (160, 90))
    transcode(out, tmp_path / "again.mp4")
    again = next(iter_video_frames(tmp_path / "again.mp4", autorotate=True)).rgb
    assert again.shape == stored.shape and np.abs(again.astype(np.int16) - stored).mean() < 3.0


def _flat_colour_frames(count: int, size: tuple[int, int] = (320, 180), seed: int = 0) -> list[np.ndarray]:
    """Frames of flat 20x20 blocks of seeded colours (no edges inside a block: no codec blur)."""
    rng = np.random.default_rng(seed)
    width, height = size
    blocks = rng.integers(20, 236, (height // 20, width // 20, 3)).astype(np.uint8)
    frame = np.ascontiguousarray(np.repeat(np.repeat(blocks, 20, axis=0), 20, axis=1))
    return [frame] * count


def _block_centres(rgb: np.ndarray) -> np.ndarray:
    """The 10x10 middle of every 20x20 block, as float."""
    h, w = rgb.shape[0] // 20, rgb.shape[1] // 20
    return rgb[: h * 20, : w * 20].reshape(h, 20, w, 20, 3)[:, 5:15, :, 5:15].astype(float)


def test_a_transcode_keeps_the_picture_s_level(tmp_path: Path) -> None:
    """swscale's default YUV->RGB conversion truncates: every decoded frame was 1.1-1.3 grey
    levels darker than the stored picture, so each render or transcode handed a studio back its
    whole plate that much darker (and the next generation darker again)."""
    frames = _flat_colour_frames(3)
    source = tmp_path / "flat.mp4"
    with VideoEncoder(source, width=320, height=180, fps=25, crf=0) as encoder:
        for rgb in frames:
            encoder.write(rgb)
    decoded = next(iter_video_frames(source, exact=True)).rgb
    error = _block_centres(decoded) - _block_centres(frames[0])
    assert abs(error.mean()) < 0.3 and np.abs(error).mean() < 0.8
    copy = tmp_path / "copy.mp4"
    transcode(source, copy, crf=0)
    shift = _block_centres(next(iter_video_frames(copy, exact=True)).rgb) - _block_centres(decoded)
    assert abs(shift.mean()) < 0.3, f"the copy is {shift.mean():+.2f} grey levels off its source"


def test_a_finished_video_is_written_whole(tmp_path: Path, monkeypatch) -> None:
    """The encoder renamed its temporary into place unsynced: a power loss soon after could leave
    an empty or torn MP4 under the output's name. Now its bytes are fsynced first and the folder
    after."""
    from tests.durability import assert_written_whole, hidden_files, watch_disk

    log = watch_disk(monkeypatch)
    with VideoEncoder(tmp_path / "out.mp4", width=32, height=32, fps=10) as encoder:
        for _ in range(2):
            encoder.write(np.zeros((32, 32, 3), np.uint8))
    assert_written_whole(log, tmp_path / "out.mp4")
    assert hidden_files(tmp_path) == []
