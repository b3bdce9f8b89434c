"""One grant request for both signing paths (issue 29): a request drafted in the portal can be
signed offline with an Ed25519 key and one drafted offline can be signed with a passkey, both
write one ``grant.requested`` shape, one lookup finds them, and events written in either
earlier shape are still read."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, canonical_sha256, now_utc, utc_iso
from likeness.consent.grant_requests import (
    ConsentRequest,
    SignedConsent,
    describe,
    grant_payload_for,
    make_request,
    request_payload,
    request_sha256,
)
from likeness.consent.tables import GrantRequestRow
from likeness.errors import ConsentError, ConsentRequestError, RegistryError
from tests.conftest import add_holder, holder_machine
from tests.portal.conftest import PasskeyWorld

UNTIL = timedelta(days=30)


def refusal(call) -> ConsentError:
    with pytest.raises(ConsentError) as info:
        call()
    return info.value


def ed25519_holder(world: PasskeyWorld, slug: str = "mina") -> str:
    """A holder enrolled with an Ed25519 key on their own machine (no passkey: an invitation
    cannot give them one, test_invitation_takeover.py)."""
    reg = world.workspace.registry
    holder = add_holder(reg, f"{slug}-holder", f"{slug.title()} Holder", kind="artist")
    reg.add_subject(slug, slug.title(), kind="artist", holder=holder.slug)
    return holder.id


def test_both_paths_write_one_event_shape_that_one_lookup_finds(passkey_world):
    world = passkey_world
    ed25519_holder(world)
    reg = world.workspace.registry
    in_portal = world.request()  # haneul: passkey-only holder
    offline = reg.request_grant("mina", "studio", ["music_video"], valid_until=now_utc() + UNTIL)
    for request_id in (in_portal.request_id, offline.record_id):
        found = reg.requested_grant(request_id)
        assert found is not None and found.shape == "v2" and found.request_id == request_id
        (event,) = world.workspace.ledger.find("grant.requested", request_id=request_id)
        assert set(event.payload) == {
            *request_payload(found.terms),
            "request_sha256",
            "created_by",
            "holder_id",
            "grant_id",
            "payload",
            "payload_sha256",
        }
        assert event.payload["grant_id"] == request_id
    assert reg.requested_grant(in_portal.request_id).payload is None  # no Ed25519 key to address
    assert reg.requested_grant(offline.record_id).payload == offline.payload
    assert reg.requested_grant("0" * 32) is None


def test_a_portal_request_is_exported_signed_offline_and_imported(passkey_world, tmp_path):
    world = passkey_world
    ed25519_holder(world)
    reg = world.workspace.registry
    drafted = world.request(uses=("music_video",), subject="mina")
    exported = reg.request_file(drafted.request_id)
    # The file round-trips as REQUEST.json and means the same terms the portal shows.
    parsed = ConsentRequest.from_json(json.loads(json.dumps(exported.as_json())))
    assert parsed.terms == drafted
    signed = holder_machine(reg).sign(parsed, "mina-holder")
    assert reg.import_signed(signed) == drafted.request_id
    assert world.workspace.policy.authorize("mina", "music_video", "studio").grant_id == drafted.request_id
    pending = world.portal.request(drafted.request_id)
    assert pending.state == "signed" and pending.grant_id == drafted.request_id
    # ... so the passkey cannot sign it a second time.
    holder_id = reg.get_holder("mina-holder").id
    with pytest.raises(RegistryError, match="already signed"):
        world.portal.grant_to_sign(drafted.request_id, holder_id, b"any")
    with pytest.raises(RegistryError, match="already"):
        reg.request_file(drafted.request_id)


def test_an_offline_request_shows_in_the_portal_and_one_answer_makes_one_grant(passkey_world):
    world = passkey_world
    holder_id = ed25519_holder(world)
    reg = world.workspace.registry
    offline = reg.request_grant("mina", "studio", ["music_video"], valid_until=now_utc() + UNTIL, max_renders=5)
    (pending,) = world.portal.requests_for_holder(holder_id)
    assert pending.request == offline.terms and pending.state == "pending"
    # The holder signs with their own key: the organisation cannot give them a passkey of its own.
    assert refusal(lambda: world.portal.invite("mina-holder", "studio", created_by="admin")).reason == (
        "invitation_refused"
    )
    signed = holder_machine(reg).sign(offline, "mina-holder")
    assert reg.import_signed(signed) == offline.record_id
    assert world.workspace.policy.authorize("mina", "music_video", "studio").grant_id == offline.record_id
    with pytest.raises(RegistryError, match="already"):
        reg.import_signed(signed)
    assert audit_workspace(world.workspace).ok


def test_a_passkey_only_holder_is_refused_offline_signing_precisely(passkey_world, tmp_path):
    world = passkey_world
    reg = world.workspace.registry
    events = len(world.workspace.ledger.events())
    with pytest.raises(RegistryError, match="'haneul-holder' signs with passkeys only: no Ed25519 key"):
        reg.request_grant("haneul", "studio", ["music_video"], valid_until=now_utc() + UNTIL)
    assert len(world.workspace.ledger.events()) == events  # nothing drafted
    drafted = world.request()
    with pytest.raises(RegistryError, match="signs with passkeys only"):
        reg.request_file(drafted.request_id)
    # The CLI says the same, without a traceback.
    result = CliRunner().invoke(
        app,
        ["--home", str(world.workspace.home), "consent", "request", "haneul", "--use", "music_video"]
        + ["--until", "+30d", "--out", str(tmp_path / "r.json")],
    )
    assert result.exit_code != 0 and "passkeys only" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "r.json").exists()


def test_the_estate_rule_holds_offline_at_request_sign_and_import(passkey_world):
    world = passkey_world
    reg = world.workspace.registry
    estate = add_holder(reg, "lee-estate", "Estate of Lee", kind="estate")
    reg.add_subject("lee", "Lee", kind="artist", holder=estate.slug)
    machine = holder_machine(reg)
    until = now_utc() + UNTIL
    error = refusal(lambda: reg.request_grant("lee", "studio", ["advertising", "tribute"], valid_until=until))
    assert error.reason == "use_not_granted" and "advertising" in str(error)
    refused = world.workspace.ledger.find("grant.refused", subject="lee")
    assert refused and refused[-1].payload["reason"] == "use_not_granted"
    # A tribute request is fine; the file widened to advertising is refused by the holder's tool ...
    request = reg.request_grant("lee", "studio", ["tribute"], valid_until=until)
    assert "tributes" in " ".join(describe(request))
    widened_payload = {**request.payload, "uses": ["advertising", "tribute"]}
    widened = dataclasses.replace(request, payload=widened_payload)
    assert refusal(lambda: machine.sign(widened, "lee-estate")).reason == "use_not_granted"
    # ... and, signed anyway, at import, even against a request event someone appended for it.
    world.workspace.ledger.append(
        "grant.requested",
        {
            "grant_id": "e" * 32,
            "payload": {**widened_payload, "grant_id": "e" * 32},
            "payload_sha256": canonical_sha256({**widened_payload, "grant_id": "e" * 32}),
            "preview_sha256": [],
        },
    )
    for payload in (widened_payload, {**widened_payload, "grant_id": "e" * 32}):
        key = machine.key("lee-estate")
        forged = SignedConsent(payload, keys.sign(key, canonical_bytes(payload)), keys.public_raw(key).hex(), "", None)
        assert refusal(lambda forged=forged: reg.import_signed(forged)).reason == "use_not_granted"
    assert reg.grant_state(request.record_id) == "unknown"
    assert reg.import_signed(machine.sign(request, "lee-estate")) == request.record_id  # the tribute itself


# --- events written before the request was one -----------------------------------------------


def _portal_v1(world: PasskeyWorld, subject: str) -> str:
    """A request as the portal wrote it before: a row and an event keyed by ``request_id``."""
    reg = world.workspace.registry
    record, moment = reg.get_subject(subject), utc_iso(now_utc())
    terms = make_request(
        request_id="a" * 32,
        subject_id=record.id,
        org_id=reg.get_org("studio").id,
        uses=["music_video"],
        valid_from=moment,
        valid_until=utc_iso(now_utc() + UNTIL),
        max_renders=3,
        allow_unlabelled=False,
        purpose="old portal request",
        preview_sha256=[],
        requested_at=moment,
    )
    with world.portal._session() as session:
        session.add(
            GrantRequestRow(
                id=terms.request_id,
                subject_id=record.id,
                org_id=terms.org_id,
                payload=canonical_bytes(request_payload(terms)).decode(),
                request_sha256=request_sha256(terms),
                state="pending",
                created_by="legal",
                created_at=moment,
            )
        )
        session.commit()
    world.workspace.ledger.append(
        "grant.requested", {**request_payload(terms), "request_sha256": request_sha256(terms), "created_by": "legal"}
    )
    return terms.request_id


def _offline_v1(world: PasskeyWorld, subject: str) -> ConsentRequest:
    """A request as ``consent request`` wrote it before: the payload keyed by ``grant_id``."""
    reg = world.workspace.registry
    record = reg.get_subject(subject)
    holder = reg.get_holder(record.holder_id)
    moment = utc_iso(now_utc())
    terms = make_request(
        request_id="b" * 32,
        subject_id=record.id,
        org_id=reg.get_org("studio").id,
        uses=["virtual_stage"],
        valid_from=moment,
        valid_until=utc_iso(now_utc() + UNTIL),
        max_renders=None,
        allow_unlabelled=False,
        purpose="old offline request",
        preview_sha256=[],
        requested_at=moment,
    )
    payload = grant_payload_for(
        terms,
        grant_id=terms.request_id,
        holder_id=holder.id,
        holder_fingerprint=reg.holder_fingerprint(holder.id),
        issued_at=moment,
        parties=None,  # the ids-only v1 payload requests were drafted with then
    )
    world.workspace.ledger.append(
        "grant.requested",
        {
            "grant_id": terms.request_id,
            "payload": payload,
            "payload_sha256": canonical_sha256(payload),
            "preview_sha256": [],
        },
    )
    org = reg.get_org("studio")
    return ConsentRequest(
        payload=payload,
        organisation={"id": org.id, "slug": org.slug, "name": org.name},
        subject={"id": record.id, "slug": record.slug, "name": record.name, "kind": record.kind},
        holder={"id": holder.id, "slug": holder.slug, "name": holder.name, "kind": holder.kind},
        requested_at=moment,
    )


def test_requests_in_either_earlier_shape_are_still_found_signed_and_verified(passkey_world):
    world = passkey_world
    reg = world.workspace.registry
    ed25519_holder(world)
    portal_id = _portal_v1(world, "haneul")
    offline = _offline_v1(world, "mina")
    found_portal, found_offline = reg.requested_grant(portal_id), reg.requested_grant(offline.record_id)
    assert found_portal is not None and found_portal.shape == "portal-v1" and found_portal.payload is None
    assert found_offline is not None and found_offline.shape == "offline-v1"
    assert found_offline.payload == offline.payload and found_offline.terms.purpose == "old offline request"
    subjects = {s: reg.get_subject(s).id for s in ("haneul", "mina")}
    assert [r.request_id for r in reg.grant_requests_of_subject(subjects["mina"])] == [offline.record_id]
    assert audit_workspace(world.workspace).ok
    # The old portal request is shown and signed with the passkey; the old offline one imports.
    assert world.portal.request(portal_id).request.purpose == "old portal request"
    grant_id = world.sign(world.portal.request(portal_id).request)
    assert reg.grant_state(grant_id) == "active"
    # The holder's tool signs no v1 request now (its names are not signed); one signed before imports.
    with pytest.raises(ConsentRequestError, match="ask the organisation for a new request"):
        holder_machine(reg).sign(offline, "mina-holder")
    key = holder_machine(reg).key("mina-holder")
    signed_before = SignedConsent(
        offline.payload, keys.sign(key, canonical_bytes(offline.payload)), keys.public_raw(key).hex(), "", offline
    )
    assert reg.import_signed(signed_before) == offline.record_id
    assert reg.grant_state(offline.record_id) == "active"
    # The holder's trail lists requests in either shape.
    trail = world.portal.holder_events(reg.get_holder("mina-holder").id)
    assert any(e.event_type == "grant.requested" and e.payload.get("grant_id") == offline.record_id for e in trail)
    # An old offline request cannot be asked again as a file after it was answered.
    with pytest.raises(RegistryError, match="already"):
        reg.request_file(offline.record_id)
    # And an Ed25519 answer to a request that names no payload (the old portal shape) is refused.
    error = refusal(lambda: reg.import_signed(_answer_to(world, portal_id)))
    assert error.reason == "not_requested" and "names no payload for an Ed25519 key" in str(error)
    report = audit_workspace(world.workspace)
    assert report.ok, report.problems


def _answer_to(world: PasskeyWorld, request_id: str) -> SignedConsent:
    reg = world.workspace.registry
    terms = world.portal.request(request_id).request
    key = holder_machine(reg).key("mina-holder")
    payload = grant_payload_for(
        terms,
        grant_id=request_id,
        holder_id=reg.get_holder("mina-holder").id,
        holder_fingerprint=keys.fingerprint(keys.public_raw(key)),
        issued_at=utc_iso(now_utc()),
        parties=None,
    )
    return SignedConsent(payload, keys.sign(key, canonical_bytes(payload)), keys.public_raw(key).hex(), "", None)


def test_an_edited_request_event_is_refused_by_the_lookup(passkey_world):
    """A terms digest that does not match (an event appended with edited terms) is tampering."""
    world = passkey_world
    drafted = world.request()
    body = {**request_payload(drafted), "request_id": "d" * 32, "uses": ["advertising"]}
    world.workspace.ledger.append("grant.requested", {**body, "request_sha256": request_sha256(drafted)})
    assert refusal(lambda: world.workspace.registry.requested_grant("d" * 32)).reason == "grant_altered"


def test_the_cli_exports_a_portal_request_as_request_json(passkey_world, tmp_path):
    world = passkey_world
    ed25519_holder(world)
    drafted = world.request(uses=("music_video",), subject="mina")
    home = str(world.workspace.home)
    out = tmp_path / "request.json"
    result = CliRunner().invoke(
        app, ["--home", home, "consent", "export-request", drafted.request_id, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert ConsentRequest.from_json(json.loads(out.read_text())).terms == drafted
    haneul = world.request()
    refused = CliRunner().invoke(
        app, ["--home", home, "consent", "export-request", haneul.request_id, "--out", str(tmp_path / "h.json")]
    )
    assert refused.exit_code != 0 and "passkeys only" in " ".join(refused.output.split())
    assert "Traceback" not in refused.output


def test_a_request_set_back_to_pending_in_sql_is_not_signed_twice(passkey_world):
    from sqlalchemy import text

    world = passkey_world
    holder_id = ed25519_holder(world)
    reg = world.workspace.registry
    offline = reg.request_grant("mina", "studio", ["music_video"], valid_until=now_utc() + UNTIL)
    reg.import_signed(holder_machine(reg).sign(offline, "mina-holder"))
    with world.workspace.engine.begin() as connection:
        connection.execute(
            text("UPDATE grant_requests SET state = 'pending' WHERE id = :id"), {"id": offline.record_id}
        )
    with pytest.raises(RegistryError, match="already signed"):
        world.portal.grant_to_sign(offline.record_id, holder_id, b"any")
