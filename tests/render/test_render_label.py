"""Rendered output carries the visible label in the safe area, off the faces, and (video) the face
tag beside the swapped face: still found when the main label is cut away."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from likeness.faces import FaceDetector
from likeness.media import read_image, write_image
from likeness.media.synthetic import grace_hopper
from likeness.media.video import iter_video_frames
from likeness.provenance.label_detect import detect_visible_label
from likeness.provenance.visible_label import label_geometry
from likeness.render import RenderOptions, render_media


def _overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_video_render_has_the_label_and_a_face_tag(trained_world, performer_clip, tmp_path: Path) -> None:
    out = tmp_path / "render.mp4"
    render_media(
        trained_world.workspace,
        trained_world.model_dir,
        performer_clip,
        out,
        use="music_video",
        org="studio",
        options=RenderOptions(quality_every=10, write_report=False),
    )
    frames = [f.rgb for f in iter_video_frames(out)]
    last = frames[-1]
    height, width = last.shape[:2]
    assert detect_visible_label(last).present
    # Blank the main label out: the tag beside the face still says the picture is AI-made.
    x0, y0, x1, y1 = label_geometry(width, height).box
    without_label = last.copy()
    without_label[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = 128
    found = detect_visible_label(without_label)
    assert found.present, found
    detector = FaceDetector(max_faces=2, mode="image")
    try:
        faces = detector.detect(np.ascontiguousarray(frames[-1]))
    finally:
        detector.close()
    assert faces and not any(_overlaps(found.where, face.bbox) for face in faces)


def test_image_render_keeps_the_label_off_the_face(trained_world, tmp_path: Path) -> None:
    target = tmp_path / "target.png"
    write_image(target, grace_hopper())
    out = tmp_path / "out.png"
    render_media(
        trained_world.workspace,
        trained_world.model_dir,
        target,
        out,
        use="music_video",
        org="studio",
        options=RenderOptions(quality_every=10, write_report=False),
    )
    rendered = read_image(out)
    found = detect_visible_label(rendered)
    assert found.present
    detector = FaceDetector(max_faces=2, mode="image")
    try:
        faces = detector.detect(rendered)
    finally:
        detector.close()
    assert faces and not any(_overlaps(found.where, face.bbox) for face in faces)
