"""Generated media for the public page, one file per verdict the verifier gives.

Made with the product's own labelled writer (``tests/verify/test_verify_files.render_image``)
over the service fixtures' consent world (mina enrolled from the astronaut; grace_hopper is a
stranger). Used by the API tests, the browser tests and ``benchmarks/public_verify.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from likeness.media import read_image, write_image
from likeness.media.synthetic import animate_portrait, astronaut, grace_hopper, write_corrupt_variants
from likeness.media.video.decode import iter_video_frames
from likeness.media.video.encode import transcode
from likeness.provenance.writer import LabelledWriter, RenderJob
from tests.conftest import flip_entropy_bit
from tests.verify.test_verify_files import render_image

#: A 9:16 phone clip ("fancam"), small so that the tests stay fast.
FANCAM_SIZE = (360, 640)


def allow_many_checks(app, per_minute: int = 1000) -> None:
    """Tests that check every verdict from one client need more than the default rate."""
    from likeness.service.security import RateLimiter

    app.state.services.public_limiter = RateLimiter(per_minute, 60.0)


def enroll_mina(world) -> None:
    """Enrol only mina's reference face, so that grace_hopper is nobody this agency knows."""
    from likeness.faceset import enroll_reference_photos

    if not world.workspace.registry.all_reference_embeddings():
        report = enroll_reference_photos(world.workspace, "mina", [world.portrait_path("mina")])
        assert report.added == 1


def labelled_fancam(world, out: Path, *, frames: int = 20, size: tuple[int, int] = FANCAM_SIZE) -> Path:
    """A labelled 9:16 render of mina (watermark, C2PA, visible label), as the product writes it."""
    authz = world.authorize("music_video")
    width, height = size
    with LabelledWriter(world.workspace).open_video(
        authz, RenderJob.new("video"), out, width=width, height=height, fps=10
    ) as video:
        for frame in animate_portrait(astronaut(), n_frames=frames, size=size, seed=1):
            video.write(frame)
    return out


def no_face_picture() -> np.ndarray:
    rng = np.random.default_rng(3)
    gradient = np.linspace(0, 255, 320, dtype=np.float32)[None, :, None] * np.ones((240, 1, 3), np.float32)
    return np.clip(gradient + rng.normal(0, 8, gradient.shape), 0, 255).astype(np.uint8)


def verdict_media(world, folder: Path) -> dict[str, Path]:
    """``{name: file}``: ``labelled`` (a labelled 9:16 render), ``reencoded`` (it, decoded and
    encoded again: no C2PA, the watermark stays), ``still`` (a PNG of one of its frames),
    ``labelled_image`` (a labelled PNG still, checked again after a revocation),
    ``tampered`` (a labelled JPEG with one byte flipped), ``unlabelled`` (mina's photo),
    ``stranger`` (grace_hopper), ``no_face``, ``corrupt`` (a JPEG cut short) and
    ``other_issuer`` (a labelled still of another workspace)."""
    folder.mkdir(parents=True, exist_ok=True)
    enroll_mina(world)
    media: dict[str, Path] = {}
    media["labelled"] = labelled_fancam(world, folder / "fancam.mp4")
    media["reencoded"] = folder / "fancam-reencoded.mp4"
    transcode(media["labelled"], media["reencoded"], crf=20)
    first = next(iter(iter_video_frames(media["labelled"], start=5)))
    media["still"] = write_image(folder / "fancam-still.png", first.rgb)
    media["labelled_image"] = render_image(world, folder / "render.png").path
    jpeg = render_image(world, folder / "render.jpg").path
    media["tampered"] = folder / "tampered.jpg"
    media["tampered"].write_bytes(flip_entropy_bit(jpeg.read_bytes()))
    media["unlabelled"] = write_image(folder / "at the airport.jpg", astronaut(), quality=90)
    media["stranger"] = write_image(folder / "stranger.jpg", grace_hopper(), quality=90)
    media["no_face"] = write_image(folder / "landscape.png", no_face_picture())
    media["corrupt"] = write_corrupt_variants(folder / "bad")["truncated_jpg"]
    media["other_issuer"] = other_issuers_render(folder / "elsewhere")
    return media


def other_issuers_render(folder: Path) -> Path:
    """A labelled still made by another workspace (its own organisation, signer and ledger):
    its manifest is valid and declares AI, but nothing about it is ours."""
    from likeness.config import Settings
    from likeness.workspace import Workspace
    from tests.conftest import build_consent_world

    folder.mkdir(parents=True, exist_ok=True)
    elsewhere = Workspace.init(Settings(home=folder / "home"))
    try:
        return render_image(build_consent_world(elsewhere, folder), folder / "their render.png").path
    finally:
        elsewhere.close()


def reencoded_copy(path: Path, out: Path) -> Path:
    """A still decoded and written again (the manifest is gone, the pixels keep the watermark)."""
    return write_image(out, read_image(path))
