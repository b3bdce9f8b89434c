"""The labelled writer places the visible label off the faces and tags the synthetic face in video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from likeness.errors import ProvenanceError
from likeness.media import iter_video_frames, read_image
from likeness.media.synthetic import animate_portrait, astronaut
from likeness.provenance.label_detect import detect_visible_label
from likeness.provenance.visible_label import label_geometry
from likeness.provenance.writer import LabelledWriter, RenderJob


def test_image_label_keeps_clear_of_the_swapped_face(consent_world, tmp_path: Path) -> None:
    rgb = astronaut()
    default = label_geometry(512, 512).box
    face = (default[0] - 10.0, default[1] - 150.0, default[2] + 10.0, default[3] + 5.0)  # over the default slot
    result = LabelledWriter(consent_world.workspace).write_image(
        consent_world.authorize("music_video"), RenderJob.new("image"), rgb, tmp_path / "shot.png", faces=[face]
    )
    out = read_image(result.path)
    changed = np.abs(out.astype(int) - rgb.astype(int)).max(axis=-1) > 40
    x0, y0, x1, y1 = (round(v) for v in face)
    assert not changed[y0:y1, x0:x1].any()  # the face is untouched (beyond the faint watermark)
    found = detect_visible_label(out)
    assert found.present and found.where is not None and found.where[3] <= y0


def test_video_tags_the_synthetic_face_beside_it(consent_world, tmp_path: Path) -> None:
    frames = list(animate_portrait(astronaut(), n_frames=10, size=(640, 360), seed=1))
    face = (470.0, 40.0, 610.0, 180.0)
    job = RenderJob.new("video")
    out = tmp_path / "clip.mp4"
    with LabelledWriter(consent_world.workspace).open_video(
        consent_world.authorize("music_video"),
        job,
        out,
        width=640,
        height=360,
        fps=10,
    ) as video:
        for frame in frames:
            video.write(frame, faces=[face])
    decoded = [f.rgb for f in iter_video_frames(out)]
    last = decoded[-1]
    # Reframed to the performer (the main label cut off): the tag beside the face still says it.
    main = label_geometry(640, 360).box
    reframe = np.ascontiguousarray(last[:, 420:])
    assert main[2] < 420
    found = detect_visible_label(reframe)
    assert found.present, found
    tx0, ty0, tx1, ty1 = found.where
    assert ty0 >= 180 or ty1 <= 40  # below or above the face, never over it
    assert detect_visible_label(last).present


def test_render_job_placement_is_checked() -> None:
    assert RenderJob.new("image").label_placement == "safe"
    assert RenderJob.new("image", label_placement="top-left").label_placement == "top-left"
    with pytest.raises(ProvenanceError, match="placement"):
        RenderJob.new("image", label_placement="middle")  # type: ignore[arg-type]


def test_video_label_is_placed_off_the_first_frames_faces_and_stays(consent_world, tmp_path: Path) -> None:
    frames = list(animate_portrait(astronaut(), n_frames=6, size=(640, 360), seed=2))
    default = label_geometry(640, 360).box
    chin = (default[0] - 10.0, default[1] - 100.0, default[2] + 10.0, default[3] + 5.0)
    out = tmp_path / "close.mp4"
    with LabelledWriter(consent_world.workspace).open_video(
        consent_world.authorize("music_video"),
        RenderJob.new("video"),
        out,
        width=640,
        height=360,
        fps=10,
    ) as video:
        for index, frame in enumerate(frames):
            # A face that was not swapped: the label keeps off it, no tag follows it.
            video.write(frame, faces=[], other_faces=[chin] if index == 0 else ())
    places = [detect_visible_label(f.rgb).where for f in iter_video_frames(out)]
    assert all(p is not None and p[3] <= chin[1] for p in places)  # above the face, in every frame
    assert max(abs(a - b) for p in places for a, b in zip(p, places[0])) <= 3  # and it stays put
