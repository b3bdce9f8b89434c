"""The console's render flow on Debian's Chromium: a studio user signs in, renders a released
performer's photo with the organisation's model, watches the job, and sees before and after
(the after labelled) with the output's hash and report. Screenshots in ``test-artifacts/console/``."""

from __future__ import annotations

import socket
import threading
import time

import cv2
import pytest
from argon2 import PasswordHasher

from likeness.media.synthetic import grace_hopper
from likeness.service.accounts import Accounts
from likeness.service.app import create_app
from likeness.service.roles import Role
from likeness.service.worker import Worker
from tests.service.test_console_browser import ARTIFACTS, VIEWPORTS, browser  # noqa: F401 (the fixture)

PASSWORD = "a long studio password"


@pytest.fixture
def live_render_service(trained_world):
    import uvicorn

    ws = trained_world.workspace
    accounts = Accounts(ws, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts.add_user("studio", PASSWORD, Role.STUDIO, display_name="Studio user")
    app = create_app(ws.settings, workspace=ws, accounts=accounts)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    worker = Worker(ws)
    worker_thread = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 0.2}, daemon=True)
    worker_thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    worker.stop()
    server.should_exit = True
    thread.join(timeout=10)
    worker_thread.join(timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize(("size", "language"), [("laptop", "en"), ("phone", "ko")])
def test_render_in_the_console(browser, live_render_service, tmp_path, size, language):  # noqa: F811
    shots = ARTIFACTS / f"render-{size}-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "jun on stage.png"
    cv2.imwrite(str(target), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    context = browser.new_context(viewport=VIEWPORTS[size], locale="en-GB")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{live_render_service}/lang/{language}?next=/render")
        page.fill("input[name=username]", "studio")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_render_service}/render")
        assert "mina → jun" in page.locator("select[name=model]").inner_text()
        page.select_option("select[name=use]", "music_video")
        page.set_input_files("input[type=file]", str(target))
        page.screenshot(path=str(shots / "1-render-form.png"), full_page=True)
        page.click("form[data-upload-form] button[type=submit]")
        page.wait_for_url(f"{live_render_service}/jobs/*")
        page.wait_for_selector(".before-after", timeout=180_000)
        for image in page.locator(".before-after img").all():
            assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        assert "sha256" in page.locator(".result").inner_text()
        page.screenshot(path=str(shots / "2-render-result.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS[size]["width"]
        assert errors == []
    finally:
        context.close()
