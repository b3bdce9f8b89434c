"""Browser flows on Debian's Chromium (Playwright, ``executable_path``): sign in → verify an
upload → watch it finish → the result → the ledger, at phone and laptop sizes, in English and
Korean. Screenshots go to ``LIKENESS_ARTIFACTS`` (default ``test-artifacts/``) under ``console/``.

Without a Chromium the tests are skipped, except where ``LIKENESS_REQUIRE_BROWSER=1`` (.ci/run).
The ``browser`` fixture and the helpers are tests/browser.py's; ``live_service`` is tests/service/conftest.py's.
"""

from __future__ import annotations

import re

import cv2
import pytest

from tests.browser import ARTIFACTS, VIEWPORTS, image_shown, new_page, scroll_width, sign_in

from .conftest import PASSWORD


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_sign_in_verify_result_and_ledger(browser, live_service, astronaut, tmp_path, size, language):
    shots = ARTIFACTS / f"{size}-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    upload = tmp_path / "stage photo.png"
    cv2.imwrite(str(upload), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    context, page, console_errors = new_page(browser, size)
    try:
        page.goto(f"{live_service}/console")
        assert page.url.endswith("/login?next=/console")
        if language == "ko":
            page.click("text=한국어")
            assert page.locator("html").get_attribute("lang") == "ko"
            assert page.locator("h1").inner_text() == "로그인"
        page.screenshot(path=str(shots / "1-login.png"), full_page=True)
        sign_in(page, live_service, "legal", PASSWORD, "/console")
        assert page.locator("h1").inner_text() == ("대시보드" if language == "ko" else "Dashboard")
        page.screenshot(path=str(shots / "2-dashboard.png"), full_page=True)

        page.click("a[href='/verify'] >> nth=0")
        page.set_input_files("input[type=file]", str(upload))
        page.screenshot(path=str(shots / "3-verify-form.png"), full_page=True)
        page.click("form[data-upload-form] button[type=submit]")
        page.wait_for_url(f"{live_service}/jobs/*")
        page.screenshot(path=str(shots / "4a-job-progress.png"), full_page=True)  # whatever state it is in now
        page.wait_for_selector(".verdict.big", timeout=120_000)
        verdict = page.locator(".verdict.big").inner_text()
        assert verdict in {"no-enrolled-artist", "enrolled-artist-unlabelled"}
        headline = page.locator("[data-verdict-headline]").inner_text()  # the public card's, translated
        assert bool(re.search("[가-힣]", headline)) == (language == "ko"), headline
        assert "mina" in page.locator(".facts").inner_text()
        assert image_shown(page.locator("img.thumb"))
        assert page.locator(".state").first.inner_text() == ("완료" if language == "ko" else "succeeded")
        page.screenshot(path=str(shots / "4-result.png"), full_page=True)

        report = context.request.get(
            page.locator("a[href$='/evidence/html']").get_attribute("href").replace("/api", f"{live_service}/api", 1)
        )
        assert report.status == 200

        page.click("nav >> a[href='/consent']")
        page.wait_for_url(f"{live_service}/consent")  # a click does not wait for the next page
        assert page.locator("td", has_text="mina").count() >= 1
        page.screenshot(path=str(shots / "5a-consent.png"), full_page=True)
        assert scroll_width(page) <= VIEWPORTS[size]["width"]

        page.click("nav >> a[href='/ledger']")
        page.wait_for_url(f"{live_service}/ledger")
        assert page.locator("[data-chain=ok]").is_visible()
        assert page.locator("td code", has_text="verification.completed").count() >= 1
        assert page.locator("td code", has_text="service.login").count() >= 1
        page.screenshot(path=str(shots / "5-ledger.png"), full_page=True)
        # every page fits the viewport's width (no sideways scrolling on a phone)
        assert scroll_width(page) <= VIEWPORTS[size]["width"]
        # NanumGothic is served by the service (font-src 'self') and covers Hangul
        assert page.evaluate("document.fonts.load('16px NanumGothic', '한국어').then(faces => faces.length)") > 0
        assert console_errors == []  # nothing blocked by the CSP, no script errors
    finally:
        context.close()
