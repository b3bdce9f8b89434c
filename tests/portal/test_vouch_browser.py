"""A holder who signs offline gets a passkey in Chromium (virtual authenticator over CDP): the
agency's link makes the passkey and offers its registration statement as a file; the holder
vouches for it with their key on their machine; after the import the passkey signs them in.
Screenshots of the invitation and the statement at 390x844 and 1280x800, Korean and English,
under ``test-artifacts/portal/``."""

from __future__ import annotations

import json

import pytest

from likeness.consent.holder import sign_vouch
from likeness.service.roles import Role
from tests.browser import LOCALES, VIEWPORTS, collect_errors
from tests.conftest import add_subject, holder_machine

from .conftest import portal_shot, with_authenticator

#: A passkey the holder has not vouched for yet: the refusal's sentence for its reason.
NOT_HOLDERS = {
    "en": "The passkey used is not registered to you here, or what it was to sign belongs to another rights holder.",
    "ko": "사용한 패스키가 여기에 회원님의 것으로 등록되어 있지 않거나, 서명하려던 항목이 다른 권리자의 것입니다.",
}


def _vouch_link(context, url: str, token: str) -> str:
    made = context.request.post(
        f"{url}/api/v1/portal/invitations",
        headers={"Authorization": f"Bearer {token}"},
        data={"holder": "mina-holder"},
    )
    assert made.status == 201, made.text()
    return made.json()["url"]


@pytest.mark.slow
def test_an_offline_holder_makes_a_passkey_vouches_and_signs_in(browser, portal_service, tmp_path) -> None:
    url, workspace, tokens = (portal_service[k] for k in ("url", "workspace", "tokens"))
    registry = workspace.registry
    add_subject(registry, "mina", "Mina")  # mina-holder signs offline with their own key
    agency = browser.new_context(viewport=VIEWPORTS["laptop"], locale="en-GB")
    try:
        for size in VIEWPORTS:
            for language, locale in LOCALES.items():
                context = browser.new_context(viewport=VIEWPORTS[size], locale=locale)
                page = context.new_page()
                errors = collect_errors(page, [], console=False)
                with_authenticator(context, page)
                page.goto(_vouch_link(agency, url, tokens[Role.ADMIN]))
                portal_shot(page, "vouch-1-invitation", size, language)
                page.click("[data-passkey-register]")
                page.wait_for_selector("[data-vouch-statement]:not([hidden])")
                assert page.locator("[data-passkey-register]").is_hidden()
                fingerprint = page.locator("[data-statement-fingerprint]").inner_text()
                assert fingerprint.startswith("webauthn:")
                portal_shot(page, "vouch-2-statement", size, language)
                with page.expect_download() as saved:
                    page.click("[data-statement-download]")
                statement = json.loads(saved.value.path().read_text(encoding="utf-8"))
                assert statement["key_fingerprint"] == fingerprint and not errors, errors
                if size == "phone":
                    # Before the vouch the passkey signs nothing, said in the page's language
                    # above the refusal's own English detail and reason.
                    page.goto(f"{url}/portal")
                    page.click("[data-passkey-signin]")
                    page.wait_for_selector("[data-passkey-error]:not([hidden])")
                    refusal = page.locator("[data-passkey-error]")
                    assert refusal.locator("[data-passkey-error-sentence]").inner_text() == NOT_HOLDERS[language]
                    detail = refusal.locator("[data-passkey-error-detail]")
                    assert detail.is_visible() and detail.locator("code").get_attribute("lang") == "en"
                    assert "this passkey is not registered here (credential_not_holders)" in detail.inner_text()
                    portal_shot(page, "vouch-3-unvouched-signin", size, language)
                if (size, language) == ("phone", "en"):
                    # After the import it signs in.
                    key = holder_machine(registry).key("mina-holder")
                    registry.import_signed(sign_vouch(statement, key))
                    page.goto(f"{url}/portal")
                    page.click("[data-passkey-signin]")
                    page.wait_for_selector(".holder-bar")
                    assert "Mina" in page.locator(".holder-bar").inner_text()
                context.close()
    finally:
        agency.close()
