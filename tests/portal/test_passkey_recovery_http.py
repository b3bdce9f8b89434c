"""A passkey recovery over HTTP: the recovery link makes a new passkey, the holder reads after
signing in (English and Korean) that their passkeys were recovered, on which day and by whom,
and the lost phone no longer signs in; the sign-in page says the agency can send such a link."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from likeness.consent.holder_portal import HolderPortal
from likeness.consent.registry import RecoveryAttestation
from tests.portal.softauthn import ORIGIN, SoftAuthenticator
from tests.portal.test_portal_http import _challenge, _invite, _register
from tests.service.conftest import build_service_world


@pytest.fixture
def world(settings, workspace):
    return build_service_world(settings, workspace)


def _sign_in(world, authenticator: SoftAuthenticator):
    client = TestClient(world.app, base_url=ORIGIN)
    started = client.post("/portal/api/signin/options", json={}).json()
    assertion = authenticator.sign(_challenge(started["publicKey"]["challenge"]))
    return client.post(
        "/portal/api/signin",
        json={"ceremony_id": started["ceremony_id"], "credential": authenticator.response(assertion)},
    )


def test_the_holder_recovers_through_the_link_and_reads_when_and_by_whom(world) -> None:
    signin_page = TestClient(world.app, base_url=ORIGIN).get("/portal").text
    assert "it can send you a recovery link to make a new passkey" in signin_page
    lost_phone = SoftAuthenticator()
    thief = TestClient(world.app, base_url=ORIGIN)  # signed in on the phone that was then lost
    _register(thief, _invite(world), lost_phone)
    assert "data-passkey-signin" not in thief.get("/portal").text
    org = world.workspace.registry.default_org().slug
    checked = RecoveryAttestation("identity checked against passport", "J. Park, rights team", "in_person", None)
    _, token = HolderPortal(world.workspace).invite_to_recover(
        "haneul-holder", org, created_by="legal", attestation=checked, passkeys_lost=True
    )
    # the lost phone's open session ends with the recovery: it reads and declines nothing more
    assert "data-passkey-signin" in thief.get("/portal").text
    holder = TestClient(world.app, base_url=ORIGIN)
    link = holder.get(f"/portal/invite/{token}").text
    assert "data-recovery-link" in link and "sends this link to recover your passkeys" in link
    new_phone = SoftAuthenticator()
    _register(holder, token, new_phone)
    today = datetime.now(UTC).date()
    home = holder.get("/portal").text
    assert "data-passkeys-recovered" in home
    assert f"Your passkeys were recovered on {today.day} {today.strftime('%B')} {today.year} by Studio Haneul" in home
    holder.cookies.set("likeness_lang", "ko")
    korean = holder.get("/portal").text
    assert (
        f"{today.year}년 {today.month}월 {today.day}일에 Studio Haneul" in korean and "패스키를 복구했습니다" in korean
    )
    refused = _sign_in(world, lost_phone)
    assert refused.status_code == 403 and refused.json()["reason"] == "credential_not_holders"
    assert _sign_in(world, new_phone).status_code == 200
