"""Reference enrollment: one face per photo, of the subject, stored as a 128-D embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from likeness.faceset import enroll_reference_photos
from likeness.media import synthetic, write_image


def test_enrollment_keeps_single_face_photos_and_explains_the_rest(consent_world, tmp_path: Path, astronaut, grace_hopper) -> None:
    ws = consent_world.workspace
    rng = np.random.default_rng(0)
    photos = {
        "front": write_image(tmp_path / "front.png", astronaut),
        "mirrored": write_image(tmp_path / "mirrored.jpg", np.ascontiguousarray(astronaut[:, ::-1])),
        "group": write_image(tmp_path / "group.png", synthetic.compose_group([astronaut, grace_hopper], size=(1024, 512))),
        "noise": write_image(tmp_path / "noise.png", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)),
        "someone_else": write_image(tmp_path / "someone_else.png", grace_hopper),
        "empty": tmp_path / "empty.jpg",
    }
    photos["empty"].write_bytes(b"")
    report = enroll_reference_photos(ws, "mina", list(photos.values()))
    assert report.added == 2 and report.ok
    reasons = {Path(p).stem: reason for p, reason in report.skipped}
    assert set(reasons) == {"group", "noise", "someone_else", "empty"}
    assert "2 faces found" in reasons["group"]
    assert reasons["noise"] == "no face found"
    assert "does not match mina" in reasons["someone_else"]
    assert reasons["empty"].startswith("empty file")
    references = ws.registry.reference_embeddings("mina")
    assert references.shape == (2, 128) and references.dtype == np.float32

    again = enroll_reference_photos(ws, "mina", [photos["front"]])
    assert again.added == 0 and again.already_enrolled == [str(photos["front"])]
    assert ws.registry.reference_embeddings("mina").shape == (2, 128)
