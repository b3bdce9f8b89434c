"""The holder's one list (``/portal/made``): every model, preview and render made under any of
their grants, newest first, paged, read through each grant's ``uses_of_grant``; nothing made
under another holder's grant, and no authorization or refusal rows (those are per grant)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from likeness.consent.holder_portal import MADE_EVENTS, HolderPortal
from likeness.service.portal import MADE_PAGE
from tests.portal.softauthn import ORIGIN, SoftAuthenticator
from tests.portal.test_portal_http import _ceremony, _csrf, _invite, _register, _request
from tests.service.conftest import build_service_world


@pytest.fixture
def signed(settings, workspace):
    """Haneul's holder signed in, with two grants signed by passkey."""
    world = build_service_world(settings, workspace)
    holder, authenticator = TestClient(world.app, base_url=ORIGIN), SoftAuthenticator()
    _register(holder, _invite(world), authenticator)
    csrf = _csrf(world, holder)
    grants = []
    for uses in (("music_video", "training"), ("fan_message",)):
        signed = _ceremony(holder, csrf, f"/portal/api/requests/{_request(world, uses)}/sign", authenticator)
        assert signed.status_code == 200, signed.text
        grants.append(signed.json()["grant_id"])
    return world, holder, grants


def _made(world, event_type: str, grant_id: str, use: str, mark: str) -> None:
    world.workspace.ledger.append(
        event_type, {"grant_id": grant_id, "use": use, "job_id": mark, "watermark_payload": mark}
    )


def test_everything_made_under_every_grant_newest_first(signed) -> None:
    world, holder, (music, fans) = signed
    _made(world, "model.trained", music, "training", "")
    _made(world, "preview.written", music, "training", "a1a1a1a1a1a1a1a1")
    _made(world, "render.completed", music, "music_video", "b2b2b2b2b2b2b2b2")
    _made(world, "render.completed", "f" * 32, "music_video", "dddddddddddddddd")  # someone else's grant
    _made(world, "render.completed", fans, "fan_message", "c3c3c3c3c3c3c3c3")
    home = holder.get("/portal").text
    assert 'href="/portal/made"' in home
    page = holder.get("/portal/made")
    assert page.status_code == 200, page.text[:400]
    kinds = [part.split('"', 1)[0] for part in page.text.split('data-made="')[1:]]
    assert kinds == ["render.completed", "render.completed", "preview.written", "model.trained"]
    text = page.text
    assert text.index("c3c3c3c3c3c3c3c3") < text.index("b2b2b2b2b2b2b2b2") < text.index("a1a1a1a1a1a1a1a1")
    assert "dddddddddddddddd" not in text and "authorization.issued" not in text
    assert f"/portal/grants/{fans}/renders/" in text and f'href="/portal/grants/{music}"' in text
    assert "· fan messages" in text and "· music videos" in text  # each made thing's use, in words
    assert "4 in all" in text
    holder.cookies.set("likeness_lang", "ko")
    assert "내 얼굴로 만들어진 모든 것" in holder.get("/portal/made").text
    # the one list is each grant's list, never a second reading of the ledger
    portal = HolderPortal(world.workspace)
    per_grant = {e.seq for g in (music, fans) for e in portal.uses_of_grant(g) if e.event_type in MADE_EVENTS}
    holder_id = world.workspace.registry.get_holder("haneul-holder").id
    assert [e.seq for e in portal.made_for_holder(holder_id).events] == sorted(per_grant, reverse=True)


def test_thousands_are_paged(signed) -> None:
    world, holder, (music, _fans) = signed
    for n in range(MADE_PAGE + 3):
        _made(world, "render.completed", music, "music_video", f"{n:016x}")
    first = holder.get("/portal/made").text
    assert first.count("data-made=") == MADE_PAGE and f"{MADE_PAGE + 2:016x}" in first and f"{0:016x}" not in first
    assert 'href="/portal/made?page=2"' in first and "Page 1 of 2" in first
    second = holder.get("/portal/made", params={"page": 2}).text
    assert second.count("data-made=") == 3 and f"{0:016x}" in second and 'href="/portal/made?page=1"' in second
    assert holder.get("/portal/made", params={"page": 3}).text.count("data-made=") == 0
    assert holder.get("/portal/made", params={"page": 0}).status_code in (400, 422)


def test_only_the_signed_in_holder_reads_it(signed) -> None:
    world = signed[0]
    anonymous = TestClient(world.app, base_url=ORIGIN).get("/portal/made", follow_redirects=False)
    assert anonymous.status_code in (303, 401)
    staff = world.client(base_url=ORIGIN)
    world.login(staff, "admin")
    assert staff.get("/portal/made", follow_redirects=False).status_code in (303, 401)
