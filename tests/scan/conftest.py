"""A generated collection for scans, built like tests/verify's media: labelled renders of mina
and copies made from them (re-encoded, mirrored, downscaled, byte-identical), mina's portrait
(enrolled), a stranger (grace_hopper), a faceless image, and corrupt and empty files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from likeness.media import encode_image, read_image, write_image
from likeness.media.synthetic import astronaut, grace_hopper
from likeness.provenance.writer import LabelledWriter, RenderJob

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture
def mina_world(consent_world):
    """Only mina (astronaut) is enrolled: grace_hopper is a face the gallery does not know."""
    from likeness.faceset import enroll_reference_photos

    report = enroll_reference_photos(consent_world.workspace, "mina", [consent_world.portrait_path("mina")])
    assert report.added == 1
    return consent_world


def _render(world, out: Path, rgb: np.ndarray):
    authz = world.authorize("music_video")
    return LabelledWriter(world.workspace).write_image(authz, RenderJob.new("image"), rgb, out)


@pytest.fixture
def collection(mina_world, tmp_path) -> Path:
    """``tmp_path/collection`` with 10 files; ``render.png`` and its 4 copies are one case."""
    import cv2

    folder = tmp_path / "collection"
    (folder / "reposts").mkdir(parents=True)
    render = _render(mina_world, folder / "render.png", astronaut())
    rgb = read_image(render.path)
    write_image(folder / "reposts" / "render_resaved.jpg", rgb, quality=80)
    write_image(folder / "reposts" / "render_mirrored.jpg", np.ascontiguousarray(rgb[:, ::-1]), quality=85)
    small = cv2.resize(rgb, (rgb.shape[1] * 360 // rgb.shape[0], 360), interpolation=cv2.INTER_AREA)
    write_image(folder / "reposts" / "render_360p.jpg", small, quality=85)
    (folder / "reposts" / "render_same_bytes.png").write_bytes(render.path.read_bytes())
    # a close crop of mina's portrait: her face, not a copy of the render's picture
    write_image(folder / "mina_portrait.jpg", np.ascontiguousarray(astronaut()[20:340, 80:400]), quality=90)
    write_image(folder / "stranger.jpg", grace_hopper(), quality=90)
    rng = np.random.default_rng(3)
    gradient = np.linspace(0, 255, 320, dtype=np.float32)[None, :, None] * np.ones((240, 1, 3), np.float32)
    write_image(folder / "landscape.png", np.clip(gradient + rng.normal(0, 8, gradient.shape), 0, 255).astype(np.uint8))
    good = encode_image(grace_hopper(), suffix=".jpg", quality=85)
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    return folder


#: what each file of ``collection`` must get
EXPECTED_VERDICTS = {
    "render.png": "authorized-synthetic",
    "render_same_bytes.png": "authorized-synthetic",
    "mina_portrait.jpg": "enrolled-artist-unlabelled",
    "stranger.jpg": "no-enrolled-artist",
    "landscape.png": "no-face",
    "truncated.jpg": "error",
    "empty.jpg": "error",
}
