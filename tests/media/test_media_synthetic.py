"""Generated media: package portraits, seeded head motion that keeps the face detectable,
clips with a checkable audio track, group images."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from likeness.errors import MediaError
from likeness.media import probe_video, synthetic


def test_package_portraits() -> None:
    astronaut, hopper = synthetic.astronaut(), synthetic.grace_hopper()
    assert astronaut.shape == (512, 512, 3) and astronaut.dtype == np.uint8
    assert hopper.shape == (600, 512, 3) and hopper.dtype == np.uint8
    assert synthetic.grace_hopper_path().is_file()


def test_animation_is_seeded_smooth_and_moving() -> None:
    face = synthetic.astronaut()
    first = list(synthetic.animate_portrait(face, n_frames=40, size=(160, 90), seed=1))
    again = list(synthetic.animate_portrait(face, n_frames=40, size=(160, 90), seed=1))
    other = list(synthetic.animate_portrait(face, n_frames=40, size=(160, 90), seed=2))
    assert len(first) == 40 and all(f.shape == (90, 160, 3) and f.dtype == np.uint8 for f in first)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))

    def change(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.int16) - b).mean())

    steps = [change(a, b) for a, b in zip(first, first[1:])]
    assert min(steps) > 0.0  # it moves every frame
    excursion = max(change(first[0], frame) for frame in first)
    assert max(steps) < 0.2 * excursion  # and smoothly: no frame-to-frame jumps


def test_animation_rejects_bad_arguments() -> None:
    with pytest.raises(MediaError, match="n_frames"):
        next(synthetic.animate_portrait(synthetic.astronaut(), n_frames=0))
    with pytest.raises(MediaError, match="size"):
        next(synthetic.animate_portrait(synthetic.astronaut(), n_frames=1, size=(4, 4)))
    with pytest.raises(MediaError, match="uint8"):
        next(synthetic.animate_portrait(np.zeros((8, 8, 3)), n_frames=1))


def test_face_stays_detectable_through_the_motion() -> None:
    import mediapipe

    face_mesh = mediapipe.solutions.face_mesh
    with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2, refine_landmarks=True) as mesh:
        for portrait in (synthetic.astronaut(), synthetic.grace_hopper()):
            frames = list(synthetic.animate_portrait(portrait, n_frames=75, size=(320, 180), seed=5))
            found = [bool(mesh.process(frame).multi_face_landmarks) for frame in frames[::5]]
            assert all(found), found
        group = synthetic.compose_group([synthetic.astronaut(), synthetic.grace_hopper()])
        assert len(mesh.process(group).multi_face_landmarks or []) == 2


def test_compose_group_places_each_image_in_its_cell() -> None:
    rng = np.random.default_rng(3)
    red = np.zeros((100, 80, 3), np.uint8)
    red[..., 0] = 200
    noise = rng.integers(0, 256, size=(100, 80, 3), dtype=np.uint8)
    group = synthetic.compose_group([red, noise, red], size=(300, 100))
    assert group.shape == (100, 300, 3)
    assert (group[:, :100, 0] == 200).all() and (group[:, 200:, 0] == 200).all()
    assert group[:, 100:200].std() > 40
    with pytest.raises(MediaError, match="at least one"):
        synthetic.compose_group([])


def test_tone_has_the_requested_length() -> None:
    samples = synthetic.tone(0.5, seed=2)
    assert samples.shape == (1, 24_000) and samples.dtype == np.float32
    assert 0.25 < np.abs(samples).max() <= 0.3 + 1e-6
    assert not np.array_equal(samples, synthetic.tone(0.5, seed=3))


def test_write_clip_frames_and_audio_length(tmp_path: Path) -> None:
    path = synthetic.write_clip(
        tmp_path / "c.mp4", synthetic.grace_hopper(), seconds=0.8, fps=20, size=(128, 96), seed=1
    )
    info = probe_video(path)
    assert info.frame_count == 16 and (info.width, info.height) == (128, 96)
    assert info.has_audio and info.audio_duration_s == pytest.approx(0.8, abs=1024 / 48_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]  # the temporary tone is gone
    silent = synthetic.write_clip(
        tmp_path / "s.mp4", synthetic.grace_hopper(), seconds=0.2, size=(64, 48), with_audio=False
    )
    assert not probe_video(silent).has_audio


def test_audio_only_file_has_only_audio(tmp_path: Path) -> None:
    path = synthetic.write_audio_only(tmp_path / "a.m4a", 0.5)
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 0
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        assert float(stream.duration * stream.time_base) == pytest.approx(0.5, abs=1024 / 48_000)


def test_corrupt_variants_are_all_written(tmp_path: Path) -> None:
    variants = synthetic.write_corrupt_variants(tmp_path)
    assert set(variants) == {
        "zero_byte_jpg",
        "zero_byte_mp4",
        "truncated_jpg",
        "random_bytes_jpg",
        "text_png",
        "bomb_png",
        "truncated_mp4",
        "malformed_mp4",
        "audio_only_m4a",
    }
    assert all(path.is_file() and path.parent == tmp_path for path in variants.values())
    assert variants["zero_byte_jpg"].stat().st_size == 0
    assert variants["bomb_png"].stat().st_size < 4096


def test_a_talking_portrait_opens_its_mouth_as_speech_says() -> None:
    """The open-mouth speech clip of the render benchmark: FaceMesh reads the mouth opening the
    generator drew, frame by frame, and the head still moves as in ``animate_portrait``."""
    from likeness.faces.detect import FaceDetector
    from likeness.render.quality import mouth_opening

    openings = synthetic.speech_openings(30, seed=1)
    assert openings.min() == 0.0 and 0.3 < openings.max() <= 0.45  # closed pauses, open syllables
    frames = list(synthetic.talking_portrait(synthetic.grace_hopper(), n_frames=30, size=(640, 360), seed=1))
    still = list(synthetic.animate_portrait(synthetic.grace_hopper(), n_frames=30, size=(640, 360), seed=1))
    closed = int(np.argmin(openings))
    np.testing.assert_array_equal(frames[closed], still[closed])  # a closed mouth is the portrait itself
    with FaceDetector(mode="image") as detector:
        measured = np.array([mouth_opening(detector.detect(f)[0].landmarks) for f in frames])
    assert np.corrcoef(openings, measured)[0, 1] > 0.9
    assert measured.max() > 0.15 and measured[closed] < 0.05
    with pytest.raises(MediaError, match="no face"):
        next(synthetic.talking_portrait(np.full((200, 200, 3), 90, np.uint8), n_frames=1))
