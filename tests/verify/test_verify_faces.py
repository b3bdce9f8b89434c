"""Faces where people put them: tight face crops and small faces in group photos (issue 25)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from likeness.media import write_image
from likeness.media.synthetic import astronaut, grace_hopper
from likeness.verify.pipeline import verify_path

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")

# Landmark extents of the package portraits' faces (tests/faces/test_faces_detect.py).
ASTRONAUT_FACE = (178.0, 68.0, 272.0, 178.0)
GRACE_HOPPER_FACE = (165.0, 130.0, 355.0, 336.0)


@pytest.fixture
def mina_world(consent_world):
    """Only mina (astronaut) is enrolled."""
    from likeness.faceset import enroll_reference_photos

    report = enroll_reference_photos(consent_world.workspace, "mina", [consent_world.portrait_path("mina")])
    assert report.added == 1
    return consent_world


def tight_crop(
    rgb: np.ndarray, box: tuple[float, float, float, float], tightness: float, size: int = 250
) -> np.ndarray:
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    scale = size / (tightness * max(box[2] - box[0], box[3] - box[1]))
    affine = np.array([[scale, 0.0, size / 2.0 - scale * cx], [0.0, scale, size / 2.0 - scale * cy]])
    return cv2.warpAffine(rgb, affine, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def test_tight_crop_of_an_enrolled_face_is_not_no_face(mina_world, tmp_path):
    path = tmp_path / "close_up.jpg"
    write_image(path, tight_crop(astronaut(), ASTRONAUT_FACE, 0.9), quality=92)
    result = verify_path(mina_world.workspace, path)
    assert result.faces.detected == 1, result.verdict
    assert result.verdict.code == "enrolled-artist-unlabelled", result.verdict
    assert result.faces.faces[0].match.slug == "mina"


def test_tight_crop_of_a_stranger_is_a_face(mina_world, tmp_path):
    path = tmp_path / "stranger_close_up.png"
    write_image(path, tight_crop(grace_hopper(), GRACE_HOPPER_FACE, 1.0))
    result = verify_path(mina_world.workspace, path)
    assert result.verdict.code == "no-enrolled-artist", result.verdict


def test_group_photo_with_small_faces_finds_the_enrolled_one(mina_world, tmp_path):
    """24 heads with faces about 40 px wide on a 1600x900 frame, one of them mina's: before,
    the whole-frame pass found none (no-face); the fine tile pass finds all of them."""
    canvas = np.full((900, 1600, 3), 90, np.uint8)
    heads = [
        tight_crop(grace_hopper(), GRACE_HOPPER_FACE, 2.2, size=88),
        tight_crop(astronaut(), ASTRONAUT_FACE, 2.2, size=88),
    ]
    for k in range(24):
        head = heads[1] if k == 13 else heads[0]
        y, x = 150 + (k // 8) * 250, 80 + (k % 8) * 190
        canvas[y : y + 88, x : x + 88] = head
    path = tmp_path / "class_photo.png"
    write_image(path, canvas)
    result = verify_path(mina_world.workspace, path)
    assert result.faces.detected == 24, result.verdict
    matched = [f for f in result.faces.faces if f.match is not None]
    assert [f.match.slug for f in matched] == ["mina"], result.verdict
    x0, y0, x1, y1 = matched[0].bbox
    assert x0 >= 80 + 5 * 190 and x1 <= 80 + 5 * 190 + 88 and y0 >= 400 and y1 <= 400 + 88


def test_released_performers_raw_footage_is_a_known_performer_not_an_artist(enrolled_world, tmp_path):
    """jun (grace_hopper) is an enrolled performer: his untouched photo used to come back as an
    unlabelled *artist* (R6)."""
    photo = tmp_path / "jun_raw.jpg"
    write_image(photo, grace_hopper(), quality=90)
    result = verify_path(enrolled_world.workspace, photo)
    assert (result.verdict.code, result.verdict.rule) == ("no-enrolled-artist", "R7"), result.verdict
    face = result.faces.faces[0]
    assert face.match is None
    assert face.performer.slug == "jun" and face.performer.kind == "performer"
    assert any("known performer" in s and "jun" in s for s in result.verdict.evidence)
    assert result.to_dict()["faces"]["faces"][0]["performer"]["slug"] == "jun"
    # mina, the artist, is still an artist.
    artist = tmp_path / "mina.jpg"
    write_image(artist, astronaut(), quality=90)
    assert verify_path(enrolled_world.workspace, artist).verdict.code == "enrolled-artist-unlabelled"
