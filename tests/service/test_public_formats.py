"""The public page and the console's uploads take AVIF and refuse HEIC up front with a 415
that says what to do (trial finding 9)."""

from __future__ import annotations

import pytest

from likeness.media.synthetic import grace_hopper
from tests.verify.test_heif_family import avif_bytes, heic_bytes

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")
VERIFY = "/api/v1/public/verify"


def test_avif_is_checked_and_heic_is_refused_with_a_way_out(service_world) -> None:
    client = service_world.client()
    avif = client.post(VERIFY, files={"file": ("p.avif", avif_bytes(grace_hopper()), "image/avif")})
    assert avif.status_code == 200, avif.text
    assert avif.json()["verdict"] != "error" and avif.json()["media_type"] == "image"
    heic = client.post(VERIFY, files={"file": ("IMG_0001.heic", heic_bytes(), "image/heic")})
    assert heic.status_code == 415, heic.text
    detail = heic.json()["detail"]
    assert "HEIC" in detail and "export it as JPEG" in detail and "HEIF/AVIF" not in detail


def test_a_heic_refusal_names_its_cause_for_the_page(service_world) -> None:
    # The page picks its own sentence by the problem's cause, in its language: the type alone
    # (unsupported-media) told a fan with an iPhone photo only "try a JPEG".
    heic = service_world.client().post(VERIFY, files={"file": ("IMG_0001.HEIC", heic_bytes(), "image/heic")})
    assert heic.status_code == 415 and heic.json()["cause"] == "heic"
    text = service_world.client().post(VERIFY, files={"file": ("notes.jpg", b"hello fans " * 10, "image/jpeg")})
    assert text.status_code == 415 and "cause" not in text.json()


def test_an_empty_file_is_its_own_problem(service_world) -> None:
    # A zero-byte file (a download or a share that did not finish) was a plain 400
    # "bad-request", which the page can only answer with "something went wrong".
    empty = service_world.client().post(VERIFY, files={"file": ("직캠 🎤.jpg", b"", "image/jpeg")})
    assert empty.status_code == 400, empty.text
    assert empty.json()["type"] == "urn:likeness:problem:empty-file"
    assert empty.json()["detail"].endswith(": the file is empty (0 bytes)")
