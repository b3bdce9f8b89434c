"""The console's render flow on Debian's Chromium: a studio user signs in, renders a released
performer's photo with the organisation's model, watches the job, and sees before and after
(the after labelled) with the output's hash and report. Screenshots in ``test-artifacts/console/``."""

from __future__ import annotations

import cv2
import pytest

from likeness.media.synthetic import grace_hopper
from likeness.service.accounts import Accounts
from likeness.service.app import create_app
from likeness.service.roles import Role
from tests.browser import (
    ARTIFACTS,
    VIEWPORTS,
    free_port,
    image_shown,
    new_page,
    scroll_width,
    serving,
    sign_in,
    working,
)
from tests.service.conftest import cheap_hasher

PASSWORD = "a long studio password"


@pytest.fixture
def live_render_service(trained_world):
    ws = trained_world.workspace
    accounts = Accounts(ws, hasher=cheap_hasher())
    accounts.add_user("studio", PASSWORD, Role.STUDIO, display_name="Studio user")
    app = create_app(ws.settings, workspace=ws, accounts=accounts)
    port = free_port()
    with serving(app, port), working(ws, join_s=120):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.slow
@pytest.mark.parametrize(("size", "language"), [("laptop", "en"), ("phone", "ko")])
def test_render_in_the_console(browser, live_render_service, tmp_path, size, language):
    shots = ARTIFACTS / f"render-{size}-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "jun on stage.png"
    cv2.imwrite(str(target), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    context, page, errors = new_page(browser, size)
    try:
        page.goto(f"{live_render_service}/lang/{language}?next=/render")
        sign_in(page, live_render_service, "studio", PASSWORD, "/render")
        assert "mina → jun" in page.locator("select[name=model]").inner_text()
        page.select_option("select[name=use]", "music_video")
        page.set_input_files("input[type=file]", str(target))
        page.screenshot(path=str(shots / "1-render-form.png"), full_page=True)
        page.click("form[data-upload-form] button[type=submit]")
        page.wait_for_url(f"{live_render_service}/jobs/*")
        page.wait_for_selector(".before-after", timeout=180_000)
        for image in page.locator(".before-after img").all():
            assert image_shown(image)
        assert "sha256" in page.locator(".result").inner_text()
        page.screenshot(path=str(shots / "2-render-result.png"), full_page=True)
        assert scroll_width(page) <= VIEWPORTS[size]["width"]
        assert errors == []
    finally:
        context.close()
