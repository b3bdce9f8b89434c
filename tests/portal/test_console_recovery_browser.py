"""The console's passkey recovery form with an evidence file, on a small phone in Korean and a
laptop in English: the file is chosen, the link comes back once with the evidence's SHA-256,
and the ledger's attestation carries that digest."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from likeness.consent.holder_portal import HolderPortal
from likeness.consent.registry import RecoveryAttestation
from tests.browser import collect_errors, scroll_width, sign_in

from .conftest import PASSWORD, shots_folder
from .test_portal_plain_words_browser import LAPTOP, PHONE, _holder_signed_in


@pytest.mark.parametrize("size, language", [(PHONE, "ko"), (LAPTOP, "en")])
def test_an_admin_recovers_passkeys_with_an_evidence_file(browser, portal_service, size, language, tmp_path):
    url, workspace = portal_service["url"], portal_service["workspace"]
    _portal, holder_context, _holder = _holder_signed_in(browser, portal_service, size, language)
    holder_context.close()
    context = browser.new_context(viewport=size, locale="ko-KR" if language == "ko" else "en-GB")
    page = context.new_page()
    errors = collect_errors(page, [])
    try:
        page.goto(f"{url}/lang/{language}?next=/login%3Fnext%3D/consent/holders")
        sign_in(page, url, "admin", PASSWORD, "/consent/holders")
        form = page.locator("form[action='/consent/holders/recover']")
        label = "증빙 파일 (선택)" if language == "ko" else "Evidence file (optional)"
        assert label in form.inner_text()
        scan = tmp_path / "passport-check.pdf"
        scan.write_bytes(b"%PDF-1.4 identity checked in person\n" * 50)
        method = form.locator("select[name=method]")
        shown_methods = method.locator("option").all_inner_texts()
        notarised = "공증 서류" if language == "ko" else "Notarised document"
        assert notarised in shown_methods and not {"in_person", "notarised_document"} & set(shown_methods)
        method.select_option(label=notarised)
        form.locator("input[name=holder]").fill("sora-holder")
        form.locator("input[name=verified_by]").fill("J. Park, rights team")
        form.locator("input[name=statement]").fill("identity checked against passport")
        form.locator("input[name=evidence]").set_input_files(str(scan))
        form.locator("input[name=passkeys_lost]").check()
        form.locator("button[type=submit]").click()
        page.wait_for_selector("[data-recovery-url]")
        digest = hashlib.sha256(scan.read_bytes()).hexdigest()
        shown = page.locator("[data-evidence-sha256]").inner_text()
        assert digest in shown and ("SHA-256" in shown)
        (event,) = [e for e in workspace.ledger.find("holder.invited") if e.payload.get("purpose") == "recovery"]
        assert event.payload["attestation"]["evidence_sha256"] == digest
        assert event.payload["attestation"]["method"] == "notarised_document"
        assert HolderPortal(workspace).invitation_purpose(event.payload["invitation_id"]) == "recovery"
        name = "360" if size is PHONE else "laptop"
        page.locator("[data-recovery-url]").scroll_into_view_if_needed()
        page.screenshot(path=str(shots_folder(name, language) / "console-recovery-evidence.png"), full_page=True)
        assert scroll_width(page) <= size["width"]
        first_link = page.locator("[data-recovery-url] code").first.inner_text().strip()
        again = RecoveryAttestation("identity checked again", "J. Park, rights team", "in_person")
        HolderPortal(workspace).invite_to_recover("sora-holder", "studio", created_by="admin", attestation=again)
        page.goto(first_link)  # a later recovery superseded it: the page says so in words
        notice = page.locator("[data-refused]")
        assert notice.get_attribute("data-refused") == "invitation_superseded"
        newer = "새 복구 링크" if language == "ko" else "A newer recovery link"
        assert newer in notice.inner_text()
        page.screenshot(path=str(shots_folder(name, language) / "portal-recovery-superseded.png"), full_page=True)
        assert scroll_width(page) <= size["width"]
        newest = HolderPortal(workspace).invite_to_recover(
            "sora-holder", "studio", created_by="admin", attestation=again
        )[1]
        with workspace.engine.begin() as connection:  # a database editor removes the holder's row
            connection.execute(text("PRAGMA foreign_keys = OFF"))
            connection.execute(text("DELETE FROM rights_holders WHERE slug = 'sora-holder'"))
        page.goto(f"{url}/portal/invite/{newest}")  # before: a JSON 404 naming the holder's id
        notice = page.locator("[data-refused]")
        assert notice.get_attribute("data-refused") == "holder_altered"
        removed = (
            "기록이 바뀌었거나 삭제되어" if language == "ko" else "Your record at the agency was changed or removed"
        )
        assert removed in notice.inner_text()
        page.screenshot(path=str(shots_folder(name, language) / "portal-recovery-holder-removed.png"), full_page=True)
        assert scroll_width(page) <= size["width"]
        assert errors == []
    finally:
        context.close()
