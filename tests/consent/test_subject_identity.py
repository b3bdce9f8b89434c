"""A subject is who its ``subject.created`` event says, and ids are never mistaken for slugs.

Attacks: swap two subjects' slugs in the database (mina <-> sora), so that "sora" finds mina's
row and authorizes under mina's grant, with C2PA naming "sora" over mina's id (finding 10); and
enrol a subject whose slug is another subject's id, so lookups by id find the impostor
(finding 12).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from likeness.consent import USES
from likeness.consent.canonical import now_utc
from likeness.consent.integrity import consent_row_problems
from likeness.errors import ConsentError, RegistryError
from tests.conftest import add_holder, add_subject, issue_grant, revoke_grant


def _sql(ws, statement: str, **params) -> None:
    with ws.engine.begin() as conn:
        conn.execute(text(statement), params)


def refusal(call, *args) -> ConsentError:
    with pytest.raises(ConsentError) as info:
        call(*args)
    return info.value


@pytest.fixture
def with_sora(consent_world):
    """consent_world plus artist sora, whose grant to studio is revoked."""
    reg = consent_world.workspace.registry
    add_subject(reg, "sora", "Sora", kind="artist")
    sora_grant = issue_grant(reg, "sora", "studio", USES, valid_until=now_utc() + timedelta(days=30))
    revoke_grant(reg, sora_grant, reason="contract ended")
    return consent_world


def test_slug_swap_is_refused_and_named(with_sora):
    ws = with_sora.workspace
    mina_id = ws.registry.get_subject("mina").id
    sora_id = ws.registry.get_subject("sora").id
    before_swap = with_sora.authorize("music_video")
    assert refusal(ws.policy.authorize, "sora", "music_video", "studio").reason == "revoked"

    _sql(ws, "UPDATE subjects SET slug = 'swap-tmp' WHERE slug = 'mina'")
    _sql(ws, "UPDATE subjects SET slug = 'mina' WHERE slug = 'sora'")
    _sql(ws, "UPDATE subjects SET slug = 'sora' WHERE slug = 'swap-tmp'")

    # "sora" now finds mina's row (and mina's active grant): refused, not authorized as sora.
    error = refusal(ws.policy.authorize, "sora", "music_video", "studio")
    assert error.reason == "subject_altered"
    assert "slug 'sora' (the ledger says 'mina')" in str(error)
    assert refusal(ws.policy.authorize, "mina", "training", "studio").reason == "subject_altered"
    assert refusal(ws.policy.authorize, mina_id, "training", "studio").reason == "subject_altered"
    # An authorization issued before the swap stops at its next recheck.
    assert refusal(before_swap.recheck).reason == "subject_altered"
    assert ws.registry.grant_state(with_sora.grant_id) == "altered"
    problems = consent_row_problems(ws)
    named = {p.record_id for p in problems if p.kind == "subject" and "differs from its subject.created" in p.problem}
    assert named == {mina_id, sora_id}
    assert with_sora.grant_id in {p.record_id for p in problems if p.kind == "grant"}
    assert ws.ledger.find("authorization.refused", reason="subject_altered")


# trial 11: the name too (the portal, evidence packs and the public card show it; it was not
# on the ledger, so a renamed row was authorized and shown as it was)
@pytest.mark.parametrize("column, value", [("kind", "artist"), ("owner_org_id", None), ("name", "Yuna")])
def test_changed_subject_kind_or_owner_is_refused(consent_world, column, value):
    ws = consent_world.workspace
    _sql(ws, f"UPDATE subjects SET {column} = :value WHERE slug = 'mina'", value=value)
    error = refusal(ws.policy.authorize, "mina", "training", "studio")
    assert error.reason == "subject_altered" and column in str(error)
    assert any(column in p.problem for p in consent_row_problems(ws) if p.kind == "subject")


def test_performer_with_a_swapped_slug_gives_no_release(consent_world):
    ws = consent_world.workspace
    add_subject(ws.registry, "kai", "Kai", kind="performer")
    _sql(ws, "UPDATE subjects SET slug = 'swap-tmp' WHERE slug = 'jun'")
    _sql(ws, "UPDATE subjects SET slug = 'jun' WHERE slug = 'kai'")
    _sql(ws, "UPDATE subjects SET slug = 'kai' WHERE slug = 'swap-tmp'")
    assert refusal(ws.policy.authorize_release, "kai", "studio").reason == "subject_altered"


def test_id_shaped_slugs_are_refused(consent_world):
    reg = consent_world.workspace.registry
    mina_id = reg.get_subject("mina").id
    studio_id = reg.get_org("studio").id
    for call in (
        lambda: add_subject(reg, mina_id, "Impostor"),
        lambda: add_holder(reg, studio_id, "X", kind="artist"),
        lambda: reg.add_org(studio_id),
    ):
        with pytest.raises(RegistryError, match="form of a record id"):
            call()
    add_subject(reg, "abcdef0123456789abcdef012345678g", "Not hex")  # 32 characters, not all hex
    add_subject(reg, "0123456789abcdef0123456789abcde", "Thirty-one")  # 31 hex characters


def test_lookups_take_an_exact_id_before_a_slug(consent_world):
    """An impostor whose slug is mina's id (enrolled before slugs were checked, or by SQL)."""
    ws = consent_world.workspace
    reg = ws.registry
    mina = reg.get_subject("mina")
    jun = reg.get_subject("jun")
    _sql(
        ws,
        "INSERT INTO subjects (id, slug, name, kind, holder_id, owner_org_id, created_at) "
        "VALUES (:id, :slug, 'Impostor', 'performer', :holder, NULL, :at)",
        id="f" * 32,
        slug=mina.id,
        holder=jun.holder_id,
        at="2020-01-01T00:00:00Z",
    )
    _sql(
        ws,
        "INSERT INTO subjects (id, slug, name, kind, holder_id, owner_org_id, created_at) "
        "VALUES (:id, :slug, 'Impostor 2', 'performer', :holder, NULL, :at)",
        id="e" * 32,
        slug=jun.id,
        holder=jun.holder_id,
        at="2020-01-01T00:00:00Z",
    )
    assert reg.get_subject(mina.id).slug == "mina"
    assert reg.get_subject(jun.id).slug == "jun"
    assert reg.get_holder(mina.holder_id).id == mina.holder_id
    studio = reg.get_org("studio")
    assert reg.get_org(studio.id).slug == "studio"
    authz = ws.policy.authorize(mina.id, "training", studio.id)
    assert (authz.subject_id, authz.subject_slug, authz.org_slug) == (mina.id, "mina", "studio")
    release = ws.policy.authorize_release(jun.id, studio.id)
    assert (release.performer_id, release.performer_slug) == (jun.id, "jun")
