"""A holder adds a recovery passkey in Chromium, loses the first one, and still signs in and
signs a grant with the recovery passkey. Two CDP virtual authenticators stand in for the
holder's phone and their security key; which one answers a ceremony is chosen the way a person
does it, by touching only that one (``WebAuthn.setAutomaticPresenceSimulation``)."""

from __future__ import annotations

import base64

import pytest

from likeness.consent.holder_portal import HolderPortal
from likeness.consent.passkeys import b64url
from likeness.service.roles import Role
from tests.browser import new_page

from .conftest import AUTHENTICATOR, ask_for_a_birthday_message, portal_shot, with_authenticator


def _touch_only(cdp, chosen: str, every: list[str]) -> None:
    for authenticator in every:
        cdp.send(
            "WebAuthn.setAutomaticPresenceSimulation",
            {"authenticatorId": authenticator, "enabled": authenticator == chosen},
        )


@pytest.mark.slow
def test_a_recovery_passkey_signs_in_and_signs_after_the_first_is_lost(browser, portal_service):
    url, workspace, tokens = (portal_service[k] for k in ("url", "workspace", "tokens"))
    context, page, errors = new_page(browser, "phone")
    cdp, phone = with_authenticator(context, page)
    try:
        made = context.request.post(
            f"{url}/api/v1/portal/invitations",
            headers={"Authorization": f"Bearer {tokens[Role.ADMIN]}"},
            data={"holder": "sora-holder", "holder_name": "Lee Sora", "holder_kind": "artist", "subject": "sora"},
        )
        assert made.status == 201, made.text()
        page.goto(made.json()["url"])
        page.click("[data-passkey-register]")
        page.wait_for_url(f"{url}/portal")
        assert page.locator("text=Add a second passkey").count() == 1

        # the security key is plugged in; the new passkey is made on it (the phone is not
        # touched), then the phone's passkey signs its registration (the key is not touched)
        security_key = {**AUTHENTICATOR, "transport": "usb"}
        key = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": security_key})["authenticatorId"]
        both = [phone, key]
        _touch_only(cdp, key, both)

        def then_touch_the_phone(route):
            answer = route.fetch()
            _touch_only(cdp, phone, both)
            route.fulfill(response=answer)

        page.route("**/portal/api/passkeys", then_touch_the_phone)
        page.click("[data-passkey-add]")
        page.wait_for_selector("main li:has-text('recovery'), [data-passkey-error]:not([hidden])")
        assert page.locator("[data-passkey-error]:not([hidden])").count() == 0
        page.unroute("**/portal/api/passkeys")
        holder = HolderPortal(workspace).registry.get_holder("sora-holder")
        labels = sorted(p.label for p in HolderPortal(workspace).passkeys_of(holder.id))
        assert labels == ["primary", "recovery"]
        on_key = cdp.send("WebAuthn.getCredentials", {"authenticatorId": key})["credentials"]
        assert len(on_key) == 1
        assert page.locator("text=Add a second passkey").count() == 0
        portal_shot(page, "g-two-passkeys", "phone", "en")

        # the phone is lost: sign out, sign in with the security key alone
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": phone})
        _touch_only(cdp, key, [key])
        page.click(".holder-bar button[type=submit]")
        page.wait_for_selector("[data-passkey-signin]")
        page.click("[data-passkey-signin]")
        page.wait_for_selector(".holder-bar")
        assert "Lee Sora" in page.locator(".holder-bar").inner_text()

        # and signs a grant with it, which the policy engine accepts
        portal = HolderPortal(workspace)
        ask_for_a_birthday_message(portal, days=90, max_renders=3)
        page.goto(f"{url}/portal")
        page.click("text=Read and decide")
        page.click("[data-passkey-sign]")
        page.wait_for_url(f"{url}/portal/grants/*")
        grant_id = page.url.rsplit("/", 1)[1]
        (issued,) = workspace.ledger.find("grant.issued", grant_id=grant_id)
        # the grant was signed on the security key (CDP gives credential ids in base64)
        key_credential = base64.b64decode(on_key[0]["credentialId"])
        assert issued.payload["passkey"]["credential_id"] == b64url(key_credential)
        assert workspace.policy.authorize("sora", "fan_message", "studio").grant_id == grant_id
        assert errors == []
    finally:
        context.close()
