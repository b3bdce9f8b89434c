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
