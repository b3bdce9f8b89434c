"""Browser flows on Debian's Chromium (Playwright, ``executable_path``): sign in → verify an
upload → watch it finish → the result → the ledger, at phone and laptop sizes, in English and
Korean. Screenshots go to ``LIKENESS_ARTIFACTS`` (default ``test-artifacts/``) under ``console/``.

Without a Chromium the tests are skipped, except where ``LIKENESS_REQUIRE_BROWSER=1`` (.ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import cv2
import pytest

from likeness.service.worker import Worker

from .conftest import PASSWORD

ARTIFACTS = (
    Path(os.environ.get("LIKENESS_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")) / "console"
)
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        if os.environ.get("LIKENESS_REQUIRE_BROWSER") == "1":
            pytest.fail("LIKENESS_REQUIRE_BROWSER=1 but no chromium on this machine (apt-get install chromium)")
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def live_service(service_world, tmp_path):
    """The app on a loopback port (Uvicorn in a thread) with a worker thread beside it."""
    import uvicorn

    from tests.conftest import ConsentWorld

    ConsentWorld(service_world.workspace, tmp_path).enroll_faces()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(service_world.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    worker = Worker(service_world.workspace)
    worker_thread = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 0.2}, daemon=True)
    worker_thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    worker.stop()
    server.should_exit = True
    thread.join(timeout=10)
    worker_thread.join(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_sign_in_verify_result_and_ledger(browser, live_service, astronaut, tmp_path, size, language):
    shots = ARTIFACTS / f"{size}-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    upload = tmp_path / "stage photo.png"
    cv2.imwrite(str(upload), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    context = browser.new_context(viewport=VIEWPORTS[size], locale="en-GB")
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    try:
        page.goto(f"{live_service}/console")
        assert page.url.endswith("/login?next=/console")
        if language == "ko":
            page.click("text=한국어")
            assert page.locator("html").get_attribute("lang") == "ko"
            assert page.locator("h1").inner_text() == "로그인"
        page.screenshot(path=str(shots / "1-login.png"), full_page=True)
        page.fill("input[name=username]", "legal")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_service}/console")
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
        assert page.locator("img.thumb").evaluate("img => img.naturalWidth") > 0
        assert page.locator(".state").first.inner_text() == ("완료" if language == "ko" else "succeeded")
        page.screenshot(path=str(shots / "4-result.png"), full_page=True)

        report = context.request.get(
            page.locator("a[href$='/evidence/html']").get_attribute("href").replace("/api", f"{live_service}/api", 1)
        )
        assert report.status == 200

        page.click("nav >> a[href='/consent']")
        assert page.locator("td", has_text="mina").count() >= 1
        page.screenshot(path=str(shots / "5a-consent.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS[size]["width"]

        page.click("nav >> a[href='/ledger']")
        assert page.locator("[data-chain=ok]").is_visible()
        assert page.locator("td code", has_text="verification.completed").count() >= 1
        assert page.locator("td code", has_text="service.login").count() >= 1
        page.screenshot(path=str(shots / "5-ledger.png"), full_page=True)
        # every page fits the viewport's width (no sideways scrolling on a phone)
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS[size]["width"]
        # NanumGothic is served by the service (font-src 'self') and covers Hangul
        assert page.evaluate("document.fonts.load('16px NanumGothic', '한국어').then(faces => faces.length)") > 0
        assert console_errors == []  # nothing blocked by the CSP, no script errors
    finally:
        context.close()
