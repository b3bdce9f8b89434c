"""Organisations and rights holders are who their ledger events say.

Attacks (second review, findings 4, 5, 7): swap two organisations' slugs in the database
(studio <-> rival), so that ``--org rival`` authorizes under studio's grant and the C2PA
consent assertion names rival; edit an organisation's display name before the first render,
so the C2PA signing setup is created as "Evil Corp"; swap two rights holders' slugs.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from likeness.consent.canonical import now_utc
from likeness.consent.integrity import consent_row_problems
from likeness.errors import ConsentError


def _sql(ws, statement: str, **params) -> None:
    with ws.engine.begin() as conn:
        conn.execute(text(statement), params)


def refusal(call, *args, **kwargs) -> ConsentError:
    with pytest.raises(ConsentError) as info:
        call(*args, **kwargs)
    return info.value


def _swap(ws, table: str, a: str, b: str) -> None:
    _sql(ws, f"UPDATE {table} SET slug = 'swap-tmp' WHERE slug = :a", a=a)
    _sql(ws, f"UPDATE {table} SET slug = :a WHERE slug = :b", a=a, b=b)
    _sql(ws, f"UPDATE {table} SET slug = :b WHERE slug = 'swap-tmp'", b=b)


def test_org_slug_swap_is_refused_and_named(consent_world):
    ws = consent_world.workspace
    rival = ws.registry.add_org("rival", "Rival Co")
    studio_id = ws.registry.get_org("studio").id
    before = consent_world.authorize("music_video")
    release = consent_world.authorize_release()
    assert refusal(ws.policy.authorize, "mina", "music_video", "rival").reason == "wrong_grantee"

    _swap(ws, "organisations", "studio", "rival")

    # "rival" now finds studio's row, with studio's grant: refused, not authorized for rival.
    error = refusal(ws.policy.authorize, "mina", "music_video", "rival")
    assert error.reason == "org_altered"
    assert "slug 'rival' (the ledger says 'studio')" in str(error)
    assert refusal(ws.policy.authorize_release, "jun", "rival").reason == "org_altered"
    assert refusal(ws.policy.authorize, "mina", "training", studio_id).reason == "org_altered"
    assert refusal(before.recheck).reason == "org_altered"
    assert refusal(release.recheck).reason == "org_altered"
    assert ws.registry.grant_state(consent_world.grant_id) == "altered"
    problems = consent_row_problems(ws)
    named = {p.record_id for p in problems if p.kind == "organisation" and "differs from its org.created" in p.problem}
    assert named == {studio_id, rival.id}
    assert ws.ledger.find("authorization.refused", reason="org_altered")


def test_org_name_edit_is_refused_and_never_signs_c2pa(consent_world):
    from likeness.provenance.writer import LabelledWriter

    ws = consent_world.workspace
    authz = consent_world.authorize("music_video")
    assert ws.registry.org_display_name("studio") == "Studio Haneul"

    _sql(ws, "UPDATE organisations SET name = 'Evil Corp' WHERE slug = 'studio'")

    error = refusal(consent_world.authorize, "music_video")
    assert error.reason == "org_altered" and "name 'Evil Corp' (the ledger says 'Studio Haneul')" in str(error)
    assert refusal(ws.registry.org_display_name, "studio").reason == "org_altered"
    assert refusal(LabelledWriter(ws).signing_setup, authz).reason == "org_altered"
    assert not (ws.keys_dir / "c2pa" / "signer.pem").exists()
    assert any(p.kind == "organisation" and "Evil Corp" in p.problem for p in consent_row_problems(ws))

    _sql(ws, "UPDATE organisations SET name = 'Studio Haneul' WHERE slug = 'studio'")
    assert LabelledWriter(ws).signing_setup(consent_world.authorize("music_video")).org_name == "Studio Haneul"


def test_holder_slug_swap_is_named_and_signs_nothing(consent_world):
    ws = consent_world.workspace
    mina_holder = ws.registry.get_holder("mina-holder")
    jun_holder = ws.registry.get_holder("jun-holder")
    assert consent_row_problems(ws) == []

    _swap(ws, "rights_holders", "mina-holder", "jun-holder")

    problems = consent_row_problems(ws)
    named = {p.record_id for p in problems if p.kind == "holder" and "differs from its holder.created" in p.problem}
    assert named == {mina_holder.id, jun_holder.id}
    assert any("slug 'jun-holder' (the ledger says 'mina-holder')" in p.problem for p in problems)
    # Signing a new grant says why (not a misleading signature_invalid from the other key file).
    error = refusal(
        ws.registry.request_grant, "mina", "studio", ["training"], valid_until=now_utc() + timedelta(days=1)
    )
    assert error.reason == "holder_altered"
    # The holder can still revoke, with their own key (checked against the ledger's holder).
    consent_world.revoke_grant()
    assert refusal(consent_world.authorize, "training").reason == "revoked"


@pytest.mark.parametrize("column, value", [("kind", "estate"), ("name", "Someone Else")])
def test_holder_kind_or_name_edit_is_named(consent_world, column, value):
    ws = consent_world.workspace
    _sql(ws, f"UPDATE rights_holders SET {column} = :v WHERE slug = 'mina-holder'", v=value)
    problems = consent_row_problems(ws)
    assert any(p.kind == "holder" and f"{column} {value!r}" in p.problem for p in problems)
