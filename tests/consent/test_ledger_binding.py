"""Consent rows count only as their ledger events say: attacks by someone who can write the
database (and read the workspace's key files), each refused with its reason and named by
``consent_row_problems`` (what ``likeness audit verify`` reports)."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.orm import Session

from likeness.consent import keys
from likeness.consent.canonical import canonical_bytes, canonical_sha256, now_utc, utc_iso
from likeness.consent.holder import load_holder_key, sign_revocation, sign_rotation
from likeness.consent.integrity import ConsentProblem, consent_row_problems
from likeness.consent.registry import RecoveryAttestation, Registry, grant_payload, revocation_payload
from likeness.consent.tables import Grant, RightsHolder
from likeness.errors import ConfigError, ConsentError, RegistryError, SubjectNotEnrolled
from tests.conftest import add_holder, add_subject, holder_machine, issue_grant


def refusal(call) -> ConsentError:
    with pytest.raises(ConsentError) as info:
        call()
    return info.value


def _sql(ws, statement: str, **params) -> None:
    with ws.engine.begin() as conn:
        conn.execute(text(statement), params)


def _kinds(ws) -> set[tuple[str, str]]:
    return {(p.kind, p.record_id) for p in consent_row_problems(ws)}


def _holder_id(ws, subject: str) -> str:
    return ws.registry.get_subject(subject).holder_id


def _save_key(path, key: Ed25519PrivateKey) -> None:
    keys.write_private_key(path, key)


def test_a_clean_world_has_no_consent_problems(consent_world):
    ws = consent_world.workspace
    consent_world.revoke_release()
    assert consent_row_problems(ws) == []
    problem = ConsentProblem("grant", "g", "why")
    with pytest.raises(AttributeError):
        problem.kind = "x"  # frozen


def test_swapped_holder_key_with_resigned_grant_is_refused(consent_world):
    """Attack: put one's own key (and fingerprint) on the holder row, re-sign the grant with it."""
    ws = consent_world.workspace
    attacker = Ed25519PrivateKey.generate()
    raw = keys.public_raw(attacker)
    holder_id = _holder_id(ws, "mina")
    _sql(
        ws,
        "UPDATE rights_holders SET public_key = :k, key_fingerprint = :f WHERE id = :h",
        k=raw.hex(),
        f=keys.fingerprint(raw),
        h=holder_id,
    )
    with Session(ws.engine) as session:
        grant = session.get(Grant, consent_world.grant_id)
        payload = grant_payload(grant, keys.fingerprint(raw))
    _sql(
        ws,
        "UPDATE grants SET payload_sha256 = :d, signature = :s WHERE id = :g",
        d=canonical_sha256(payload),
        s=keys.sign(attacker, canonical_bytes(payload)),
        g=consent_world.grant_id,
    )

    error = refusal(lambda: consent_world.authorize("training"))
    assert error.reason == "holder_key_altered" and "mina-holder" in str(error)
    assert ws.registry.grant_state(consent_world.grant_id) == "altered"
    assert [g.state for g in ws.registry.list_grants(subject="mina")] == ["altered"]
    assert ("holder", holder_id) in _kinds(ws) and ("grant", consent_world.grant_id) in _kinds(ws)

    # Appending a "rotation" to the attacker's key does not help: the previous key never signed it.
    body = {
        "type": "likeness.holder-key-rotation.v1",
        "holder_id": holder_id,
        "previous_fingerprint": ws.registry.get_subject("mina").holder_fingerprint,
        "previous_public_key": raw.hex(),
        "key_fingerprint": keys.fingerprint(raw),
        "public_key": raw.hex(),
        "rotated_at": utc_iso(now_utc()),
    }
    ws.ledger.append("holder.key_rotated", {**body, "signature": keys.sign(attacker, canonical_bytes(body))})
    assert refusal(lambda: consent_world.authorize("training")).reason == "holder_key_altered"
    assert any("holder.key_rotated ignored" in p.problem for p in consent_row_problems(ws))


def test_inserted_grant_signed_with_the_holder_key_is_refused(consent_world):
    """Attack: with a copy of the holder's key, sign a grant and insert the row only."""
    ws = consent_world.workspace
    reg = ws.registry
    record = add_subject(reg, "ari", "Ari", kind="artist")
    key = holder_machine(reg).key(record.holder_slug)
    grant = Grant(
        id=uuid.uuid4().hex,
        subject_id=record.id,
        org_id=reg.get_org("studio").id,
        holder_id=record.holder_id,
        uses=json.dumps(["advertising"]),
        valid_from=utc_iso(now_utc()),
        valid_until=utc_iso(now_utc() + timedelta(days=9)),
        max_renders=None,
        allow_unlabelled=True,
        purpose="forged",
        issued_at=utc_iso(now_utc()),
        payload_sha256="",
        signature="",
    )
    payload = grant_payload(grant, record.holder_fingerprint)
    grant.payload_sha256 = canonical_sha256(payload)
    grant.signature = keys.sign(key, canonical_bytes(payload))
    forged_id = grant.id
    with Session(ws.engine) as session:
        session.add(grant)
        session.commit()

    error = refusal(lambda: ws.policy.authorize("ari", "advertising", "studio"))
    assert error.reason == "grant_not_on_ledger" and forged_id in str(error)
    assert reg.grant_state(forged_id) == "altered"
    assert ("grant", forged_id) in _kinds(ws)
    # The genuine grant of another subject is untouched.
    assert consent_world.authorize("advertising").grant_id == consent_world.grant_id


def test_deleted_revocation_rows_stay_revoked(consent_world):
    """Attack: delete the revocation rows of a grant and a release; the ledger still revokes."""
    ws = consent_world.workspace
    authz = consent_world.authorize("training")
    release = consent_world.authorize_release()
    consent_world.revoke_grant()
    consent_world.revoke_release()
    _sql(ws, "DELETE FROM grant_revocations")
    _sql(ws, "DELETE FROM release_revocations")

    assert refusal(lambda: consent_world.authorize("training")).reason == "revoked"
    assert refusal(authz.recheck).reason == "revoked"
    assert refusal(consent_world.authorize_release).reason == "release_revoked"
    assert refusal(release.recheck).reason == "release_revoked"
    assert ws.registry.grant_state(consent_world.grant_id) == "revoked"
    record = ws.registry.grant_record(consent_world.grant_id)
    assert record.state == "revoked" and record.revoked_at
    assert [r.state for r in ws.registry.list_releases()] == ["revoked"]
    problems = _kinds(ws)
    assert ("grant_revocation", consent_world.grant_id) in problems
    assert ("release_revocation", consent_world.release_id) in problems

    # Deleting the grant row too leaves a live authorization revoked, not merely "altered".
    _sql(ws, "DELETE FROM authorizations WHERE grant_id = :g", g=consent_world.grant_id)
    _sql(ws, "DELETE FROM grants WHERE id = :g", g=consent_world.grant_id)
    assert refusal(authz.recheck).reason == "revoked"
    assert ws.registry.grant_state(consent_world.grant_id) == "revoked"
    assert any("no grant row" in p.problem for p in consent_row_problems(ws))


def test_revocation_row_with_a_bad_signature_is_not_taken_as_a_revocation(consent_world):
    """A revocation row nobody signed (or signed by someone else) is refused as unverifiable,
    not honoured as the holder's revocation."""
    ws = consent_world.workspace
    _sql(
        ws,
        "INSERT INTO grant_revocations (id, grant_id, revoked_at, reason, signature) VALUES (:i, :g, :t, 'x', :s)",
        i=uuid.uuid4().hex,
        g=consent_world.grant_id,
        t=utc_iso(now_utc()),
        s="ab" * 64,
    )
    error = refusal(lambda: consent_world.authorize("training"))
    assert error.reason == "revocation_invalid" and "does not verify" in str(error)
    assert ws.registry.grant_state(consent_world.grant_id) == "altered"
    assert ("grant_revocation", consent_world.grant_id) in _kinds(ws)


def test_revocation_signed_by_another_key_is_refused(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    other = add_holder(reg, "other-holder", "Other", kind="artist")
    other_key = holder_machine(reg).key(other.slug)
    revoked_at = utc_iso(now_utc())
    body = revocation_payload("release", consent_world.release_id, revoked_at, "forged")
    signature = keys.sign(other_key, canonical_bytes(body))
    ws.ledger.append("release.revoked", {**body, "signature": signature})
    _sql(
        ws,
        "INSERT INTO release_revocations (id, release_id, revoked_at, reason, signature) "
        "VALUES (:i, :r, :t, 'forged', :s)",
        i=uuid.uuid4().hex,
        r=consent_world.release_id,
        t=revoked_at,
        s=signature,
    )
    error = refusal(consent_world.authorize_release)
    assert error.reason == "release_revocation_invalid" and "not signed by the holder" in str(error)
    assert [r.state for r in reg.list_releases()] == ["altered"]


def test_genuine_revocation_with_an_edited_row_is_still_revoked(consent_world):
    ws = consent_world.workspace
    consent_world.revoke_grant()
    _sql(ws, "UPDATE grant_revocations SET signature = :s", s="cd" * 64)
    assert refusal(lambda: consent_world.authorize("training")).reason == "revoked"
    assert ("grant_revocation", consent_world.grant_id) in _kinds(ws)


def test_grant_event_and_row_disagree(consent_world):
    """An edited row is named against its event; a second grant.issued copy is ignored."""
    ws = consent_world.workspace
    event = ws.ledger.find("grant.issued", grant_id=consent_world.grant_id)[0]
    widened = {**event.payload, "max_renders": 999}
    ws.ledger.append("grant.issued", widened)  # a later copy of the same grant id counts for nothing
    consent_world.authorize("training")
    _sql(ws, "UPDATE grants SET max_renders = 999 WHERE id = :g", g=consent_world.grant_id)
    error = refusal(lambda: consent_world.authorize("music_video"))
    assert error.reason == "grant_altered" and "ledger row" in str(error)
    assert ("grant", consent_world.grant_id) in _kinds(ws)


def test_subject_moved_to_another_holder_is_refused(consent_world, monkeypatch):
    """Attack: point the subject at a holder whose key one has, then issue a grant through it."""
    ws = consent_world.workspace
    reg = ws.registry
    other = add_holder(reg, "other-holder", "Other", kind="artist")
    _sql(ws, "UPDATE subjects SET holder_id = :h WHERE slug = 'mina'", h=other.id)
    until = now_utc() + timedelta(days=1)
    with pytest.raises(SubjectNotEnrolled, match="its rights holder is not the one its subject.created event"):
        issue_grant(reg, "mina", "studio", ["advertising"], valid_until=until)  # no request reaches other-holder
    # A writer without that check (an older version; the rows written by hand) signs mina's grant
    # with other-holder's key file ...
    monkeypatch.setattr(Registry, "_refuse_unbacked_subject", lambda self, record: None)
    grant_id = issue_grant(reg, "mina", "studio", ["advertising"], valid_until=until)
    error = refusal(lambda: consent_world.authorize("advertising"))
    assert error.reason == "signature_invalid"  # ... but the ledger enrolled mina with mina-holder
    assert reg.grant_state(grant_id) == "altered"
    assert ("subject", reg.get_subject("mina").id) in _kinds(ws)


# --- holder key rotation and recovery --------------------------------------------------------


def test_rotated_key_signs_from_the_rotation_on(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    machine = holder_machine(reg)
    authz = consent_world.authorize("training")
    before = reg.get_subject("mina").holder_fingerprint

    rotation = machine.rotate(consent_world.grant_id, "mina-holder", "mina-holder-2")  # on the holder's machine
    new_fp = reg.import_signed(rotation)
    assert new_fp != before and reg.get_subject("mina").holder_fingerprint == new_fp
    assert ws.ledger.find("holder.key_rotated", holder_id=_holder_id(ws, "mina"))
    replayed = refusal(lambda: reg.import_signed(rotation))  # the old key no longer moves anything
    assert replayed.reason == "signature_invalid"
    # What the old key signed before the rotation stays in force ...
    authz.recheck()
    assert consent_world.authorize("music_video").grant_id == consent_world.grant_id
    # ... new grants are requested for the new key, and the old key signs nothing any more.
    request = reg.request_grant("mina", "studio", ["tribute"], valid_until=now_utc() + timedelta(days=2))
    assert request.payload["holder_fingerprint"] == new_fp
    with pytest.raises(ConsentError) as stale:
        machine.sign(request, "mina-holder")
    assert stale.value.reason == "signature_invalid"
    old_signature = keys.sign(machine.key("mina-holder"), canonical_bytes(request.payload))
    forged = dataclasses.replace(machine.sign(request, "mina-holder-2"), signature=old_signature)
    assert refusal(lambda: reg.import_signed(forged)).reason == "signature_invalid"
    grant_id = reg.import_signed(machine.sign(request, "mina-holder-2"))
    assert reg.grant_state(grant_id) == "active"
    assert reg.grant_record(grant_id).state == "active"
    assert consent_row_problems(ws) == []


def test_grant_signed_with_a_retired_key_after_rotation_is_refused(consent_world):
    """Attack: keep the old key file and, after a rotation, put a grant it signed into the
    database and onto the ledger."""
    ws = consent_world.workspace
    reg = ws.registry
    record = add_subject(reg, "ari", "Ari", kind="artist")
    machine = holder_machine(reg)
    old_key = machine.key(record.holder_slug)
    old_fp = keys.fingerprint(keys.public_raw(old_key))
    first = issue_grant(reg, "ari", "studio", ["training"], valid_until=now_utc() + timedelta(days=1))
    reg.import_signed(machine.rotate(first, record.holder_slug, f"{record.holder_slug}-2"))
    grant = Grant(
        id=uuid.uuid4().hex,
        subject_id=record.id,
        org_id=reg.get_org("studio").id,
        holder_id=record.holder_id,
        uses=json.dumps(["advertising"]),
        valid_from=utc_iso(now_utc()),
        valid_until=utc_iso(now_utc() + timedelta(days=9)),
        max_renders=None,
        allow_unlabelled=True,
        purpose="signed with a retired key",
        issued_at=utc_iso(now_utc()),
        payload_sha256="",
        signature="",
    )
    payload = grant_payload(grant, old_fp)
    grant.payload_sha256 = canonical_sha256(payload)
    grant.signature = keys.sign(old_key, canonical_bytes(payload))
    forged_id, signed = grant.id, {"payload_sha256": grant.payload_sha256, "signature": grant.signature}
    with Session(ws.engine) as session:
        session.add(grant)
        session.commit()
    ws.ledger.append("grant.issued", {**payload, **signed})
    error = refusal(lambda: ws.policy.authorize("ari", "advertising", "studio"))
    assert error.reason == "signature_invalid" and "key" in str(error)
    assert reg.grant_state(forged_id) == "altered"
    assert ("grant", forged_id) in _kinds(ws)


def test_rotation_to_a_key_the_holder_keeps(consent_world, tmp_path):
    ws = consent_world.workspace
    reg = ws.registry
    machine = holder_machine(reg)
    holder_key = Ed25519PrivateKey.generate()
    pem = holder_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    receipt = machine.receipt(consent_world.grant_id)
    reg.import_signed(sign_rotation(receipt, machine.key("mina-holder"), pem))
    assert not (ws.keys_dir / "holders").exists()  # nothing of the holder's is kept in the workspace
    reg.import_signed(sign_revocation(receipt, holder_key, reason="done"))
    assert refusal(lambda: consent_world.authorize("training")).reason == "revoked"
    assert consent_row_problems(ws) == []


def test_rotation_needs_the_current_key(consent_world):
    reg = consent_world.workspace.registry
    machine = holder_machine(reg)
    receipt = machine.receipt(consent_world.grant_id)
    stranger = Ed25519PrivateKey.generate()
    new_pem = machine.public_key("mina-holder-2")
    # signed by a stranger's key: it names the stranger's key as the one it moves away from ...
    error = refusal(lambda: reg.import_signed(sign_rotation(receipt, stranger, new_pem)))
    assert error.reason == "signature_invalid" and "moves away from key" in str(error)
    # ... and one that names the holder's key but is signed by the stranger does not verify.
    genuine = machine.rotate(consent_world.grant_id, "mina-holder", "mina-holder-2")
    forged = dataclasses.replace(genuine, signature=keys.sign(stranger, canonical_bytes(genuine.payload)))
    assert refusal(lambda: reg.import_signed(forged)).reason == "signature_invalid"
    assert not consent_world.workspace.ledger.find("holder.key_rotated")


def test_a_holder_key_inside_the_workspace_is_refused(consent_world):
    """A key file the workspace keeps is one the organisation holds: nothing signs with it."""
    ws = consent_world.workspace
    machine = holder_machine(ws.registry)
    inside = ws.keys_dir / "holders" / "mina-holder.pem"
    _save_key(inside, machine.key("mina-holder"))
    with pytest.raises(ConfigError, match="inside the likeness workspace"):
        load_holder_key(inside)


def test_recovery_signed_by_the_organisation_with_an_attestation(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    machine = holder_machine(reg)
    os.remove(machine.key_path("mina-holder"))  # the holder lost the key
    new_pem = machine.public_key("mina-holder-recovered")  # and made a new one on their machine
    with pytest.raises(RegistryError, match="statement"):
        reg.recover_holder_key(
            "mina-holder",
            org="studio",
            attestation=RecoveryAttestation(" ", "J. Park", "in_person"),
            new_public_key_pem=new_pem,
        )
    attestation = RecoveryAttestation(
        "Mina's identity checked against her passport", "J. Park (legal)", "in_person", "0" * 64
    )
    new_fp = reg.recover_holder_key("mina-holder", org="studio", attestation=attestation, new_public_key_pem=new_pem)
    event = ws.ledger.find("holder.key_recovered", holder_id=_holder_id(ws, "mina"))[0]
    assert event.payload["attestation"]["verified_by"] == "J. Park (legal)"
    assert event.payload["key_fingerprint"] == new_fp == reg.get_subject("mina").holder_fingerprint
    # the recovered key (on the holder's machine) signs for mina now
    reg.import_signed(machine.revoke(consent_world.grant_id, name="mina-holder-recovered"))
    assert refusal(lambda: consent_world.authorize("training")).reason == "revoked"
    assert consent_row_problems(ws) == []


def test_recovery_not_signed_by_an_organisation_is_ignored(consent_world):
    """Attack: append a 'recovery' to one's own key, signed by a key that is not the org's."""
    ws = consent_world.workspace
    reg = ws.registry
    attacker = Ed25519PrivateKey.generate()
    raw = keys.public_raw(attacker).hex()
    org = reg.get_org("studio")
    from likeness.consent.registry import key_recovery_payload

    body = key_recovery_payload(
        holder_id=_holder_id(ws, "mina"),
        previous_fingerprint=reg.get_subject("mina").holder_fingerprint,
        public_key=raw,
        org_id=org.id,
        org_fingerprint=org.key_fingerprint,
        attestation=RecoveryAttestation("trust me", "me", "none").as_payload(),
        recovered_at=utc_iso(now_utc()),
    )
    ws.ledger.append("holder.key_recovered", {**body, "signature": keys.sign(attacker, canonical_bytes(body))})
    assert reg.get_subject("mina").holder_fingerprint != body["key_fingerprint"]
    revoke = revocation_payload("grant", consent_world.grant_id, utc_iso(now_utc()), "")
    ws.ledger.append("grant.revoked", {**revoke, "signature": keys.sign(attacker, canonical_bytes(revoke))})
    assert refusal(lambda: consent_world.authorize("training")).reason == "revocation_invalid"
    assert any("holder.key_recovered ignored" in p.problem for p in consent_row_problems(ws))


def test_holder_row_without_ledger_event_is_not_in_force(consent_world):
    """Attack: insert a holder row (one's own key) and re-point a subject at it."""
    ws = consent_world.workspace
    attacker = Ed25519PrivateKey.generate()
    raw = keys.public_raw(attacker)
    with Session(ws.engine) as session:
        session.add(
            RightsHolder(
                id=uuid.uuid4().hex,
                slug="fake",
                name="Fake",
                kind="artist",
                public_key=raw.hex(),
                key_fingerprint=keys.fingerprint(raw),
                created_at=utc_iso(now_utc()),
            )
        )
        session.commit()
    fake = ws.registry.get_holder("fake")
    assert ("holder", fake.id) in _kinds(ws)
    with pytest.raises(ConsentError) as info:
        add_subject(ws.registry, "ari", "Ari", holder="fake")
        issue_grant(ws.registry, "ari", "studio", ["training"], valid_until=now_utc() + timedelta(days=1))
    assert info.value.reason == "holder_key_altered"


def test_holder_can_revoke_past_a_planted_revocation_row_and_a_tampered_holder_row(consent_world):
    """A planted (unverifiable) revocation row and an edited holder row do not stop the holder
    from revoking with their ledger key: the revocation is on the ledger and in force."""
    ws = consent_world.workspace
    _sql(
        ws,
        "INSERT INTO grant_revocations (id, grant_id, revoked_at, reason, signature) "
        "VALUES (:i, :g, :t, 'planted', :s)",
        i=uuid.uuid4().hex,
        g=consent_world.grant_id,
        t=utc_iso(now_utc()),
        s="ab" * 64,
    )
    _sql(
        ws, "UPDATE rights_holders SET name = 'Someone else', key_fingerprint = 'ed25519:00' WHERE slug = 'mina-holder'"
    )
    consent_world.revoke_grant()
    assert ws.registry.grant_state(consent_world.grant_id) == "revoked"
    assert refusal(lambda: consent_world.authorize("training")).reason == "revoked"
    assert ("holder", ws.registry.get_subject("mina").holder_id) in _kinds(ws)
    with pytest.raises(RegistryError, match="already revoked"):
        consent_world.revoke_grant()
