"""Passkey-signed grants: the attack matrix of issue 29, each refused with its reason.

Every assertion is made by a software authenticator with a real P-256 key; the policy engine
re-verifies the stored assertion at every use. Forged grants are written the way an agency with
write access to its own database would: a grant row and a ``grant.issued`` ledger event.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from likeness.consent import require_authorization
from likeness.consent.canonical import canonical_sha256, now_utc
from likeness.consent.grant_requests import signing_challenge
from likeness.consent.holder_portal import verify_export
from likeness.consent.passkeys import Assertion, b64url, unb64url
from likeness.consent.tables import Grant
from likeness.errors import ConsentError
from tests.portal.conftest import RP, add_recovery, register
from tests.portal.softauthn import FLAG_UP, FLAG_UV, SoftAuthenticator


def refused(call) -> str:
    with pytest.raises(ConsentError) as caught:
        call()
    return caught.value.reason


def forge(world, payload: dict, assertion: Assertion) -> None:
    """Store ``payload`` as a grant carrying ``assertion``, skipping every check the portal makes."""
    with world.workspace.engine.begin() as connection:
        connection.execute(
            Grant.__table__.insert().values(
                id=payload["grant_id"],
                subject_id=payload["subject_id"],
                org_id=payload["org_id"],
                holder_id=payload["holder_id"],
                uses=json.dumps(payload["uses"]),
                valid_from=payload["valid_from"],
                valid_until=payload["valid_until"],
                max_renders=payload["max_renders"],
                allow_unlabelled=payload["allow_unlabelled"],
                purpose=payload["purpose"],
                issued_at=payload["issued_at"],
                payload_sha256=canonical_sha256(payload),
                signature=assertion.digest(),
            )
        )
    world.workspace.ledger.append(
        "grant.issued",
        {
            **payload,
            "payload_sha256": canonical_sha256(payload),
            "signature": assertion.digest(),
            "passkey": assertion.as_payload(),
        },
    )


def test_a_passkey_signed_grant_authorizes_and_keeps_its_assertion(passkey_world) -> None:
    grant_id = passkey_world.sign(passkey_world.request())
    authz = passkey_world.workspace.policy.authorize("haneul", "music_video", "studio")
    assert authz.grant_id == grant_id
    assert authz.holder_fingerprint.startswith("webauthn:")
    require_authorization(authz, step="render")
    (event,) = passkey_world.workspace.ledger.find("grant.issued", grant_id=grant_id)
    body = {k: v for k, v in event.payload.items() if k not in ("payload_sha256", "signature", "passkey")}
    stored = Assertion.from_payload(event.payload["passkey"])
    challenge = json.loads(stored.client_data_json)["challenge"]
    assert unb64url(challenge) == signing_challenge(body)  # challenge = SHA-256 of the canonical payload
    assert stored.public_key == passkey_world.authenticator.cose_key
    assert event.payload["passkey"]["signed_as"] == "artist"
    assert passkey_world.workspace.registry.grant_state(grant_id) == "active"


def test_the_agency_workspace_holds_no_key_for_a_passkey_holder(passkey_world) -> None:
    keys_dir = passkey_world.workspace.registry.keys_dir / "holders"
    assert not keys_dir.exists() or not any(keys_dir.iterdir())
    holder = passkey_world.workspace.registry.get_holder("haneul-holder")
    assert holder.public_key == "" and holder.key_fingerprint == "passkey-only"


# --- the attack matrix ---------------------------------------------------------------------------


def _other_holders_passkey(world) -> SoftAuthenticator:
    _, authenticator = world.enrol("rival-holder", subject="rival")
    return authenticator


def _challenge_named_twice(world, challenge: bytes) -> Assertion:
    """A real signature over a clientDataJSON naming ``challenge`` twice, another grant's first:
    a reader keeping the first member (SQLite's ``json_extract``, many JavaScript tools) sees a
    signature for another record, this product (Python kept the last) saw this one's."""
    authenticator = world.authenticator
    authenticator.sign_count += 1
    auth_data = authenticator._auth_data(authenticator.rp_id, FLAG_UP | FLAG_UV, authenticator.sign_count)
    client = (
        f'{{"type": "webauthn.get", "challenge": "{b64url(bytes(32))}", "challenge": "{b64url(challenge)}", '
        f'"origin": "{authenticator.origin}", "crossOrigin": false}}'
    ).encode()
    signature = authenticator.key.sign(auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
    return Assertion(authenticator.credential_id, auth_data, client, signature, authenticator.cose_key)


ATTACKS = {
    # house 12: before, accepted (the portal signed the grant; the engine authorized it)
    "challenge_named_twice": (_challenge_named_twice, "signature_invalid"),
    # name: (how the assertion is made, reason)
    "wrong_origin": (lambda w, c: w.authenticator.sign(c, origin="https://evil.example"), "wrong_origin"),
    "wrong_rp": (lambda w, c: w.authenticator.sign(c, rp_id="evil.example"), "wrong_rp"),
    "no_user_verification": (lambda w, c: w.authenticator.sign(c, user_verified=False), "user_not_verified"),
    "other_holders_credential": (lambda w, c: _other_holders_passkey(w).sign(c), "credential_not_holders"),
    "unregistered_credential": (lambda w, c: SoftAuthenticator().sign(c), "credential_not_holders"),
    "bad_signature": (
        lambda w, c: Assertion(
            **{**w.authenticator.sign(c).__dict__, "signature": b"\x30\x06\x02\x01\x01\x02\x01\x01"}
        ),
        "signature_invalid",
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_portal_refuses_a_bad_assertion(passkey_world, attack) -> None:
    make, reason = ATTACKS[attack]
    request = passkey_world.request()
    payload = passkey_world.portal.grant_to_sign(
        request.request_id, passkey_world.holder_id, passkey_world.authenticator.credential_id
    )
    assertion = make(passkey_world, signing_challenge(payload))
    assert (
        refused(
            lambda: passkey_world.portal.sign_grant(request.request_id, passkey_world.holder_id, payload, assertion)
        )
        == reason
    )
    assert passkey_world.portal.request(request.request_id).state == "pending"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_policy_engine_refuses_a_forged_grant_at_use(passkey_world, attack) -> None:
    make, reason = ATTACKS[attack]
    request = passkey_world.request()
    payload = passkey_world.portal.grant_to_sign(
        request.request_id, passkey_world.holder_id, passkey_world.authenticator.credential_id
    )
    forge(passkey_world, payload, make(passkey_world, signing_challenge(payload)))
    assert refused(lambda: passkey_world.workspace.policy.authorize("haneul", "music_video", "studio")) == reason
    assert passkey_world.workspace.registry.grant_state(payload["grant_id"]) == "altered"


def test_an_assertion_replayed_for_another_grant(passkey_world) -> None:
    world = passkey_world
    first = world.request()
    payload_a = world.portal.grant_to_sign(first.request_id, world.holder_id, world.authenticator.credential_id)
    assertion_a = world.authenticator.sign(signing_challenge(payload_a))
    world.portal.sign_grant(first.request_id, world.holder_id, payload_a, assertion_a)
    second = world.request(uses=["advertising"])
    payload_b = world.portal.grant_to_sign(second.request_id, world.holder_id, world.authenticator.credential_id)
    # through the portal
    assert refused(lambda: world.portal.sign_grant(second.request_id, world.holder_id, payload_b, assertion_a)) == (
        "assertion_replayed"
    )
    # straight into the database and the ledger
    forge(world, payload_b, assertion_a)
    assert refused(lambda: world.workspace.policy.authorize("haneul", "advertising", "studio")) == "assertion_replayed"
    world.workspace.policy.authorize("haneul", "music_video", "studio")  # the genuine grant still stands


def test_the_payload_edited_in_sql_after_signing(passkey_world) -> None:
    world = passkey_world
    grant_id = world.sign(world.request())
    with world.workspace.engine.begin() as connection:
        connection.execute(text("UPDATE grants SET max_renders = 1000 WHERE id = :id"), {"id": grant_id})
    assert refused(lambda: world.workspace.policy.authorize("haneul", "music_video", "studio")) == "grant_altered"


def test_the_payload_edited_in_sql_in_row_and_ledger_alike(passkey_world) -> None:
    """Even with the ledger's guard dropped and the event rewritten with a matching digest, the
    passkey signed the old payload: refused."""
    world = passkey_world
    grant_id = world.sign(world.request())
    (event,) = world.workspace.ledger.find("grant.issued", grant_id=grant_id)
    body = {k: v for k, v in event.payload.items() if k not in ("payload_sha256", "signature", "passkey")}
    body["uses"] = sorted([*body["uses"], "advertising"])
    edited = {**event.payload, **body, "payload_sha256": canonical_sha256(body)}
    with world.workspace.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS ledger_no_update"))
        connection.execute(
            text("UPDATE ledger SET payload = :p WHERE seq = :s"),
            {"p": json.dumps(edited, sort_keys=True, separators=(",", ":")), "s": event.seq},
        )
        connection.execute(
            text("UPDATE grants SET uses = :u, payload_sha256 = :d WHERE id = :id"),
            {"u": json.dumps(body["uses"]), "d": edited["payload_sha256"], "id": grant_id},
        )
    assert refused(lambda: world.workspace.policy.authorize("haneul", "advertising", "studio")) == "grant_altered"


def test_a_sign_counter_regression(passkey_world) -> None:
    world = passkey_world
    world.sign(world.request())  # counter 1
    request = world.request(uses=["advertising"])
    payload = world.portal.grant_to_sign(request.request_id, world.holder_id, world.authenticator.credential_id)
    cloned = world.authenticator.sign(signing_challenge(payload), count=1)  # a clone still at 1
    assert refused(lambda: world.portal.sign_grant(request.request_id, world.holder_id, payload, cloned)) == (
        "counter_regressed"
    )
    forge(world, payload, cloned)
    assert refused(lambda: world.workspace.policy.authorize("haneul", "advertising", "studio")) == "counter_regressed"


def test_an_authenticator_without_a_counter_is_accepted(passkey_world) -> None:
    world = passkey_world
    holder_id, authenticator = world.enrol("nocount-holder", subject="nocount")
    authenticator.keeps_counter = False
    for _ in range(2):
        world.sign(world.request(subject="nocount"), authenticator, holder_id)
    world.workspace.policy.authorize("nocount", "music_video", "studio")


def test_a_grant_request_naming_a_prohibited_use(passkey_world) -> None:
    world = passkey_world
    assert refused(lambda: world.request(uses=["music_video", "sexual_content"])) == "prohibited_use"
    (event,) = world.workspace.ledger.find("grant.refused", subject="haneul")
    assert event.payload["reason"] == "prohibited_use"


def test_an_estate_grants_only_tribute_and_its_neighbours(passkey_world) -> None:
    world = passkey_world
    world.enrol("estate-holder", kind="estate", subject="legend")
    assert refused(lambda: world.request(uses=["advertising", "tribute"], subject="legend")) == "use_not_granted"
    world.request(uses=["tribute", "training"], subject="legend")


def test_an_expired_invitation(passkey_world) -> None:
    world = passkey_world
    world.portal.add_passkey_holder("late-holder", "Late", kind="artist")
    _, token = world.portal.invite("late-holder", "studio", created_by="admin", ttl=timedelta(hours=1))
    assert refused(lambda: world.portal.open_invitation(token, at=now_utc() + timedelta(hours=2))) == (
        "invitation_expired"
    )
    assert refused(lambda: world.portal.open_invitation("not-a-token")) == "invitation_unknown"


def test_a_reused_invitation(passkey_world) -> None:
    world = passkey_world
    holder = world.portal.add_passkey_holder("once-holder", "Once", kind="artist")
    invitation_id, token = world.portal.invite("once-holder", "studio", created_by="admin")
    world.portal.open_invitation(token)
    register(world.portal, holder.id, SoftAuthenticator(), invitation_id=invitation_id)
    assert refused(lambda: world.portal.open_invitation(token)) == "invitation_used"
    # a second registration racing with the first is refused too
    assert refused(lambda: register(world.portal, holder.id, SoftAuthenticator(), invitation_id=invitation_id)) == (
        "invitation_used"
    )


def test_a_passkey_revocation_bites_at_the_next_check(passkey_world) -> None:
    world = passkey_world
    grant_id = world.sign(world.request())
    authz = world.workspace.policy.authorize("haneul", "music_video", "studio")
    payload = world.portal.revocation_to_sign(grant_id, world.holder_id, reason="changed my mind")
    world.portal.revoke_grant(grant_id, world.holder_id, payload, world.authenticator.sign(signing_challenge(payload)))
    assert refused(lambda: require_authorization(authz, step="render")) == "revoked"
    assert refused(lambda: world.workspace.policy.authorize("haneul", "music_video", "studio")) == "revoked"
    assert world.workspace.registry.grant_state(grant_id) == "revoked"


def test_a_revocation_signed_by_another_holders_passkey_does_not_count(passkey_world) -> None:
    world = passkey_world
    grant_id = world.sign(world.request())
    rival = _other_holders_passkey(world)
    payload = world.portal.revocation_to_sign(grant_id, world.holder_id)
    assert (
        refused(
            lambda: world.portal.revoke_grant(
                grant_id, world.holder_id, payload, rival.sign(signing_challenge(payload))
            )
        )
        == "credential_not_holders"
    )
    forged = rival.sign(signing_challenge(payload))
    world.workspace.ledger.append(
        "grant.revoked", {**payload, "signature": forged.digest(), "passkey": forged.as_payload()}
    )
    assert refused(lambda: world.workspace.policy.authorize("haneul", "music_video", "studio")) == "revocation_invalid"


def test_a_recovery_passkey_signs_too(passkey_world) -> None:
    world = passkey_world
    recovery = SoftAuthenticator()
    add_recovery(world.portal, world.holder_id, world.authenticator, recovery)
    assert [p.label for p in world.portal.passkeys_of(world.holder_id)] == ["primary", "recovery"]
    world.sign(world.request(), recovery)
    world.workspace.policy.authorize("haneul", "music_video", "studio")


def test_the_holders_audit_export_is_signed(passkey_world) -> None:
    world = passkey_world
    grant_id = world.sign(world.request())
    world.workspace.policy.authorize("haneul", "music_video", "studio")
    export = world.portal.audit_export(world.holder_id)
    types = [e["event_type"] for e in export["events"]]
    assert {"holder.created", "holder.invited", "holder.passkey_registered", "grant.requested", "grant.issued"} <= set(
        types
    )
    assert "authorization.issued" in types
    assert all(e["payload"].get("grant_id") in (None, grant_id) for e in export["events"])
    assert verify_export(export)
    export["events"] = export["events"][:-1]
    assert not verify_export(export)
    assert RP.rp_id == "localhost"


def test_audit_finds_nothing_wrong_with_passkey_records(passkey_world) -> None:
    from likeness.consent.integrity import consent_row_problems

    world = passkey_world
    grant_id = world.sign(world.request())
    payload = world.portal.revocation_to_sign(grant_id, world.holder_id)
    world.portal.revoke_grant(grant_id, world.holder_id, payload, world.authenticator.sign(signing_challenge(payload)))
    assert consent_row_problems(world.workspace) == []
    with world.workspace.engine.begin() as connection:
        connection.execute(text("UPDATE grants SET purpose = 'anything' WHERE id = :id"), {"id": grant_id})
    assert [p.kind for p in consent_row_problems(world.workspace)] == ["grant"]


def test_a_request_edited_in_sql_is_not_shown_or_signed(passkey_world) -> None:
    world = passkey_world
    request = world.request()
    with world.workspace.engine.begin() as connection:
        row = connection.execute(text("SELECT payload FROM grant_requests WHERE id = :id"), {"id": request.request_id})
        edited = row.scalar_one().replace('"max_renders":20', '"max_renders":2000')
        connection.execute(
            text("UPDATE grant_requests SET payload = :p WHERE id = :id"), {"p": edited, "id": request.request_id}
        )
    assert refused(lambda: world.portal.request(request.request_id)) == "grant_altered"
    assert (
        refused(
            lambda: world.portal.grant_to_sign(request.request_id, world.holder_id, world.authenticator.credential_id)
        )
        == "grant_altered"
    )


def test_a_guardian_signs_for_a_minor_and_the_grant_records_it(passkey_world) -> None:
    world = passkey_world
    holder_id, authenticator = world.enrol("yuna-guardian", kind="guardian", subject="yuna")
    grant_id = world.sign(world.request(subject="yuna"), authenticator, holder_id)
    (event,) = world.workspace.ledger.find("grant.issued", grant_id=grant_id)
    assert event.payload["passkey"]["signed_as"] == "guardian"
    world.workspace.policy.authorize("yuna", "music_video", "studio")


def test_a_passkey_appended_to_the_ledger_without_a_voucher_signs_nothing(passkey_world) -> None:
    """A database editor appends a ``holder.passkey_registered`` event for their own key (no
    organisation signature, or one by a stranger's passkey), then a grant signed with it."""
    from likeness.consent.integrity import consent_row_problems
    from likeness.consent.passkeys import passkey_fingerprint, registration_payload

    world = passkey_world
    intruder = SoftAuthenticator()
    stranger = SoftAuthenticator()
    for label, extra in (("primary", {}), ("recovery", "stranger")):
        payload = registration_payload(
            holder_id=world.holder_id,
            credential_id=intruder.credential_id,
            public_key=intruder.cose_key,
            rp_id=RP.rp_id,
            origin=RP.origin,
            sign_count=0,
            label=label,
            invitation_id=None,
            org_id=None,
            org_fingerprint=None,
            registered_at="2026-12-01T00:00:00Z",
        )
        if extra:
            vouch = stranger.sign(signing_challenge(payload))
            world.workspace.ledger.append(
                "holder.passkey_registered", {**payload, "signature": vouch.digest(), "passkey": vouch.as_payload()}
            )
        else:
            world.workspace.ledger.append("holder.passkey_registered", {**payload, "signature": "00" * 64})
    request = world.request(uses=["advertising"])
    payload = world.portal.grant_to_sign(request.request_id, world.holder_id, world.authenticator.credential_id)
    payload["holder_fingerprint"] = passkey_fingerprint(intruder.cose_key)
    forge(world, payload, intruder.sign(signing_challenge(payload)))
    assert refused(lambda: world.workspace.policy.authorize("haneul", "advertising", "studio")) == (
        "credential_not_holders"
    )
    problems = [p.problem for p in consent_row_problems(world.workspace) if p.kind == "holder"]
    assert len(problems) == 2 and all("holder.passkey_registered ignored" in p for p in problems)


def test_a_recovery_passkey_needs_the_holders_passkey_to_sign_it(passkey_world) -> None:
    world = passkey_world
    rival = _other_holders_passkey(world)
    with pytest.raises(ConsentError) as caught:
        add_recovery(world.portal, world.holder_id, rival, SoftAuthenticator())
    assert caught.value.reason == "credential_not_holders"


def test_counters_are_per_credential(passkey_world) -> None:
    """The primary vouches for a recovery passkey at counter 41: the recovery passkey then signs
    at its own counter 1 (no regression), and a clone of the primary still at 30 is refused."""
    world = passkey_world
    world.authenticator.sign_count = 40
    recovery = SoftAuthenticator()
    add_recovery(world.portal, world.holder_id, world.authenticator, recovery)  # the primary at 41
    world.sign(world.request(), recovery)  # the recovery passkey at 1
    world.workspace.policy.authorize("haneul", "music_video", "studio")
    request = world.request(uses=["advertising"])
    payload = world.portal.grant_to_sign(request.request_id, world.holder_id, world.authenticator.credential_id)
    forge(world, payload, world.authenticator.sign(signing_challenge(payload), count=30))
    assert refused(lambda: world.workspace.policy.authorize("haneul", "advertising", "studio")) == "counter_regressed"
