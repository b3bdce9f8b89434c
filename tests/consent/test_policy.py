"""The bypass matrix: every refusal reason, each asserting the specific reason."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import timedelta

import pytest
from sqlalchemy import text

from likeness.consent import (
    FINAL_MEDIA_USES,
    USES,
    Authorization,
    ReleaseAuthorization,
    keys,
    require_authorization,
    require_extraction_consent,
)
from likeness.consent.canonical import canonical_bytes, now_utc
from likeness.consent.policy import PolicyEngine
from likeness.consent.registry import grant_payload
from likeness.consent.tables import Grant, RightsHolder
from likeness.consent.vocabulary import check_use_for_step
from likeness.errors import ConsentError, RegistryError
from tests.conftest import add_holder, add_subject, holder_machine, issue_grant, revoke_grant


def refusal(call) -> ConsentError:
    with pytest.raises(ConsentError) as info:
        call()
    return info.value


def test_authorized_grant_carries_its_facts(consent_world):
    authz = consent_world.authorize("music_video")
    assert isinstance(authz, Authorization)
    assert authz.use == "music_video"
    assert authz.subject_slug == "mina" and authz.org_slug == "studio"
    assert authz.grant_id == consent_world.grant_id
    assert authz.holder_fingerprint.startswith("ed25519:")
    assert len(authz.grant_signature_sha256) == 64
    authz.recheck()  # live


def test_no_grant(workspace):
    workspace.registry.add_org("studio")
    add_subject(workspace.registry, "solo", "Solo", kind="artist")
    assert refusal(lambda: workspace.policy.authorize("solo", "training", "studio")).reason == "no_grant"


def test_unknown_subject_and_org(consent_world):
    policy = consent_world.workspace.policy
    assert refusal(lambda: policy.authorize("nobody", "training", "studio")).reason == "unknown_subject"
    assert refusal(lambda: policy.authorize("mina", "training", "nobody")).reason == "unknown_org"


def test_wrong_grantee(consent_world):
    consent_world.workspace.registry.add_org("rival")
    err = refusal(lambda: consent_world.workspace.policy.authorize("mina", "training", "rival"))
    assert err.reason == "wrong_grantee"
    assert "rival" in str(err)


def test_use_not_granted(workspace):
    reg = workspace.registry
    reg.add_org("studio")
    add_subject(reg, "ari", "Ari", kind="artist")
    issue_grant(reg, "ari", "studio", ["training"], valid_until=now_utc() + timedelta(days=1))
    err = refusal(lambda: workspace.policy.authorize("ari", "advertising", "studio"))
    assert err.reason == "use_not_granted"


@pytest.mark.parametrize(
    "use", ["sexual_content", "political_persuasion", "defamation", "fraud_impersonation", "porn", "impersonation"]
)
def test_prohibited_use_can_be_neither_granted_nor_authorized(consent_world, use):
    reg = consent_world.workspace.registry
    err = refusal(
        lambda: issue_grant(reg, "mina", "studio", ["training", use], valid_until=now_utc() + timedelta(days=1))
    )
    assert err.reason == "prohibited_use"
    assert refusal(lambda: consent_world.authorize(use)).reason == "prohibited_use"


def test_unknown_use(consent_world):
    assert refusal(lambda: consent_world.authorize("deepfake_anything")).reason == "unknown_use"


def test_expired_and_not_yet_valid(workspace):
    reg = workspace.registry
    reg.add_org("studio")
    add_subject(reg, "ari", "Ari", kind="artist")
    start = now_utc() + timedelta(days=2)
    issue_grant(reg, "ari", "studio", ["training"], valid_from=start, valid_until=start + timedelta(days=5))
    early = refusal(lambda: workspace.policy.authorize("ari", "training", "studio"))
    assert early.reason == "not_yet_valid"
    assert workspace.policy.authorize("ari", "training", "studio", at=start + timedelta(days=1))
    late = refusal(lambda: workspace.policy.authorize("ari", "training", "studio", at=start + timedelta(days=6)))
    assert late.reason == "expired"


def test_revoked_grant_refuses_and_bites_live_authorizations(consent_world):
    authz = consent_world.authorize("training")
    consent_world.revoke_grant()
    assert refusal(lambda: consent_world.authorize("training")).reason == "revoked"
    assert refusal(authz.recheck).reason == "revoked"
    assert refusal(lambda: authz.record("faceset.created", {})).reason == "revoked"


def test_render_limit(workspace):
    reg = workspace.registry
    reg.add_org("studio")
    add_subject(reg, "ari", "Ari", kind="artist")
    issue_grant(reg, "ari", "studio", ["fan_message"], max_renders=2, valid_until=now_utc() + timedelta(days=1))
    authz = workspace.policy.authorize("ari", "fan_message", "studio")
    authz.consume_render("job-1")
    authz.consume_render("job-1")  # a resumed job counts once
    authz.consume_render("job-2")
    assert refusal(lambda: authz.consume_render("job-3")).reason == "render_limit_reached"
    assert refusal(lambda: workspace.policy.authorize("ari", "fan_message", "studio")).reason == (
        "render_limit_reached"
    )
    assert reg.grant_record(reg.list_grants()[0].id).renders_used == 2


def _sql(workspace, statement: str, **params) -> None:
    with workspace.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_grant_row_edited_in_sql_after_signing(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    add_subject(reg, "ari", "Ari", kind="artist")
    grant_id = issue_grant(reg, "ari", "studio", ["training"], valid_until=now_utc() + timedelta(days=1))
    authz = ws.policy.authorize("ari", "training", "studio")
    # Someone with database access widens the grant to advertising.
    _sql(ws, "UPDATE grants SET uses = :u WHERE id = :g", u='["advertising", "training"]', g=grant_id)
    assert refusal(lambda: ws.policy.authorize("ari", "advertising", "studio")).reason == "grant_altered"
    assert refusal(authz.recheck).reason == "grant_altered"
    assert reg.grant_state(grant_id) == "altered"


def test_extended_validity_edited_in_sql_is_refused(consent_world):
    ws = consent_world.workspace
    _sql(ws, "UPDATE grants SET valid_until = '2099-01-01T00:00:00Z' WHERE id = :g", g=consent_world.grant_id)
    assert refusal(lambda: consent_world.authorize("training")).reason == "grant_altered"


def test_signature_from_another_holders_key(consent_world, tmp_path):
    ws = consent_world.workspace
    reg = ws.registry
    # A grant signed on the holders' machine with another holder's key is refused at import ...
    other = add_holder(reg, "other-holder", "Other", kind="artist")
    machine = holder_machine(reg)
    request = reg.request_grant("mina", "studio", ["training"], valid_until=now_utc() + timedelta(days=1))
    forged_request = dataclasses.replace(
        request, payload={**request.payload, "holder_fingerprint": other.key_fingerprint}
    )
    err = refusal(lambda: reg.import_signed(machine.sign(forged_request, "other-holder")))
    assert err.reason == "grant_altered"  # the payload names another key than the request did
    err = refusal(
        lambda: reg.import_signed(
            dataclasses.replace(machine.sign(request), signature=keys.sign(machine.key("other-holder"), b"x" * 8))
        )
    )
    assert err.reason == "signature_invalid"
    # ... and a stored grant re-signed over the same payload with another key is refused at use.
    with ws.engine.connect():
        pass
    from sqlalchemy.orm import Session

    with Session(ws.engine) as session:
        grant = session.get(Grant, consent_world.grant_id)
        holder = session.get(RightsHolder, grant.holder_id)
        forged = keys.sign(
            holder_machine(reg).key(other.slug),
            canonical_bytes(grant_payload(grant, holder.key_fingerprint)),
        )
    _sql(ws, "UPDATE grants SET signature = :s WHERE id = :g", s=forged, g=consent_world.grant_id)
    assert refusal(lambda: consent_world.authorize("training")).reason == "signature_invalid"


def test_grant_moved_to_another_holder_is_refused(consent_world):
    ws = consent_world.workspace
    other = add_holder(ws.registry, "other-holder", "Other", kind="artist")
    _sql(ws, "UPDATE grants SET holder_id = :h WHERE id = :g", h=other.id, g=consent_world.grant_id)
    assert refusal(lambda: consent_world.authorize("training")).reason in ("grant_altered", "signature_invalid")


def test_release_matrix(consent_world):
    release = consent_world.authorize_release()
    assert isinstance(release, ReleaseAuthorization)
    release.recheck()
    consent_world.revoke_release()
    assert refusal(release.recheck).reason == "release_revoked"
    assert refusal(consent_world.authorize_release).reason == "release_revoked"


def test_no_release_and_release_edit(consent_world):
    ws = consent_world.workspace
    add_subject(ws.registry, "kai", "Kai", kind="performer")
    assert refusal(lambda: ws.policy.authorize_release("kai", "studio")).reason == "no_release"
    _sql(ws, "UPDATE releases SET valid_until = '2099-01-01T00:00:00Z' WHERE id = :r", r=consent_world.release_id)
    assert refusal(consent_world.authorize_release).reason == "release_altered"


def test_performers_get_releases_not_grants(consent_world):
    with pytest.raises(RegistryError):
        issue_grant(
            consent_world.workspace.registry, "jun", "studio", ["training"], valid_until=now_utc() + timedelta(days=1)
        )


def test_authorization_cannot_be_constructed_copied_or_forged(consent_world):
    with pytest.raises(TypeError):
        Authorization()
    with pytest.raises(TypeError):
        ReleaseAuthorization()
    with pytest.raises(TypeError):

        class Fake(Authorization):  # noqa: F841
            pass

    authz = consent_world.authorize()
    with pytest.raises(AttributeError):
        authz.use = "advertising"
    with pytest.raises(TypeError):
        pickle.dumps(authz)
    with pytest.raises(TypeError):
        copy.copy(authz)
    # A forgery assembled with object.__new__ is refused by the engine that checks it.
    forged = object.__new__(Authorization)
    for name in Authorization.__slots__:
        if name != "__weakref__":
            object.__setattr__(forged, name, getattr(authz, name))
    assert refusal(forged.recheck).reason == "not_issued_here"
    # An engine never trusts authorizations issued by another engine instance.
    other_engine = PolicyEngine(lambda: None, consent_world.workspace.ledger)
    assert refusal(lambda: other_engine.recheck(authz)).reason == "not_issued_here"


def test_synthesis_guard_requires_real_authorization(consent_world):
    for step in ("extract", "train", "export", "render"):
        assert refusal(lambda step=step: require_authorization(None, step=step)).reason == "not_issued_here"
        assert refusal(
            lambda step=step: require_authorization({"grant_id": consent_world.grant_id}, step=step)
        ).reason == ("not_issued_here")
    authz = consent_world.authorize("training")
    for step in ("extract", "train", "export"):
        assert require_authorization(authz, step=step) is authz
    assert require_extraction_consent(authz) is authz


def test_training_authorizes_no_final_media(consent_world):
    """A training-only authorization is refused at render, whatever the grant's limit says."""
    authz = consent_world.authorize("training")
    error = refusal(lambda: require_authorization(authz, step="render"))
    assert error.reason == "use_not_for_step"
    assert "training" in str(error) and "music_video" in str(error)
    with pytest.raises(ConsentError) as caught:
        check_use_for_step("training", "render")
    assert caught.value.reason == "use_not_for_step"
    assert check_use_for_step("Music-Video", "render") == "music_video"
    assert "training" not in FINAL_MEDIA_USES and set(FINAL_MEDIA_USES) < set(USES)


def test_every_decision_is_on_the_ledger(consent_world):
    ws = consent_world.workspace
    consent_world.authorize("training")
    with pytest.raises(ConsentError):
        consent_world.workspace.policy.authorize("mina", "training", "nobody")
    issued = ws.ledger.find("authorization.issued", use="training")
    refused = ws.ledger.find("authorization.refused", reason="unknown_org")
    assert len(issued) == 1 and len(refused) == 1
    types = [e.event_type for e in ws.ledger.events()]
    for expected in ("org.created", "holder.created", "subject.created", "grant.issued", "release.issued"):
        assert expected in types


def test_private_keys_are_0600_and_never_in_the_database(consent_world):
    ws = consent_world.workspace
    key_path = holder_machine(ws.registry).key_path("mina-holder")
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert not key_path.is_relative_to(ws.home)  # the holder's key lives on the holder's machine
    assert not (ws.keys_dir / "holders").exists()
    pem = key_path.read_bytes()
    secret_b64 = b"".join(pem.splitlines()[1:-1])
    db_bytes = (ws.home / "likeness.db").read_bytes()
    assert secret_b64 not in db_bytes
    for event in ws.ledger.events():
        assert secret_b64.decode() not in str(event.payload)


def test_group_readable_key_is_refused(consent_world):
    from likeness.errors import ConfigError

    key_path = holder_machine(consent_world.workspace.registry).key_path("mina-holder")
    key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        consent_world.revoke_grant()


@pytest.mark.parametrize(
    "field, value",
    [
        ("allow_unlabelled", True),
        ("use", "advertising"),
        ("grant_id", "0" * 32),
        ("subject_id", "0" * 32),
        ("authorization_id", "f" * 32),
        ("valid_until", "2099-01-01T00:00:00Z"),
    ],
)
def test_authorization_mutated_with_object_setattr_is_refused(consent_world, field, value):
    """Attack: change a genuine Authorization's slot with ``object.__setattr__``."""
    authz = consent_world.authorize("music_video")
    require_authorization(authz, step="render")
    object.__setattr__(authz, field, value)
    for attempt in (
        lambda: require_authorization(authz, step="render"),
        authz.recheck,
        lambda: authz.consume_render("job-mutated"),
        lambda: authz.record("x.y", {}),
    ):
        assert refusal(attempt).reason == "authorization_altered"
    assert consent_world.workspace.ledger.find("authorization.refused", reason="authorization_altered")


def test_training_authorization_mutated_to_a_final_use_is_refused_before_the_use_check(consent_world):
    authz = consent_world.authorize("training")
    object.__setattr__(authz, "use", "music_video")
    assert refusal(lambda: require_authorization(authz, step="render")).reason == "authorization_altered"


def test_release_authorization_mutated_is_refused(consent_world):
    from likeness.consent import require_release

    release = consent_world.authorize_release()
    object.__setattr__(release, "performer_id", "0" * 32)
    assert refusal(lambda: require_release(release, step="render")).reason == "authorization_altered"
    assert refusal(release.recheck).reason == "authorization_altered"


def test_training_authorization_reserves_no_render_slot(consent_world):
    authz = consent_world.authorize("training")
    assert refusal(lambda: authz.consume_render("job-t")).reason == "use_not_for_step"


def test_refusal_names_the_grant_in_force_not_a_stale_one(workspace):
    """An older grant covered the use and was revoked (or expired); the grant in force does not
    cover it: the refusal says the use is not granted, not that some grant was revoked."""
    reg = workspace.registry
    reg.add_org("studio")
    add_subject(reg, "ari", "Ari", kind="artist")
    add_subject(reg, "bo", "Bo", kind="artist")
    start = now_utc()
    old = issue_grant(reg, "ari", "studio", ["training", "tribute"], valid_until=start + timedelta(days=30))
    revoke_grant(reg, old, reason="contract renegotiated")
    issue_grant(reg, "ari", "studio", ["training"], valid_until=start + timedelta(days=30))
    assert workspace.policy.authorize("ari", "training", "studio")
    assert refusal(lambda: workspace.policy.authorize("ari", "tribute", "studio")).reason == "use_not_granted"

    issue_grant(
        reg,
        "bo",
        "studio",
        ["training", "tribute"],
        valid_from=start - timedelta(days=10),
        valid_until=start - timedelta(days=5),
    )
    issue_grant(reg, "bo", "studio", ["training"], valid_until=start + timedelta(days=30))
    assert refusal(lambda: workspace.policy.authorize("bo", "tribute", "studio")).reason == "use_not_granted"

    # With no grant in force, the covering grant's own reason is still the one named.
    add_subject(reg, "cy", "Cy", kind="artist")
    only = issue_grant(reg, "cy", "studio", ["tribute"], valid_until=start + timedelta(days=30))
    revoke_grant(reg, only, reason="withdrawn")
    assert refusal(lambda: workspace.policy.authorize("cy", "tribute", "studio")).reason == "revoked"


def test_the_use_not_granted_refusal_says_what_became_of_the_grant_that_covered_the_use(workspace):
    # The grant for fan messages expired while a training grant stayed in force: the refusal was
    # "no grant ... covers the use 'fan_message'", while `consent list` showed that very grant.
    reg = workspace.registry
    reg.add_org("studio")
    add_subject(reg, "bo", "Bo", kind="artist")
    start = now_utc()
    ended = issue_grant(
        reg,
        "bo",
        "studio",
        ["fan_message"],
        valid_from=start - timedelta(days=10),
        valid_until=start - timedelta(days=5),
    )
    issue_grant(reg, "bo", "studio", ["training"], valid_until=start + timedelta(days=30))
    refused = refusal(lambda: workspace.policy.authorize("bo", "fan_message", "studio"))
    valid_until = reg.grant_record(ended).valid_until
    assert refused.reason == "use_not_granted"
    assert str(refused).endswith(
        f"no grant of subject 'bo' to 'studio' covers the use 'fan_message' (the one that did: grant {ended} "
        f"expired at {valid_until}; only a new grant from the rights holder covers it: likeness consent request)"
    )
    assert "the one that did" not in str(refusal(lambda: workspace.policy.authorize("bo", "tribute", "studio")))
