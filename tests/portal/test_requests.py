"""Grant requests: the shared payload format the portal and the offline CLI sign."""

from __future__ import annotations

import hashlib

import pytest

from likeness.consent.canonical import canonical_bytes
from likeness.consent.grant_requests import (
    Parties,
    check_uses_for_holder_kind,
    grant_payload_for,
    make_request,
    named_members,
    request_from_json,
    request_sha256,
    request_to_json,
    signing_challenge,
)
from likeness.errors import ConsentError, RegistryError

DIGEST = "ab" * 32
PARTIES = Parties("Studio Haneul", "haneul", "Mina", "mina", "artist", "Mina", "artist")


def _request(**overrides):
    fields = dict(
        request_id="r1",
        subject_id="s1",
        org_id="o1",
        uses=["Music-Video", "training"],
        valid_from="2026-12-01T00:00:00Z",
        valid_until="2027-06-30T00:00:00Z",
        max_renders=20,
        allow_unlabelled=False,
        purpose="music videos",
        preview_sha256=[DIGEST],
        requested_at="2026-12-01T00:00:00Z",
    )
    fields.update(overrides)
    return make_request(**fields)


def test_request_round_trips_through_json_with_the_same_digest() -> None:
    request = _request()
    assert request.uses == ("music_video", "training")
    again = request_from_json(request_to_json(request))
    assert again == request
    assert request_sha256(again) == request_sha256(request)


@pytest.mark.parametrize("use", ["sexual_content", "porn", "political"])
def test_a_request_naming_a_prohibited_use_is_refused(use: str) -> None:
    with pytest.raises(ConsentError) as caught:
        _request(uses=["music_video", use])
    assert caught.value.reason == "prohibited_use"


def test_a_request_json_edited_to_a_prohibited_use_is_refused_on_reading() -> None:
    text = request_to_json(_request()).replace('"training"', '"fraud_impersonation"')
    with pytest.raises(ConsentError) as caught:
        request_from_json(text)
    assert caught.value.reason == "prohibited_use"


def test_bad_windows_limits_and_previews_are_refused() -> None:
    with pytest.raises(RegistryError):
        _request(valid_until="2026-11-01T00:00:00Z")
    with pytest.raises(RegistryError):
        _request(max_renders=0)
    with pytest.raises(RegistryError):
        _request(preview_sha256=["not-a-digest"])


def test_estate_signs_only_tribute_and_its_neighbours() -> None:
    check_uses_for_holder_kind(("tribute", "training"), "estate")
    check_uses_for_holder_kind(("advertising",), "artist")
    for uses in (("advertising", "tribute"), ("music_video",)):
        with pytest.raises(ConsentError) as caught:
            check_uses_for_holder_kind(uses, "estate")
        assert caught.value.reason == "use_not_granted"


def test_the_challenge_is_the_sha256_of_the_canonical_grant_payload() -> None:
    payload = grant_payload_for(
        _request(),
        grant_id="g1",
        holder_id="h1",
        holder_fingerprint="webauthn:x",
        issued_at="2026-12-01T00:00:00Z",
        parties=PARTIES,
    )
    assert payload["type"] == "likeness.grant.v2" and payload["uses"] == ["music_video", "training"]
    # What the holder reads is signed: the names and the preview stills.
    assert payload["org_name"] == "Studio Haneul" and payload["subject_name"] == "Mina"
    assert payload["preview_sha256"] == [DIGEST]
    assert signing_challenge(payload) == hashlib.sha256(canonical_bytes(payload)).digest()


def test_the_grant_payload_is_the_one_the_policy_engine_rebuilds_from_a_row() -> None:
    import json

    from likeness.consent.registry import grant_payload
    from likeness.consent.tables import Grant

    request = _request()
    payload, v1 = (
        grant_payload_for(
            request,
            grant_id="g1",
            holder_id="h1",
            holder_fingerprint="webauthn:x",
            issued_at="2026-12-01T00:00:00Z",
            parties=parties,
        )
        for parties in (PARTIES, None)
    )
    row = Grant(
        id="g1",
        subject_id="s1",
        org_id="o1",
        holder_id="h1",
        uses=json.dumps(list(request.uses)),
        valid_from=request.valid_from,
        valid_until=request.valid_until,
        max_renders=20,
        allow_unlabelled=False,
        purpose="music videos",
        issued_at="2026-12-01T00:00:00Z",
    )
    assert grant_payload(row, "webauthn:x", named_members(payload)) == payload
    assert grant_payload(row, "webauthn:x") == v1 and v1["type"] == "likeness.grant.v1"
