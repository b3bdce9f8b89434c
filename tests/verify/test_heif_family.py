"""The HEIF family (trial finding 9): AVIF pictures are read like any other image; HEIC/HEIF
pictures (HEVC-coded, an iPhone's default) need a decoder this product does not ship, so they
are refused by their first bytes, saying so and what to do, instead of being accepted and then
failing as "not a readable image"."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from likeness.errors import MediaError
from likeness.media import read_image
from likeness.media.file_kind import sniff, unreadable_reason
from likeness.media.synthetic import grace_hopper
from likeness.verify.pipeline import verify_path

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")
#: The head of an iPhone photo: an ftyp box of major brand heic, compatible mif1 and heic.
HEIC_HEAD = b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic"


def avif_bytes(rgb: np.ndarray, *, major: bytes = b"avif") -> bytes:
    stream = io.BytesIO()
    Image.fromarray(rgb).save(stream, format="AVIF", quality=90)
    data = stream.getvalue()
    assert data[4:12] == b"ftypavif"
    return data[:8] + major + data[12:]


def heic_bytes() -> bytes:
    return HEIC_HEAD + bytes(range(256)) * 20


def test_an_avif_picture_is_read(tmp_path) -> None:
    portrait = grace_hopper()
    path = tmp_path / "portrait.avif"
    path.write_bytes(avif_bytes(portrait))
    rgb = read_image(path)
    assert rgb.shape == portrait.shape and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - portrait.astype(int)).mean() < 8  # lossy, but the same picture


def test_the_heif_family_is_told_apart_by_its_brands() -> None:
    assert sniff(avif_bytes(grace_hopper())[:32]).container == "avif"
    assert sniff(avif_bytes(grace_hopper(), major=b"mif1")[:32]).container == "avif"  # avif among compatible
    heic = sniff(HEIC_HEAD)
    assert heic.media_type is None and heic.container == "heic"
    assert "HEIC" in unreadable_reason(heic) and "JPEG" in unreadable_reason(heic)
    assert sniff(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2").media_type == "video"


def test_the_reader_refuses_heic_by_name(tmp_path) -> None:
    path = tmp_path / "IMG_0001.heic"
    path.write_bytes(heic_bytes())
    with pytest.raises(MediaError, match="not a readable image"):
        read_image(path)


def test_verify_reads_avif_and_names_heic_as_the_reason(consent_world, tmp_path) -> None:
    avif = tmp_path / "portrait.avif"
    avif.write_bytes(avif_bytes(grace_hopper()))
    read = verify_path(consent_world.workspace, avif, record=False)
    assert read.verdict.code != "error", read.verdict.evidence
    assert read.media_type == "image" and not [e for e in read.errors if e.stage == "read"]
    heic = tmp_path / "IMG_0001.heic"
    heic.write_bytes(heic_bytes())
    refused = verify_path(consent_world.workspace, heic, record=False)
    assert refused.verdict.code == "error"
    assert "HEIC" in refused.verdict.evidence[0] and "export it as JPEG" in refused.verdict.evidence[0]
