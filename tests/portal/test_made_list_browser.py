"""The holder's one list of everything made with their face, on a small phone in Korean and a
laptop in English: thumbnails load, watermark ids wrap inside the page, the pager works."""

from __future__ import annotations

import cv2
import pytest

from likeness.media.synthetic import astronaut
from tests.browser import collect_errors, image_shown, scroll_width

from .conftest import shots_folder
from .test_portal_plain_words_browser import LAPTOP, PHONE, _a_render_under, _holder_signed_in, _music_video_request


@pytest.mark.parametrize("size, language", [(PHONE, "ko"), (PHONE, "en"), (LAPTOP, "ko"), (LAPTOP, "en")])
def test_the_holder_reads_everything_made_under_their_grants(browser, portal_service, size, language):
    url, workspace = portal_service["url"], portal_service["workspace"]
    portal, context, page = _holder_signed_in(browser, portal_service, size, language)
    errors = collect_errors(page, [], console=False)
    try:
        request = _music_video_request(
            portal,
            previews=[cv2.imencode(".png", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()],
        )
        page.goto(f"{url}/portal/requests/{request.request_id}")
        page.click("[data-passkey-sign]")
        page.wait_for_url(f"{url}/portal/grants/*")
        grant_id = page.url.rsplit("/", 1)[1]
        _a_render_under(workspace, grant_id, "first.png")
        _a_render_under(workspace, grant_id, "second.jpg")
        workspace.ledger.append("model.trained", {"grant_id": grant_id, "use": "training", "job_id": "m" * 32})
        page.goto(f"{url}/portal")
        page.click("[data-made-link]")
        page.wait_for_url(f"{url}/portal/made")
        assert page.locator("[data-made]").count() == 3
        thumbnails = page.locator("[data-made] img")
        assert thumbnails.count() == 2
        for n in range(2):  # each thumbnail loads (lazily: scrolled to first)
            assert image_shown(thumbnails.nth(n))
        page.evaluate("window.scrollTo(0, 0)")
        heading = page.locator("h1").inner_text()
        assert heading == ("내 얼굴로 만들어진 모든 것" if language == "ko" else "Everything made with your face")
        assert scroll_width(page) <= size["width"]
        name = "360" if size is PHONE else "laptop"
        page.screenshot(path=str(shots_folder(name, language) / "h-made-list.png"), full_page=True)
        assert errors == []
    finally:
        context.close()
