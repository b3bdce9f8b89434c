"""A holder who signs offline adds a passkey by vouching for it with their own Ed25519 key (issue 29).

The organisation makes a registration statement from a verified WebAuthn registration; the
holder signs it on their own machine (``likeness holder vouch-passkey``); the organisation
imports it (``likeness consent import``). The ledger counts the passkey only when the vouch
verifies with the key the holder had at that point of the ledger; the attacks below are each
refused at import and, appended to the ledger directly, ignored and named by audit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from likeness.cli import app
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc
from likeness.consent.grant_requests import SignedConsent
from likeness.consent.holder import sign_vouch
from likeness.consent.integrity import LedgerConsent
from likeness.consent.passkeys import PASSKEY_REGISTERED, b64url, passkey_fingerprint
from likeness.consent.registry import RecoveryAttestation
from likeness.errors import ConsentError, ConsentRequestError, RegistryError
from tests.conftest import add_subject, holder_machine, issue_grant
from tests.portal.conftest import RP, PasskeyWorld, vouch_statement_for
from tests.portal.softauthn import SoftAuthenticator

UNTIL = now_utc() + timedelta(days=30)


@dataclass
class Offline:
    """Subject ``yuna`` whose holder ``yuna-holder`` signs offline, and a passkey made for them."""

    world: PasskeyWorld
    holder_id: str
    authenticator: SoftAuthenticator
    statement: dict[str, Any]

    def vouch(self, key_name: str = "yuna-holder") -> SignedConsent:
        return sign_vouch(self.statement, holder_machine(self.world.workspace.registry).key(key_name))

    def passkeys(self) -> list[bytes]:
        with self.world.workspace.session() as session:
            return [p.credential_id for p in LedgerConsent(session).passkeys(self.holder_id)]

    def ledger_problems(self) -> list[str]:
        with self.world.workspace.session() as session:
            return LedgerConsent(session).passkey_problems(self.holder_id)

    def sign_grant(self, authenticator: SoftAuthenticator | None = None) -> str:
        request = self.world.request(uses=("music_video",), subject="yuna")
        return self.world.sign(request, authenticator or self.authenticator, self.holder_id)


def statement_for(world: PasskeyWorld, holder_id: str, authenticator: SoftAuthenticator) -> dict[str, Any]:
    return vouch_statement_for(world.portal, holder_id, authenticator)


@pytest.fixture
def offline(passkey_world: PasskeyWorld) -> Offline:
    subject = add_subject(passkey_world.workspace.registry, "yuna", "Yuna")
    authenticator = SoftAuthenticator()
    return Offline(
        passkey_world, subject.holder_id, authenticator, statement_for(passkey_world, subject.holder_id, authenticator)
    )


def reason_of(call) -> str:
    with pytest.raises(ConsentError) as refused:
        call()
    return refused.value.reason


def forged(payload: dict[str, Any], key) -> SignedConsent:
    """``payload`` signed with ``key``, whoever holds it (no check that it is addressed to it)."""
    return SignedConsent(payload, keys.sign(key, canonical_bytes(payload)), keys.public_raw(key).hex(), "", None)


def append_vouch(offline: Offline, payload: dict[str, Any], signature: str) -> None:
    """What a database editor or the organisation can do without the import: append the event."""
    offline.world.workspace.ledger.append(PASSKEY_REGISTERED, {**payload, "signature": signature})


def audit_names(offline: Offline, words: str) -> bool:
    report = audit_workspace(offline.world.workspace)
    return any(p.kind == "holder" and words in p.message for p in report.problems)


# --- the path that works ----------------------------------------------------------------------


def test_a_vouched_passkey_signs_a_grant_the_engine_accepts(offline: Offline) -> None:
    world = offline.world
    # The statement alone counts for nothing: the passkey cannot sign yet.
    assert offline.passkeys() == []
    assert reason_of(offline.sign_grant) == "credential_not_holders"
    fingerprint = world.workspace.registry.import_signed(offline.vouch())
    assert fingerprint == passkey_fingerprint(offline.authenticator.cose_key)
    assert offline.passkeys() == [offline.authenticator.credential_id]
    grant_id = offline.sign_grant()
    authz = world.workspace.policy.authorize("yuna", "music_video", "studio")
    assert authz.grant_id == grant_id
    (event,) = world.workspace.ledger.find("grant.issued", grant_id=grant_id)
    assert event.payload["holder_fingerprint"] == fingerprint and "passkey" in event.payload
    # The offline key still signs too, and audit finds nothing wrong.
    assert issue_grant(
        world.workspace.registry, "yuna", "studio", ["training"], valid_until=UNTIL, purpose="offline still works"
    )
    report = audit_workspace(world.workspace)
    assert report.ok, report.problems


def test_the_statement_is_addressed_to_the_holders_key_and_imports_once(offline: Offline) -> None:
    registry = offline.world.workspace.registry
    assert offline.statement["holder_fingerprint"] == registry.holder_fingerprint("yuna-holder")
    signed = offline.vouch()
    registry.import_signed(signed)
    with pytest.raises(RegistryError, match="already registered"):
        registry.import_signed(signed)
    with pytest.raises(RegistryError, match="already registered"):  # the portal will not make a second one
        statement_for(offline.world, offline.holder_id, offline.authenticator)


def test_a_passkey_only_holder_has_no_key_to_vouch_with(passkey_world: PasskeyWorld) -> None:
    with pytest.raises(ConsentError) as refused:
        statement_for(passkey_world, passkey_world.holder_id, SoftAuthenticator())
    assert refused.value.reason == "invitation_refused" and "no offline key" in str(refused.value)


def test_the_cli_shows_the_statement_asks_and_vouches(offline: Offline, tmp_path) -> None:
    world = offline.world
    statement = tmp_path / "statement.json"
    statement.write_text(json.dumps(offline.statement), encoding="utf-8")
    key = holder_machine(world.workspace.registry).key_path("yuna-holder")
    out = tmp_path / "vouched.json"
    command = ["holder", "vouch-passkey", str(statement), "--key", str(key), "--out", str(out)]
    declined = CliRunner().invoke(app, command, input="n\n")
    assert declined.exit_code == 1 and not out.exists()
    said = " ".join(declined.output.split())
    assert offline.statement["key_fingerprint"] in said and RP.origin in said and "not vouched" in said
    assert CliRunner().invoke(app, [*command, "--yes"]).exit_code == 0
    imported = CliRunner().invoke(app, ["--home", str(world.workspace.home), "consent", "import", str(out)])
    assert imported.exit_code == 0, imported.output
    assert "registered" in imported.output and offline.passkeys() == [offline.authenticator.credential_id]
    # A key that is not the one the statement is addressed to is refused on the holder's machine.
    add_subject(world.workspace.registry, "sora", "Sora")  # sora-holder: another holder's key
    wrong = CliRunner().invoke(
        app,
        [
            *command[:4],
            str(holder_machine(world.workspace.registry).key_path("sora-holder")),
            "--out",
            str(tmp_path / "w.json"),
            "--yes",
        ],
    )
    assert wrong.exit_code != 0 and "signature_invalid" in wrong.output and "Traceback" not in wrong.output


# --- the attacks, each refused at import and ignored on the ledger ------------------------------


def test_the_organisation_forges_the_vouch_with_its_own_key(offline: Offline) -> None:
    world = offline.world
    org_key = keys.load_private_key(world.workspace.registry.org_key_path("studio"))
    forgery = forged(offline.statement, org_key)
    with pytest.raises(ConsentError) as refused:
        world.workspace.registry.import_signed(forgery)
    assert refused.value.reason == "signature_invalid"
    assert keys.fingerprint(keys.public_raw(org_key)) in str(refused.value)  # names the key that did sign
    append_vouch(offline, offline.statement, forgery.signature)
    assert offline.passkeys() == []
    assert any("vouch signature does not verify" in p for p in offline.ledger_problems())
    assert reason_of(offline.sign_grant) == "credential_not_holders"
    assert audit_names(offline, "vouch signature does not verify")


def test_a_vouch_from_another_holders_key(offline: Offline) -> None:
    world = offline.world
    add_subject(world.workspace.registry, "sora", "Sora")
    sora_key = holder_machine(world.workspace.registry).key("sora-holder")
    with pytest.raises(ConsentError, match="addressed to key") as refused:  # the holder CLI refuses it
        sign_vouch(offline.statement, sora_key)
    assert refused.value.reason == "signature_invalid"
    with pytest.raises(ConsentError) as imported:
        world.workspace.registry.import_signed(forged(offline.statement, sora_key))
    assert imported.value.reason == "signature_invalid" and "not rights holder 'yuna-holder'" in str(imported.value)
    # Readdressed to sora's key and appended: not the key yuna's holder has.
    readdressed = {**offline.statement, "holder_fingerprint": keys.fingerprint(keys.public_raw(sora_key))}
    append_vouch(offline, readdressed, keys.sign(sora_key, canonical_bytes(readdressed)))
    assert offline.passkeys() == []
    assert any("but the holder's key at ledger row" in p for p in offline.ledger_problems())
    assert reason_of(offline.sign_grant) == "credential_not_holders"


def test_a_vouch_replayed_for_a_different_credential(offline: Offline) -> None:
    world = offline.world
    signed = offline.vouch()
    intruder = SoftAuthenticator()  # the organisation's own passkey
    swapped = {
        **offline.statement,
        "credential_id": b64url(intruder.credential_id),
        "public_key": b64url(intruder.cose_key),
        "key_fingerprint": passkey_fingerprint(intruder.cose_key),
    }
    replay = SignedConsent(swapped, signed.signature, signed.public_key, signed.signed_at, None)
    assert reason_of(lambda: world.workspace.registry.import_signed(replay)) == "signature_invalid"
    append_vouch(offline, swapped, signed.signature)
    assert offline.passkeys() == []
    assert reason_of(lambda: offline.sign_grant(intruder)) == "credential_not_holders"
    # The genuine vouch still imports; replaying it whole as a second event is ignored too.
    world.workspace.registry.import_signed(signed)
    append_vouch(offline, offline.statement, signed.signature)
    assert offline.passkeys() == [offline.authenticator.credential_id]
    assert any("already registered" in p for p in offline.ledger_problems())
    assert audit_names(offline, "vouch signature does not verify")


def test_a_vouch_edited_in_sql(offline: Offline) -> None:
    """The passkey in the imported vouch event swapped for the organisation's, in the database,
    with the ledger's guard dropped: the vouch no longer verifies, so that passkey signs nothing."""
    world = offline.world
    world.workspace.registry.import_signed(offline.vouch())
    (event,) = world.workspace.ledger.find(PASSKEY_REGISTERED, nonce=offline.statement["nonce"])
    intruder = SoftAuthenticator()
    edited = {
        **event.payload,
        "credential_id": b64url(intruder.credential_id),
        "public_key": b64url(intruder.cose_key),
        "key_fingerprint": passkey_fingerprint(intruder.cose_key),
    }
    with world.workspace.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS ledger_no_update"))
        connection.execute(
            text("UPDATE ledger SET payload = :p WHERE seq = :s"),
            {"p": json.dumps(edited, sort_keys=True, separators=(",", ":")), "s": event.seq},
        )
        connection.execute(
            text("UPDATE holder_passkeys SET credential_id = :c, public_key = :k WHERE holder_id = :h"),
            {"c": edited["credential_id"], "k": intruder.cose_key, "h": offline.holder_id},
        )
    assert offline.passkeys() == []
    assert reason_of(lambda: offline.sign_grant(intruder)) == "credential_not_holders"
    report = audit_workspace(world.workspace)
    assert any(p.kind == "chain_broken" for p in report.problems)
    assert audit_names(offline, "vouch signature does not verify")


def test_a_vouch_signed_by_a_rotated_out_key_after_the_rotation(offline: Offline) -> None:
    world = offline.world
    registry = world.workspace.registry
    machine = holder_machine(registry)
    old_key = machine.key("yuna-holder")
    early = SoftAuthenticator()  # vouched for before the rotation: it stays, as the old key's grants do
    registry.import_signed(sign_vouch(statement_for(world, offline.holder_id, early), old_key))
    grant_id = issue_grant(registry, "yuna", "studio", ["training"], valid_until=UNTIL, purpose="before rotation")
    registry.import_signed(machine.rotate(grant_id, "yuna-holder", "yuna-holder-2"))
    # A statement addressed to the old key (made before the rotation), vouched with it after.
    stale = sign_vouch(offline.statement, old_key)
    with pytest.raises(ConsentError) as refused:
        registry.import_signed(stale)
    assert refused.value.reason == "signature_invalid" and "the key changed" in str(refused.value)
    append_vouch(offline, offline.statement, stale.signature)
    assert offline.authenticator.credential_id not in offline.passkeys()
    assert any("but the holder's key at ledger row" in p for p in offline.ledger_problems())
    assert reason_of(offline.sign_grant) == "credential_not_holders"
    assert audit_names(offline, "but the holder's key at ledger row")
    # The new key vouches for a new statement; the passkey vouched before the rotation still counts.
    renewed = statement_for(world, offline.holder_id, SoftAuthenticator())
    assert renewed["holder_fingerprint"] == registry.holder_fingerprint("yuna-holder")
    registry.import_signed(sign_vouch(renewed, machine.key("yuna-holder-2")))
    assert early.credential_id in offline.passkeys() and len(offline.passkeys()) == 2


def test_a_malformed_statement_is_refused_before_signing(offline: Offline) -> None:
    key = holder_machine(offline.world.workspace.registry).key("yuna-holder")
    for edit in ({"key_fingerprint": "webauthn:" + "0" * 64}, {"sign_count": -1}, {"public_key": b64url(b"junk")}):
        with pytest.raises(ConsentRequestError, match="statement is refused"):
            sign_vouch({**offline.statement, **edit}, key)
    with pytest.raises(ConsentRequestError):
        SignedConsent.from_json({**offline.vouch().as_json(), "payload": {**offline.statement, "extra": 1}})


def test_a_key_recovery_retires_the_passkeys_the_lost_key_vouched_for(offline: Offline) -> None:
    """The holder's phone (a passkey their key vouched for) is stolen with the laptop holding
    the key. ``recover-passkey`` refuses a holder who signs offline and points to
    ``recover-key``, but after ``recover-key`` the stolen phone went on signing grants, and its
    portal session stayed open (trial 26). The key recovery now retires every passkey in force
    at its row, as a passkey recovery does; what they signed before stays valid, and the holder
    vouches for a new passkey with the new key."""
    world = offline.world
    registry = world.workspace.registry
    machine = holder_machine(registry)
    registry.import_signed(offline.vouch())
    before = offline.sign_grant()
    stolen_session, _row = world.portal.open_session(offline.holder_id, offline.authenticator.credential_id)
    checked = RecoveryAttestation("identity checked against passport M7654321", "J. Park, rights team", "in_person")
    assert (
        reason_of(
            lambda: world.portal.invite_to_recover(
                "yuna-holder", "studio", created_by="legal", attestation=checked, passkeys_lost=True
            )
        )
        == "invitation_refused"
    )
    registry.recover_holder_key(
        "yuna-holder", org="studio", attestation=checked, new_public_key_pem=machine.public_key("yuna-holder-2")
    )
    with pytest.raises(ConsentError, match="retired when the holder's passkeys or key were recovered") as refused:
        offline.sign_grant()
    assert refused.value.reason == "credential_not_holders"
    assert world.portal.session_for(stolen_session) is None
    with world.workspace.session() as session:
        assert LedgerConsent(session).passkeys_in_force(offline.holder_id) == []
    assert world.workspace.policy.authorize("yuna", "music_video", "studio").grant_id == before
    # the holder vouches for a new passkey with the recovered key, and it signs
    new_phone = SoftAuthenticator()
    registry.import_signed(sign_vouch(statement_for(world, offline.holder_id, new_phone), machine.key("yuna-holder-2")))
    assert offline.sign_grant(new_phone)
