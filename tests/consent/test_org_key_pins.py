"""An organisation's key counts only when the workspace's own key file pins it. Found as an
attacker: a database editor (the database, not the key folder) appends an ``org.created`` with a
key of their own, then signs with it a key recovery that makes a holder's key theirs, a sealed
reference, a ledger head; and one organisation of a workspace recovers another's holder."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import sessionmaker

from likeness.consent import keys
from likeness.consent.anchor import HEAD_TYPE, Anchor, check_anchor
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.holder_portal import HolderPortal
from likeness.consent.integrity import LedgerConsent, consent_row_problems
from likeness.consent.ledger import Ledger
from likeness.consent.passkeys import PASSKEY_ONLY
from likeness.consent.policy import PolicyEngine
from likeness.consent.registry import RecoveryAttestation, Registry, key_recovery_payload
from likeness.errors import ConfigError, RegistryError
from tests.conftest import holder_machine

CHECKED = RecoveryAttestation("identity checked against passport", "J. Park (legal)", "in_person")


def _invented_org(ws, slug: str = "evil") -> tuple[str, Ed25519PrivateKey]:
    """An ``org.created`` a database editor appended, with a key only they hold."""
    key = Ed25519PrivateKey.generate()
    raw = keys.public_raw(key)
    org_id = uuid.uuid4().hex
    ws.ledger.append(
        "org.created",
        {
            "org_id": org_id,
            "slug": slug,
            "name": slug,
            "key_fingerprint": keys.fingerprint(raw),
            "public_key": raw.hex(),
        },
    )
    return org_id, key


def _recovery(ws, holder_id: str, previous: str, org_id: str, org_key: Ed25519PrivateKey) -> str:
    """A ``holder.key_recovered`` to a new key, signed by ``org_key``; the new key's fingerprint."""
    new = Ed25519PrivateKey.generate()
    payload = key_recovery_payload(
        holder_id=holder_id,
        previous_fingerprint=previous,
        public_key=keys.public_raw(new).hex(),
        org_id=org_id,
        org_fingerprint=keys.fingerprint(keys.public_raw(org_key)),
        attestation=CHECKED.as_payload(),
        recovered_at=utc_iso(now_utc()),
    )
    ws.ledger.append("holder.key_recovered", {**payload, "signature": keys.sign(org_key, canonical_bytes(payload))})
    return keys.fingerprint(keys.public_raw(new))


def test_an_invented_organisation_recovers_no_holder(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    mina = reg.get_subject("mina")
    before = reg.holder_fingerprint(mina.holder_id)
    org_id, org_key = _invented_org(ws)
    attacker = _recovery(ws, mina.holder_id, before, org_id, org_key)
    assert reg.holder_fingerprint(mina.holder_id) == before != attacker
    problems = consent_row_problems(ws)
    named = [p for p in problems if p.kind == "organisation" and p.record_id == org_id]
    assert named and "not pinned" in named[0].problem and "evil.pem does not exist" in named[0].problem
    assert any("holder.key_recovered ignored" in p.problem and "not pinned" in p.problem for p in problems)


def test_an_invented_organisation_with_a_real_slug_is_not_pinned(consent_world):
    """Naming studio's slug points at studio's key file, which holds another key."""
    ws = consent_world.workspace
    org_id, org_key = _invented_org(ws, slug="studio")
    with ws.session() as session:
        assert LedgerConsent(session).org_key(org_id) is None
        assert "holds another key" in (LedgerConsent(session).org_key_problem(org_id) or "")
        assert LedgerConsent(session).org_key(reg_id := ws.registry.get_org("studio").id) is not None
    assert reg_id != org_id


def test_an_invented_organisation_with_a_path_for_a_slug_is_not_pinned(consent_world):
    ws = consent_world.workspace
    org_id, _ = _invented_org(ws, slug="../orgs/studio")
    with ws.session() as session:
        assert "names no key file" in (LedgerConsent(session).org_key_problem(org_id) or "")


def test_a_ledger_head_signed_by_an_invented_organisation_does_not_hold(consent_world):
    ws = consent_world.workspace
    org_id, org_key = _invented_org(ws)
    seq, head_hash = ws.ledger.head()
    raw = keys.public_raw(org_key)
    body = {
        "type": HEAD_TYPE,
        "org_id": org_id,
        "org": "evil",
        "seq": seq,
        "hash": head_hash,
        "at": utc_iso(now_utc()),
        "key_fingerprint": keys.fingerprint(raw),
        "public_key": raw.hex(),
    }
    genuine = ws.signed_head("studio")
    assert check_anchor(Anchor("head", genuine), ledger=ws.ledger) == []
    forged = check_anchor(
        Anchor("head", {**body, "signature": keys.sign(org_key, canonical_bytes(body))}), ledger=ws.ledger
    )
    assert [p.kind for p in forged] == ["anchor_unknown_org"]


def test_another_organisation_of_the_workspace_recovers_no_holder_it_did_not_onboard(consent_world):
    """Rival's key is genuinely pinned; the passkey holder is studio's. Both recoveries (the
    key recovery here, the passkey recovery in the portal) need the onboarding organisation."""
    ws = consent_world.workspace
    reg = ws.registry
    reg.add_org("rival", "Rival Ent")
    holder = HolderPortal(ws).add_passkey_holder("haneul-holder", "Haneul", kind="artist", org="studio")
    with pytest.raises(RegistryError, match="onboarded by another organisation"):
        reg.recover_holder_key(
            "haneul-holder", org="rival", attestation=CHECKED, new_public_key_pem=holder_machine(reg).public_key("x")
        )
    rival_key = keys.load_private_key(reg.org_key_path("rival"))
    taken = _recovery(ws, holder.id, PASSKEY_ONLY, reg.get_org("rival").id, rival_key)
    assert reg.holder_fingerprint(holder.id) == PASSKEY_ONLY != taken
    assert any(
        "holder.key_recovered ignored: the holder is onboarded by another organisation" in p.problem
        for p in consent_row_problems(ws)
    )


def test_the_onboarding_organisation_still_recovers_an_offline_holder(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    new_pem = holder_machine(reg).public_key("mina-holder-recovered")
    new_fp = reg.recover_holder_key("mina-holder", org="studio", attestation=CHECKED, new_public_key_pem=new_pem)
    assert reg.get_subject("mina").holder_fingerprint == new_fp
    assert consent_row_problems(ws) == []


def test_a_reference_sealed_by_an_invented_organisation_is_not_used(consent_world):
    from tests.consent.test_reference_binding import _reference_problems, _sha, _stranger_reference, _vector

    ws = consent_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    assert reg.add_reference_embedding("jun", _vector(1), source_name="jun.jpg", source_sha256=_sha("jun"))
    org_id, org_key = _invented_org(ws)
    body = _stranger_reference(ws, jun.id, org_id=org_id, key_fingerprint=keys.fingerprint(keys.public_raw(org_key)))
    ws.ledger.append("subject.reference_added", {**body, "signature": keys.sign(org_key, canonical_bytes(body))})
    assert len(reg.reference_embeddings("jun")) == 1
    (problem,) = _reference_problems(ws)
    assert "whose key this workspace does not pin" in problem.problem


def test_another_organisation_cannot_recover_an_offline_holder_the_first_enrolled(consent_world):
    """An offline holder enrolled by studio in a workspace where rival is also pinned."""
    ws = consent_world.workspace
    reg = ws.registry
    reg.add_org("rival", "Rival Ent")
    reg.add_subject(
        "haneul",
        "Haneul",
        holder_public_key_pem=holder_machine(reg).public_key("haneul-holder"),
        org="studio",
    )
    holder = reg.get_holder("haneul-holder")
    with ws.session() as session:
        assert LedgerConsent(session).holder_owner(holder.id) == reg.get_org("studio").id
    with pytest.raises(RegistryError, match="onboarded by another organisation"):
        reg.recover_holder_key(
            "haneul-holder", org="rival", attestation=CHECKED, new_public_key_pem=holder_machine(reg).public_key("x")
        )
    before = reg.holder_fingerprint(holder.id)
    rival_key = keys.load_private_key(reg.org_key_path("rival"))
    taken = _recovery(ws, holder.id, before, reg.get_org("rival").id, rival_key)
    assert reg.holder_fingerprint(holder.id) == before != taken
    assert any("onboarded by another organisation" in p.problem for p in consent_row_problems(ws))


def test_a_key_file_put_right_pins_again_without_a_restart(consent_world):
    """A service's pins remember each key file by its identity. In a workspace with no
    public-key pin beside the key (made before pins), ``chmod 644`` on the organisation's key
    file un-pins it (the key-file rule); ``chmod 600`` puts it right without changing its inode,
    size or modification time, and the pins kept refusing it until the process restarted: every
    organisation signature failed in a running service."""
    ws = consent_world.workspace
    studio = ws.registry.get_org("studio")
    path = ws.registry.org_key_path("studio")
    keys.org_pin_file(ws.keys_dir, "studio").unlink(missing_ok=True)

    def problem() -> str | None:
        with ws.session() as session:
            return LedgerConsent(session).org_key_problem(studio.id)

    assert problem() is None
    path.chmod(0o644)
    assert "may be read by others (mode 0644)" in (problem() or "")
    path.chmod(0o600)
    assert problem() is None


def test_a_registry_and_policy_built_on_a_plain_session_refuse_rather_than_count_no_recovery(consent_world):
    """``Registry`` and ``PolicyEngine`` are public and take any session factory. One without
    the workspace's pins counted no organisation signature, so it ignored the key recovery that
    retired mina's lost key: a grant signed with that key afterwards was imported and
    authorized renders. It now refuses at the first organisation signature it meets."""
    ws = consent_world.workspace
    reg = ws.registry
    reg.add_org("rival", "Rival")
    reg.recover_holder_key(
        "mina-holder", org="studio", attestation=CHECKED, new_public_key_pem=holder_machine(reg).public_key("new")
    )
    plain = sessionmaker(ws.engine, expire_on_commit=False)
    ledger = Ledger(plain)
    unpinned = Registry(plain, ledger, reg.keys_dir)
    until = now_utc() + timedelta(days=3)
    with pytest.raises(ConfigError, match="carries no organisation key pins"):
        holder_machine(reg).grant(unpinned, "mina", "rival", ["advertising"], valid_until=until, purpose="lost key")
    with pytest.raises(ConfigError, match="carries no organisation key pins"):
        PolicyEngine(plain, ledger).authorize("mina", "advertising", "studio")
    assert unpinned.get_subject("jun").holder_fingerprint == reg.get_subject("jun").holder_fingerprint  # no recovery
    assert ws.policy.authorize("mina", "advertising", "studio").grant_id == consent_world.grant_id
