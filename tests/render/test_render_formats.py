"""Render over awkward footage with the trained model: odd sizes, vertical phone video with a
display matrix, variable frame rate, a few frames of 4K, and codecs or outputs we cannot handle."""

from __future__ import annotations

import html
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from likeness.errors import MediaError
from likeness.media.synthetic import animate_portrait, grace_hopper
from likeness.media.video import iter_video_frames, probe_video
from likeness.render import RenderOptions, render_media

OPTIONS = RenderOptions(write_report=False, quality_every=10)


def write_source(
    path: Path,
    frames: list[np.ndarray],
    *,
    times_s: list[float] | None = None,
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
) -> Path:
    """H.264 MP4 of ``frames`` (stored orientation) with optional timestamps and display rotation."""
    height, width = frames[0].shape[:2]
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.codec_context.time_base = Fraction(1, 90_000)
    if rotation:
        stream.set_display_rotation(rotation)
    for n, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = round((times_s[n] if times_s else n / 25) * 90_000)
        frame.time_base = Fraction(1, 90_000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return path


def portrait_frames(n: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    return list(animate_portrait(grace_hopper(), n_frames=n, size=size, seed=seed))


def render(world, target: Path, out: Path):
    return render_media(world.workspace, world.model_dir, target, out, use="music_video", org="studio", options=OPTIONS)


def test_odd_width_and_height(trained_world, tmp_path: Path) -> None:
    frames = portrait_frames(8, (321, 241), seed=1)
    source = write_source(tmp_path / "odd.mp4", frames, pix_fmt="yuv444p")
    assert (probe_video(source).width, probe_video(source).height) == (321, 241)
    report = render(trained_world, source, tmp_path / "out.mp4")
    assert report.padded_to_even and report.faces["swapped"] >= 6
    info = probe_video(tmp_path / "out.mp4")
    assert (info.width, info.height) == (322, 242) and info.frame_count == 8
    event = trained_world.workspace.ledger.find("render.completed", job_id=report.job_id)[0]
    assert event.payload["padded_to_even"] is True


def test_vertical_phone_video_keeps_its_display_matrix(trained_world, tmp_path: Path) -> None:
    upright = portrait_frames(10, (180, 320), seed=2)  # 9:16 as shown
    stored = [np.ascontiguousarray(np.rot90(f, -1)) for f in upright]  # landscape pixels + rotation 90
    source = write_source(tmp_path / "phone.mp4", stored, rotation=90)
    assert probe_video(source).rotation == 90
    report = render(trained_world, source, tmp_path / "out.mp4")
    assert report.faces["swapped"] >= 8  # faces were found on the upright picture
    info = probe_video(tmp_path / "out.mp4")
    assert info.rotation == 90 and (info.width, info.height) == (320, 180) and info.display_size == (180, 320)
    shown = next(iter_video_frames(tmp_path / "out.mp4", autorotate=True)).rgb
    assert shown.shape == (320, 180, 3)
    # Same picture as the source where nothing was swapped or labelled (top rows: hair, background).
    source_shown = next(iter_video_frames(source, autorotate=True)).rgb
    assert np.abs(shown[:30].astype(int) - source_shown[:30].astype(int)).mean() < 8


def test_a_mirrored_selfie_clip_renders_upright_as_players_show_it(trained_world, tmp_path: Path) -> None:
    """A front-camera clip whose display matrix mirrors the stored pixels (FFmpeg reads it as a
    180-degree turn plus a flip): faces were searched upside down (nothing rendered), and any
    found would have been written under a 180-degree turn, shown upside down."""
    from tests.media.crafted_clips import with_display_matrix

    upright = portrait_frames(8, (320, 240), seed=7)
    source = write_source(tmp_path / "selfie.mp4", [np.ascontiguousarray(f[:, ::-1]) for f in upright])
    with_display_matrix(source, -1, 0, 0, 1)
    report = render(trained_world, source, tmp_path / "out.mp4")
    assert report.faces["swapped"] >= 6
    info = probe_video(tmp_path / "out.mp4")
    assert (info.rotation, info.mirrored, info.display_size) == (0, False, (320, 240))
    # Stored as shown: the unswapped top rows (hair, background) are the upright picture's.
    shown = next(iter_video_frames(tmp_path / "out.mp4")).rgb
    assert np.abs(shown[:30].astype(int) - upright[0][:30].astype(int)).mean() < 8


def test_variable_frame_rate_timestamps_survive(trained_world, tmp_path: Path) -> None:
    times = [0.0, 0.04, 0.08, 0.12, 0.3, 0.34, 0.38, 0.7, 0.74, 0.78]
    source = write_source(tmp_path / "vfr.mp4", portrait_frames(len(times), (320, 240), seed=3), times_s=times)
    report = render(trained_world, source, tmp_path / "out.mp4")
    assert report.variable_frame_rate
    got = [round(f.pts_s, 3) for f in iter_video_frames(tmp_path / "out.mp4")]
    assert got == times


def test_source_colour_description_is_kept(trained_world, tmp_path: Path) -> None:
    from likeness.media import ColourTags, VideoEncoder

    source = tmp_path / "sd601.mp4"
    tags = ColourTags("bt470bg", "gamma28", "bt470bg")  # PAL SD
    with VideoEncoder(source, width=320, height=240, fps=25, colour=tags) as encoder:
        for rgb in portrait_frames(8, (320, 240), seed=5):
            encoder.write(rgb)
    report = render(trained_world, source, tmp_path / "out.mp4")
    assert report.frames_rendered == 8
    info = probe_video(tmp_path / "out.mp4")
    assert (info.color_primaries, info.color_trc, info.colorspace) == ("bt470bg", "gamma28", "bt470bg")
    # Background pixels (top rows) decode as in the source: same matrix both ways.
    got = next(iter_video_frames(tmp_path / "out.mp4")).rgb
    want = next(iter_video_frames(source)).rgb
    assert np.abs(got[:30].astype(int) - want[:30].astype(int)).mean() < 3


def test_a_studio_prores_take_keeps_its_sound_where_it_was(trained_world, tmp_path: Path) -> None:
    """ProRes 4:2:2 10-bit in MOV with PCM sound that starts 0.3 s after the picture (a slate, a
    pre-roll): the sound is re-encoded to AAC, and used to start with the picture, 0.3 s early."""
    from likeness.provenance.c2pa_manifest import read_manifest
    from likeness.provenance.certificates import workspace_trust_anchors
    from likeness.provenance.label_detect import detect_visible_label

    source = tmp_path / "take.mov"
    rate = 48_000
    with av.open(str(source), "w") as container:
        video = container.add_stream("prores_ks", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv422p10le"
        audio = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        for rgb in portrait_frames(20, (320, 240), seed=6):
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode(None))
        tone = (np.sin(np.arange(round(0.5 * rate)) * 0.05) * 8000).astype(np.int16)
        sound = av.AudioFrame.from_ndarray(
            np.stack([tone, tone]).T.reshape(1, -1).copy(), format="s16", layout="stereo"
        )
        sound.sample_rate, sound.pts, sound.time_base = rate, round(0.3 * rate), Fraction(1, rate)
        container.mux(audio.encode(sound))
        container.mux(audio.encode(None))
    out = tmp_path / "out.mp4"
    report = render(trained_world, source, out)
    assert report.frames_rendered == 20 and report.faces["swapped"] >= 16
    with av.open(str(out)) as container:
        heard = [
            (float(frame.time), float(np.abs(frame.to_ndarray()).max()))
            for frame in container.decode(container.streams.audio[0])
        ]
    onset_s = min(time_s for time_s, level in heard if level > 0.05)
    assert 0.27 <= onset_s <= 0.31  # AAC frames are 21 ms long
    reading = read_manifest(out, trust_anchors_pem=workspace_trust_anchors(trained_world.workspace))
    assert reading.state == "Trusted", reading.reasons
    assert detect_visible_label(next(iter_video_frames(out)).rgb).present


def test_a_take_with_two_sound_tracks_keeps_both(trained_world, tmp_path: Path) -> None:
    """A mix and a vocal stem (or two languages): the labelled output carried only the first."""
    from likeness.provenance.c2pa_manifest import read_manifest
    from likeness.provenance.certificates import workspace_trust_anchors

    source = tmp_path / "take.mp4"
    rate = 48_000
    with av.open(str(source), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        tracks = [container.add_stream("aac", rate=rate, layout="stereo") for _ in range(2)]
        for rgb in portrait_frames(12, (320, 240), seed=8):
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode(None))
        for number, track in enumerate(tracks):
            tone = (np.sin(np.arange(round(0.48 * rate)) * 0.02 * (number + 1)) * 8000).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]).T.reshape(1, -1).copy(), format="s16", layout="stereo"
            )
            sound.sample_rate, sound.pts, sound.time_base = rate, 0, Fraction(1, rate)
            container.mux(track.encode(sound))
            container.mux(track.encode(None))
    out = tmp_path / "out.mp4"
    report = render(trained_world, source, out)
    assert report.frames_rendered == 12
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac", "aac"]
    reading = read_manifest(out, trust_anchors_pem=workspace_trust_anchors(trained_world.workspace))
    assert reading.state == "Trusted", reading.reasons


def test_a_take_with_more_sound_tracks_than_are_kept_says_so(trained_world, tmp_path: Path) -> None:
    """18 tracks: the first 16 are carried, and the report (JSON and HTML) says the other two
    were left out; before, they were dropped without a word."""
    import json

    from likeness.media.video.encode import MAX_AUDIO_TRACKS

    source = tmp_path / "take.mkv"
    rate = 8_000
    with av.open(str(source), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        tracks = [container.add_stream("pcm_s16le", rate=rate, layout="mono") for _ in range(MAX_AUDIO_TRACKS + 2)]
        for rgb in portrait_frames(6, (320, 240), seed=8):
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode(None))
        for track in tracks:
            tone = (np.sin(np.arange(round(0.24 * rate)) * 0.2) * 8000).astype(np.int16)[None, :]
            sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            sound.sample_rate, sound.pts, sound.time_base = rate, 0, Fraction(1, rate)
            container.mux(track.encode(sound))
            container.mux(track.encode(None))
    out = tmp_path / "out.mp4"
    options = RenderOptions(write_report=True, quality_every=10)
    report = render_media(
        trained_world.workspace, trained_world.model_dir, source, out, use="music_video", org="studio", options=options
    )
    said = "kept 16 of 18 sound tracks (at most 16)"
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == MAX_AUDIO_TRACKS
    assert report.audio_note == said
    assert json.loads(Path(report.report_json).read_text(encoding="utf-8"))["audio_note"] == said
    assert f"<li>sound: {said}</li>" in Path(report.report_html).read_text(encoding="utf-8")


def test_a_few_frames_of_4k(trained_world, tmp_path: Path) -> None:
    source = write_source(tmp_path / "uhd.mp4", portrait_frames(3, (3840, 2160), seed=4))
    report = render(trained_world, source, tmp_path / "out.mp4")
    assert report.frames_rendered == 3 and report.faces["swapped"] == 3
    info = probe_video(tmp_path / "out.mp4")
    assert (info.width, info.height, info.frame_count) == (3840, 2160, 3)


def test_footage_one_pixel_wide_is_refused_naming_the_footage(trained_world, tmp_path: Path) -> None:
    # The writer's refusal named the output file ("video size must be integers >= 2").
    source = tmp_path / "sliver.mov"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("png", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1, 64, "rgb24"
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((64, 1, 3), 90, np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    with pytest.raises(MediaError) as refused:
        render(trained_world, source, tmp_path / "out.mp4")
    assert Path(refused.value.path) == source and "1x64 px: too small" in refused.value.reason
    assert not (tmp_path / "out.mp4").exists() and not trained_world.workspace.ledger.find("render.completed")


def test_unsupported_codec_and_output_are_clear_errors(trained_world, tmp_path: Path) -> None:
    source = write_source(tmp_path / "ok.mp4", portrait_frames(3, (160, 120), seed=5))
    # Same file, but the sample entry names a codec no decoder knows.
    unknown = tmp_path / "unknown_codec.mp4"
    unknown.write_bytes(source.read_bytes().replace(b"avc1", b"zzzz"))
    with pytest.raises(MediaError) as refused:
        render(trained_world, unknown, tmp_path / "a.mp4")
    assert Path(refused.value.path) == unknown and "decoder not found" in refused.value.reason.lower()
    with pytest.raises(MediaError, match=r"\.mp4"):
        render(trained_world, source, tmp_path / "out.mov")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(MediaError):
        render(trained_world, text, tmp_path / "b.mp4")
    assert not any(
        p.suffix in (".mp4", ".mov") and p.name not in ("ok.mp4", "unknown_codec.mp4", "notes.mp4")
        for p in tmp_path.iterdir()
    )
    assert not trained_world.workspace.ledger.find("render.completed")


def test_the_plate_around_the_faces_keeps_its_level(trained_world, tmp_path: Path) -> None:
    """Pixels the render does not touch come back at the source's level: the frames were decoded
    1.1-1.3 grey levels dark (swscale's truncating conversion), so a studio's whole plate came
    back that much darker than it went in, measured on a flat band above the face."""
    from likeness.media import VideoEncoder

    frames = portrait_frames(8, (320, 240), seed=9)
    for rgb in frames:
        rgb[:40] = (52, 118, 187)  # a flat sky above the head
    source = tmp_path / "plate.mp4"
    with VideoEncoder(source, width=320, height=240, fps=25, crf=0) as encoder:
        for rgb in frames:
            encoder.write(rgb)
    report = render(trained_world, source, tmp_path / "out.mp4")
    assert report.faces["swapped"] >= 6
    for before, after in zip(
        iter_video_frames(source, exact=True), iter_video_frames(tmp_path / "out.mp4", exact=True)
    ):
        shift = after.rgb[4:36].astype(float).mean() - before.rgb[4:36].astype(float).mean()
        assert abs(shift) < 0.5, f"frame {before.index}: the plate is {shift:+.2f} grey levels off"


def test_interlaced_footage_is_deinterlaced_and_the_report_says_so(trained_world, tmp_path: Path) -> None:
    """A 1080i-style take (each frame woven from two instants, top field first, the portrait
    panning 4 px a field) was rendered as whole frames: the swapped face held one instant in
    both fields and the plate round it combed in the output as in the source. Now each frame is
    deinterlaced (bwdif) before the swap: the output's comb energy falls to a fraction of the
    source's, and the report says what was done."""
    from tests.media.crafted_clips import comb_energy, interlaced_clip

    instants = [np.roll(rgb, 4 * n, axis=1) for n, rgb in enumerate(portrait_frames(16, (320, 256), seed=11))]
    source = interlaced_clip(tmp_path / "interlaced.mp4", instants)
    assert probe_video(source).field_order == "tt"
    report = render_media(
        trained_world.workspace,
        trained_world.model_dir,
        source,
        tmp_path / "out.mp4",
        use="music_video",
        org="studio",
        options=RenderOptions(quality_every=10),
    )
    assert report.faces["swapped"] >= 6
    woven = [frame.rgb for frame in iter_video_frames(source)]
    rendered = [frame.rgb for frame in iter_video_frames(tmp_path / "out.mp4")]
    for n, (before, after) in enumerate(zip(woven, rendered, strict=True)):
        # Whole frame, and the middle where the face is (the swap and its rim).
        for rows, cols in ((slice(None), slice(None)), (slice(64, 192), slice(96, 224))):
            source_comb, output_comb = comb_energy(before[rows, cols]), comb_energy(after[rows, cols])
            assert output_comb < 0.5 * source_comb, f"frame {n}: combs {output_comb:.1f} against {source_comb:.1f}"
    assert report.deinterlaced == "bwdif"
    assert report.interlaced_note is not None
    assert "deinterlaced (bwdif, top field first) to 25p" in report.interlaced_note
    assert html.escape(report.interlaced_note) in Path(report.report_html).read_text(encoding="utf-8")
    out = probe_video(tmp_path / "out.mp4")
    assert out.field_order is None and out.frame_count == 8  # progressive, one picture a frame
    progressive = render(
        trained_world, write_source(tmp_path / "p.mp4", portrait_frames(4, (320, 240), 1)), tmp_path / "p-out.mp4"
    )
    assert progressive.interlaced_note is None and progressive.deinterlaced is None
