"""A rights holder who is not technical (an idol's parent on a phone in Korean, an estate's
lawyer on a laptop in English) revokes a grant and reads what it means: what stops now, what
was already made under it (with dates), and every use in words rather than ledger codes."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import cv2
import pytest

from likeness.consent.canonical import now_utc
from likeness.consent.holder_portal import HolderPortal
from likeness.media.synthetic import astronaut
from tests.browser import axe_violations, collect_errors, scroll_width

from .conftest import shots_folder, with_authenticator

#: The phone the brief names (a small Android) and a laptop.
PHONE, LAPTOP = {"width": 360, "height": 740}, {"width": 1280, "height": 800}
#: Ledger codes a holder should never have to read.
CODES = ("render.completed", "authorization.issued", "authorization.refused", "model.trained", "render.reserved")


def _a_render_under(workspace, grant_id: str, name: str) -> None:
    """A render as the pipeline records it (authorized, a slot reserved, ``render.completed``
    as the labelled writer appends it), with its file in outputs: no model to train."""
    out = Path(workspace.outputs_dir) / "portal-revoked" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    authz = workspace.policy.authorize("sora", "music_video", "studio")
    assert authz.grant_id == grant_id
    authz.consume_render(digest[:32])
    workspace.ledger.append(
        "render.completed",
        {
            "grant_id": grant_id,
            "use": "music_video",
            "job_id": digest[:32],
            "output_sha256": digest,
            "output_name": name,
            "watermark_payload": digest[:16],
        },
    )


def test_after_revoking_the_holder_reads_what_stops_and_what_was_made_in_words(browser, portal_service):
    url, workspace, tmp = (portal_service[k] for k in ("url", "workspace", "tmp"))
    portal = HolderPortal(workspace)
    holder = portal.add_passkey_holder("sora-holder", "이소라 (Lee Sora)", kind="guardian")
    workspace.registry.add_subject("sora", "Sora", kind="artist", holder="sora-holder")
    _, token = portal.invite("sora-holder", "studio", created_by="admin")
    context = browser.new_context(viewport=PHONE, locale="ko-KR")
    page = context.new_page()
    errors = collect_errors(page, [], console=False)
    with_authenticator(context, page)
    try:
        page.goto(f"{url}/lang/ko?next=/portal/invite/{token}")
        page.click("[data-passkey-register]")
        page.wait_for_url(f"{url}/portal")
        request = _music_video_request(
            portal,
            purpose="봄 컴백 뮤직비디오 Spring comeback 🌸✨ " + "아주 긴 설명 " * 60,
            previews=[cv2.imencode(".png", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()],
        )
        page.goto(f"{url}/portal/requests/{request.request_id}")
        page.click("[data-passkey-sign]")
        page.wait_for_url(f"{url}/portal/grants/*")
        grant_id = page.url.rsplit("/", 1)[1]
        _a_render_under(workspace, grant_id, "first.png")
        _a_render_under(workspace, grant_id, "second.jpg")
        page.reload()
        stale = context.new_page()  # the same grant in a second tab
        stale.goto(page.url)
        page.click("[data-passkey-revoke]")
        page.wait_for_selector("[data-grant-state=revoked]")
        stale.click("[data-passkey-revoke]")  # revoking again there shows the revoked grant
        stale.wait_for_selector("[data-revoked-note]")
        assert stale.locator("[data-passkey-error]").is_hidden()
        assert len(workspace.ledger.find("grant.revoked", grant_id=grant_id)) == 1

        # what stops now, and what was already made, said on the page in Korean
        note = page.locator("[data-revoked-note]")
        assert note.count() == 1, "a revoked grant's page says nothing of what revoking did"
        said = note.inner_text()
        assert "새로 만들 수 없습니다" in said and "철회 전에 만들어진 것: 2건" in said, said
        uses = page.locator(".uses").inner_text()
        assert not [code for code in CODES if code in uses], uses  # no ledger codes for a parent to decode
        assert "영상 또는 사진이 만들어졌습니다" in uses, uses
        assert page.locator("[data-render] figcaption").first.inner_text().startswith(now_utc().strftime("%Y-%m-%d"))
        assert scroll_width(page) <= PHONE["width"]
        page.screenshot(path=str(shots_folder("360", "ko") / "g-grant-revoked.png"), full_page=True)

        # the lawyer on a laptop in English: the same, in English
        laptop = browser.new_context(viewport=LAPTOP, locale="en-GB")
        laptop.add_cookies([c for c in context.cookies() if c["name"] == "likeness_holder"])
        view = laptop.new_page()
        view.goto(f"{url}/lang/en?next=/portal/grants/{grant_id}")
        said = view.locator("[data-revoked-note]").inner_text()
        assert "Nothing new can be made" in said and "Made before you revoked: 2," in said, said
        uses = view.locator(".uses").inner_text()
        assert not [code for code in CODES if code in uses], uses
        assert "A video or picture was made" in uses, uses
        view.screenshot(path=str(shots_folder("laptop", "en") / "g-grant-revoked.png"), full_page=True)
        laptop.close()
        assert errors == []
        assert holder.id
    finally:
        context.close()


def _music_video_request(portal, *, purpose: str = "Spring comeback", previews: list[bytes] | None = None):
    """The studio's request for Sora's music video (90 days, 3 renders), drafted by legal."""
    return portal.draft_request(
        "sora",
        "studio",
        ["music_video"],
        valid_until=now_utc() + timedelta(days=90),
        max_renders=3,
        purpose=purpose,
        created_by="legal",
        previews=previews or (),
    )


def _holder_signed_in(browser, portal_service, size, language):
    """Sora's guardian, signed in with a passkey in a fresh ``language`` context at ``size``."""
    url, workspace = portal_service["url"], portal_service["workspace"]
    portal = HolderPortal(workspace)
    portal.add_passkey_holder("sora-holder", "이소라 (Lee Sora)", kind="guardian")
    workspace.registry.add_subject("sora", "Sora", kind="artist", holder="sora-holder")
    _, token = portal.invite("sora-holder", "studio", created_by="admin")
    context = browser.new_context(viewport=size, locale="ko-KR" if language == "ko" else "en-GB")
    page = context.new_page()
    with_authenticator(context, page)
    page.goto(f"{url}/lang/{language}?next=/portal/invite/{token}")
    page.click("[data-passkey-register]")
    page.wait_for_url(f"{url}/portal")
    return portal, context, page


def test_a_request_signed_in_another_tab_or_before_going_back_shows_the_decision_in_the_holders_words(
    browser, portal_service
):
    """Two tabs of one request, or the back button after signing, left a page offering "Sign
    with passkey"; tapping it showed the server's English "grant request <id> was already signed"
    on a Korean page (and a declined request's stale "Decline" an English error page). The page
    now shows the decision, in the holder's language, with a link to the grant."""
    url = portal_service["url"]
    portal, context, page = _holder_signed_in(browser, portal_service, PHONE, "ko")
    errors = collect_errors(page, [], console=False)
    try:
        asked = _music_video_request(portal)
        other = context.new_page()
        other.goto(f"{url}/portal/requests/{asked.request_id}")
        page.goto(f"{url}/portal/requests/{asked.request_id}")
        page.click("[data-passkey-sign]")
        page.wait_for_url(f"{url}/portal/grants/*")

        other.click("[data-passkey-sign]")  # the second tab, still offering to sign
        other.wait_for_selector("[data-decided]")
        said = other.locator("main").inner_text()
        assert "already signed" not in said and asked.request_id not in said, said
        assert "이미 결정했습니다" in said, said
        assert other.locator("[data-decided] a[href^='/portal/grants/']").count() == 1
        other.screenshot(path=str(shots_folder("360", "ko") / "h-second-tab-signed.png"), full_page=True)

        page.go_back()  # back to the request just signed: the page as it was, or a new one
        page.wait_for_load_state()
        if page.locator("[data-passkey-sign]").count():
            page.click("[data-passkey-sign]")
        page.wait_for_selector("[data-decided]")
        assert "이미 결정했습니다" in page.locator("main").inner_text()

        declined = portal.draft_request(
            "sora",
            "studio",
            ["fan_message"],
            valid_until=now_utc() + timedelta(days=30),
            max_renders=1,
            purpose="Birthday",
            created_by="legal",
        )
        other.goto(f"{url}/portal/requests/{declined.request_id}")
        page.goto(f"{url}/portal/requests/{declined.request_id}")
        page.click("form[action$='/decline'] button")
        page.wait_for_url(f"{url}/portal")
        other.click("form[action$='/decline'] button")  # the stale tab declines again
        other.wait_for_selector("[data-decided]")
        said = other.locator("main").inner_text()
        assert "already decided" not in said and "이미 결정했습니다" in said, said
        assert errors == []
    finally:
        context.close()


def test_a_purpose_of_long_unbroken_text_does_not_push_the_request_sideways(browser, portal_service):
    """A purpose holding a long link (or any long run without spaces) widened the request page to
    1,165 px on a 360 px phone (1,513 px on a laptop): the sign and decline buttons slid off to
    the side, and at 200 % zoom the page was 2,331 px wide."""
    url = portal_service["url"]
    portal, context, page = _holder_signed_in(browser, portal_service, PHONE, "ko")
    try:
        asked = _music_video_request(
            portal,
            purpose="봄 컴백 🌸 Spring comeback, storyboard https://example.org/" + "x" * 140 + " 끝",
        )
        page.goto(f"{url}/portal/requests/{asked.request_id}")
        assert scroll_width(page) <= PHONE["width"]
        page.screenshot(path=str(shots_folder("360", "ko") / "i-long-purpose.png"), full_page=True)
        page.evaluate("document.documentElement.style.zoom = '200%'")
        assert scroll_width(page) <= PHONE["width"]  # 200 %: the org name in the heading wraps too
        page.set_viewport_size(LAPTOP)
        page.goto(f"{url}/lang/en?next=/portal/requests/{asked.request_id}")
        assert scroll_width(page) <= LAPTOP["width"]
    finally:
        context.close()


def test_the_sign_in_page_says_what_to_do_when_the_passkey_is_lost(browser, portal_service):
    """A parent whose phone was lost or reset found only "Sign in with passkey": nothing said that
    a recovery passkey signs in, nor what losing every passkey means (the agency can send a
    recovery link after checking who they are; what was signed stays in force until its end;
    consent.md)."""
    url = portal_service["url"]
    for language, words in (
        ("ko", ("복구용 패스키", "기획사", "복구 링크")),
        ("en", ("recovery passkey", "agency", "recovery link")),
    ):
        context = browser.new_context(viewport=PHONE, locale="en-GB")
        page = context.new_page()
        page.goto(f"{url}/lang/{language}?next=/portal")
        lost = page.locator("[data-lost-passkey]")
        assert lost.count() == 1, "the sign-in page says nothing about a lost passkey"
        said = lost.inner_text()
        assert all(word in said for word in words), said
        assert scroll_width(page) <= PHONE["width"]
        page.screenshot(path=str(shots_folder("360", language) / "a-signin-lost.png"), full_page=True)
        context.close()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_revoked_note_and_the_recovery_page_have_no_axe_violations(browser, portal_service, axe_source, language):
    """WCAG 2.1 AA (axe-core, as the public page's check) on what the portal added: a revoked
    grant's note of what stops and what was made, and the page a recovery link opens."""
    from likeness.consent.registry import RecoveryAttestation

    url, workspace = portal_service["url"], portal_service["workspace"]
    portal, context, page = _holder_signed_in(browser, portal_service, PHONE, language)
    errors = collect_errors(page, [], console=False)
    try:
        asked = _music_video_request(portal)
        page.goto(f"{url}/portal/requests/{asked.request_id}")
        page.click("[data-passkey-sign]")
        page.wait_for_url(f"{url}/portal/grants/*")
        _a_render_under(workspace, page.url.rsplit("/", 1)[1], "first.png")
        page.reload()
        page.click("[data-passkey-revoke]")
        page.wait_for_selector("[data-revoked-note]")
        assert axe_violations(page, axe_source) == [], "revoked note"

        checked = RecoveryAttestation("identity checked against passport", "J. Park, rights team", "in_person", None)
        _, token = portal.invite_to_recover(
            "sora-holder", "studio", created_by="legal", attestation=checked, passkeys_lost=True
        )
        fresh = browser.new_context(viewport=PHONE, locale="ko-KR" if language == "ko" else "en-GB")
        recovery = fresh.new_page()
        recovery.goto(f"{url}/lang/{language}?next=/portal/invite/{token}")
        recovery.wait_for_selector("[data-recovery-link]")
        assert axe_violations(recovery, axe_source) == [], "recovery page"
        recovery.screenshot(path=str(shots_folder("360", language) / "r-recovery-link.png"), full_page=True)
        fresh.close()
        assert errors == []
    finally:
        context.close()
