"""The rights-holder portal in Debian's Chromium with a virtual authenticator (CDP WebAuthn):
invite → register a passkey → the agency asks for a grant → the holder signs → the agency trains
and renders → the holder sees the render → the holder revokes → the next render is refused with
``revoked``. Screenshots of each portal page at 390x844 and 1280x800, in Korean and English,
under ``test-artifacts/portal/``.

The server runs on ``localhost`` (a secure context for WebAuthn) and the passkeys' origin is
``http://localhost:PORT``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import pytest

from likeness.consent.holder_portal import HolderPortal
from likeness.errors import ConsentError
from likeness.media.synthetic import astronaut, grace_hopper
from likeness.service.roles import Role
from tests.browser import VIEWPORTS, image_shown, new_page, sign_in
from tests.render.conftest import swap_config, train_and_export

from .conftest import PASSWORD, ask_for_a_birthday_message, portal_shot, shots_folder, with_authenticator

#: The last day of the requested grant (the form's date; the grant runs to the end of it).
LAST_DAY = (datetime.now(UTC) + timedelta(days=200)).date()


def _words(day: date) -> str:
    return f"{day.day} {day.strftime('%B')} {day.year}"


def _train_and_render(workspace, tmp: Path, name: str) -> Path:
    """What the agency does with the grant: train a tiny model of sora for jun, export it, and
    render a still of jun into the workspace's outputs (where the portal finds its thumbnail)."""
    from likeness.render import render_media

    model_dir = tmp / "model"
    if not (model_dir / "model.onnx").exists() and not any(model_dir.glob("*.onnx")):
        training = workspace.policy.authorize("sora", "training", "studio")
        release = workspace.policy.authorize_release("jun", "studio")
        train_and_export(workspace, training, release, model_dir, swap_config(8))
    still = tmp / "jun on stage.png"
    cv2.imwrite(str(still), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    out = Path(workspace.outputs_dir) / "portal-e2e" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    render_media(workspace, model_dir, still, out, use="music_video", org="studio")
    return out


@pytest.mark.slow
def test_invite_sign_render_see_revoke_refused(browser, portal_service):
    url, workspace, tokens, tmp = (portal_service[k] for k in ("url", "workspace", "tokens", "tmp"))
    holder_context, page, errors = new_page(browser, "phone")
    with_authenticator(holder_context, page)
    agency = browser.new_context(viewport=VIEWPORTS["laptop"], locale="en-GB")
    try:
        # 1. the agency invites the rights holder (API, as admin)
        made = agency.request.post(
            f"{url}/api/v1/portal/invitations",
            headers={"Authorization": f"Bearer {tokens[Role.ADMIN]}"},
            data={
                "holder": "sora-holder",
                "holder_name": "Lee Sora",
                "holder_kind": "artist",
                "subject": "sora",
                "subject_name": "Sora",
            },
        )
        assert made.status == 201, made.text()
        invitation = made.json()["url"]
        portrait = tmp / "sora.png"
        cv2.imwrite(str(portrait), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
        from likeness.faceset import enroll_reference_photos

        assert enroll_reference_photos(workspace, "sora", [portrait]).added == 1

        # 2. the holder registers a passkey from the link
        page.goto(invitation)
        assert "Haneul Entertainment" in page.locator("main").inner_text()
        portal_shot(page, "1-invitation", "phone", "en")
        page.click("[data-passkey-register]")
        page.wait_for_url(f"{url}/portal")
        assert "Lee Sora" in page.locator(".holder-bar").inner_text()
        # signing out and back in takes the passkey (discoverable, user verified), no password
        page.click(".holder-bar button[type=submit]")
        page.wait_for_selector("[data-passkey-signin]")
        page.click("[data-passkey-signin]")
        page.wait_for_selector(".holder-bar")
        assert "Lee Sora" in page.locator(".holder-bar").inner_text()

        # 3. the agency asks for a grant (console page, as legal, with a preview still)
        console = agency.new_page()
        console.goto(f"{url}/login?next=/consent/holders")
        sign_in(console, url, "legal", PASSWORD, "/consent/holders")
        console.fill("form[action='/consent/holders/request'] input[name=subject]", "sora")
        for use in ("music_video", "training"):
            console.check(f"input[name=uses][value={use}]")
        console.fill("input[name=valid_until]", LAST_DAY.isoformat())
        console.fill("input[name=max_renders]", "20")
        console.fill("form[action='/consent/holders/request'] input[name=purpose]", "Spring comeback music video")
        preview = tmp / "preview.png"
        cv2.imwrite(str(preview), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
        console.set_input_files("input[name=previews]", str(preview))
        console.click("form[action='/consent/holders/request'] button[type=submit]")
        console.wait_for_selector("[data-drafted]")
        console.screenshot(path=str(shots_folder("laptop", "en") / "0-agency-holders.png"), full_page=True)

        # 4. the holder reads it in plain words and signs with the passkey
        page.goto(f"{url}/portal")
        portal_shot(page, "2-home-pending", "phone", "en")
        page.click("text=Read and decide")
        ask = page.locator("[data-ask]").inner_text()
        assert (
            ask
            == f"Haneul Entertainment asks to use your face in music videos until {_words(LAST_DAY)}, at most 20 videos."
        )
        assert "Every video will carry a visible AI label." in page.locator("main").inner_text()
        assert image_shown(page.locator(".previews img"))
        portal_shot(page, "3-request", "phone", "en")
        page.click("[data-passkey-sign]")
        page.wait_for_url(f"{url}/portal/grants/*")
        grant_id = page.url.rsplit("/", 1)[1]
        assert page.locator("[data-grant-state]").get_attribute("data-grant-state") == "active"

        # 5. the agency trains and renders under the passkey-signed grant
        _train_and_render(workspace, tmp, "first")

        # 6. the holder sees the render, its thumbnail and its watermark payload
        page.reload()
        assert page.locator("[data-render]").count() == 1
        assert image_shown(page.locator("[data-render] img"))
        (completed,) = workspace.ledger.find("render.completed", grant_id=grant_id)
        assert page.locator("code.wm").inner_text() == completed.payload["watermark_payload"]
        assert page.locator(".uses [data-event='model.trained']").count() >= 1
        assert "A model of your face was trained" in page.locator(".uses").inner_text()
        portal_shot(page, "4-grant-with-render", "phone", "en")

        # 7. the holder revokes, confirmed with the passkey
        page.fill("input[name=reason]", "The comeback was cancelled")
        page.click("[data-passkey-revoke]")
        page.wait_for_selector("[data-grant-state=revoked]")
        portal_shot(page, "5-grant-revoked", "phone", "en")

        # 8. the next render is refused: revoked
        with pytest.raises(ConsentError) as refused:
            _train_and_render(workspace, tmp, "second")
        assert refused.value.reason == "revoked"
        page.reload()  # the holder sees the refused attempt, live from the ledger
        assert page.locator(".uses [data-event='authorization.refused']").count() >= 1
        assert "An attempt was refused" in page.locator(".uses").inner_text()
        assert "(revoked)" in page.locator(".uses").inner_text()
        portal_shot(page, "6-refused-attempt", "phone", "en")
        assert errors == []

        # screenshots of every portal page in both languages and sizes
        workspace_portal = HolderPortal(workspace)
        ask_for_a_birthday_message(workspace_portal, days=400, max_renders=5, previews=[preview.read_bytes()])
        pending = workspace_portal.requests_for_holder(workspace_portal.registry.get_holder("sora-holder").id)[0]
        holder_cookies = holder_context.cookies()
        workspace_portal.add_passkey_holder("mina-holder", "Kim Mina", kind="guardian")
        _, fresh_token = workspace_portal.invite("mina-holder", "studio", created_by="admin")
        for size in VIEWPORTS:
            for language in ("en", "ko"):
                context = browser.new_context(viewport=VIEWPORTS[size], locale="en-GB")
                view = context.new_page()
                view.goto(f"{url}/lang/{language}?next=/portal")
                portal_shot(view, "a-signin", size, language)
                view.goto(f"{url}/portal/invite/{fresh_token}")
                portal_shot(view, "b-invitation", size, language)
                view.goto(invitation)
                portal_shot(view, "c-invitation-used", size, language)
                context.add_cookies([c for c in holder_cookies if c["name"] == "likeness_holder"])
                view.goto(f"{url}/portal")
                portal_shot(view, "d-home", size, language)
                view.goto(f"{url}/portal/requests/{pending.request.request_id}")
                portal_shot(view, "e-request", size, language)
                view.goto(f"{url}/portal/grants/{grant_id}")
                portal_shot(view, "f-grant", size, language)
                if language == "ko":
                    assert view.locator("html").get_attribute("lang") == "ko"
                    assert "철회" in view.locator("main").inner_text()
                context.close()
    finally:
        holder_context.close()
        agency.close()
