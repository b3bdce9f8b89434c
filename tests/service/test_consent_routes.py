"""Subjects, grants and releases as the organisation sees them (read only), API and console."""

from __future__ import annotations

import re

from likeness.service.roles import Role
from tests.conftest import revoke_grant


def test_subjects_grants_and_releases_with_their_state(service_world):
    viewer = service_world.token_client(Role.VIEWER)
    subjects = {s["slug"]: s for s in viewer.get("/api/v1/subjects").json()}
    assert subjects["mina"]["owned"] and subjects["mina"]["kind"] == "virtual_idol"
    assert not subjects["jun"]["owned"] and subjects["jun"]["references"] == 0
    grants = viewer.get("/api/v1/grants").json()
    assert [(g["subject_slug"], g["state"]) for g in grants] == [("mina", "active")]
    releases = viewer.get("/api/v1/releases").json()
    assert [(r["performer_slug"], r["state"]) for r in releases] == [("jun", "active")]

    revoke_grant(service_world.workspace.registry, grants[0]["id"], reason="test")
    assert viewer.get("/api/v1/grants").json()[0]["state"] == "revoked"
    # another organisation sees none of it
    service_world.workspace.registry.add_org("rival")
    rival = service_world.accounts.add_user("rival-viewer", "a long password!", Role.VIEWER, org="rival")
    other = service_world.client(
        headers={"Authorization": f"Bearer {service_world.accounts.create_token(rival, 't')[0]}"}
    )
    assert other.get("/api/v1/subjects").json() == [] and other.get("/api/v1/grants").json() == []


def test_consent_page_in_korean(service_world):
    client = service_world.client(cookies={"likeness_lang": "ko"})
    service_world.login(client, "viewer")
    page = client.get("/consent")
    assert page.status_code == 200
    assert "버추얼 아이돌" in page.text and "유효" in page.text and "mina" in page.text
    # a grant's uses in words, not their codes
    uses = re.findall(r"<td>([^<]*)<br><span class=\"muted small\">|<td>([^<]*)</td>", page.text)
    shown = " ".join(a or b for a, b in uses)
    assert "뮤직비디오" in shown and "music_video" not in shown
