"""The agency's grant request API and console form draft requests only for subjects whose
enrolment the ledger backs: a subject row a database editor inserted, or one whose
``subject.created`` event its organisation did not sign, is a 409 naming it (its title in the
reader's language on the console), and nothing is written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from likeness.consent.tables import GrantRequestRow
from likeness.service.roles import Role
from likeness.service.security import LANG_COOKIE
from tests.consent.test_subject_enroller import _editors_row, subject_event
from tests.portal.softauthn import ORIGIN
from tests.portal.test_portal_http import _invite, world  # noqa: F401 (the fixture)

TITLES = {"en": "The ledger does not back the subject&#39;s enrolment", "ko": "원장에 이 대상의 등록 근거가 없습니다"}


def _requests(ws) -> int:
    with ws.session() as session:
        return int(session.scalar(select(func.count()).select_from(GrantRequestRow)) or 0)


def _editors_haneul2(world) -> tuple[int, int]:  # noqa: F811 (the fixture, imported)
    _invite(world)
    ws = world.workspace
    _editors_row(ws, "haneul2", ws.registry.get_holder("haneul-holder").id)
    return ws.ledger.count(), _requests(ws)


def test_a_grant_request_for_an_editors_subject_row_is_a_409_naming_it(world) -> None:  # noqa: F811
    before = _editors_haneul2(world)
    client = world.token_client(Role.LEGAL, base_url=ORIGIN)
    response = client.post(
        "/api/v1/portal/requests", json={"subject": "haneul2", "uses": ["music_video"], "valid_until": "+30d"}
    )
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"] == "urn:likeness:problem:subject-not-enrolled"
    assert problem["title"] == "The ledger does not back the subject's enrolment"
    assert problem["detail"].startswith("subject 'haneul2': no grant is requested for it: subject row ")
    assert problem["detail"].endswith("has no subject.created event on the ledger")
    assert (world.workspace.ledger.count(), _requests(world.workspace)) == before


def test_a_grant_request_for_a_subject_event_no_organisation_signed_is_a_409_naming_it(world) -> None:  # noqa: F811
    """The editor appends the ``subject.created`` too, naming the holder's organisation."""
    _invite(world)
    ws = world.workspace
    holder = ws.registry.get_holder("haneul-holder")
    row = _editors_row(ws, "haneul2", holder.id)
    forged = ws.ledger.append("subject.created", subject_event(row, ws.registry.get_org("studio").id))
    before = ws.ledger.count(), _requests(ws)
    client = world.token_client(Role.LEGAL, base_url=ORIGIN)
    response = client.post(
        "/api/v1/portal/requests", json={"subject": "haneul2", "uses": ["music_video"], "valid_until": "+30d"}
    )
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"] == "urn:likeness:problem:subject-not-enrolled"
    assert problem["detail"].startswith(
        f"subject 'haneul2': no grant is requested for it: its subject.created event (ledger row {forged.seq}) "
        "carries no organisation seal"
    )
    assert (ws.ledger.count(), _requests(ws)) == before


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_console_request_form_says_why_in_the_readers_language(world, lang) -> None:  # noqa: F811
    _editors_haneul2(world)
    client = world.client(base_url=ORIGIN, cookies={LANG_COOKIE: lang})
    csrf = world.login(client, "legal")
    before = world.workspace.ledger.count(), _requests(world.workspace)  # (after the sign-in's event)
    fields = {"subject": "haneul2", "uses": ["music_video"], "valid_until": "2099-01-30", "purpose": "MV"}
    page = client.post("/consent/holders/request", data={**fields, "csrf_token": csrf}, headers={"accept": "text/html"})
    assert page.status_code == 409 and f"409 · {TITLES[lang]}" in page.text, page.text[:400]
    assert "subject &#39;haneul2&#39;: no grant is requested for it" in page.text
    assert (world.workspace.ledger.count(), _requests(world.workspace)) == before
