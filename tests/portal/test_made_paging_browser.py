"""``/portal/made`` with a page number that names no page, in a browser: the signed-in holder
lands on the list's first page in their language (a small phone in Korean, a laptop in
English), never a JSON 422."""

from __future__ import annotations

import pytest

from tests.browser import collect_errors, scroll_width

from .conftest import shots_folder
from .test_portal_plain_words_browser import LAPTOP, PHONE, _holder_signed_in


@pytest.mark.parametrize("size, language", [(PHONE, "ko"), (LAPTOP, "en")])
def test_a_page_number_that_is_no_page_shows_the_first_page(browser, portal_service, size, language):
    url = portal_service["url"]
    _portal, context, page = _holder_signed_in(browser, portal_service, size, language)
    errors = collect_errors(page, [])
    try:
        heading = "내 얼굴로 만들어진 모든 것" if language == "ko" else "Everything made with your face"
        for asked in ("abc", "-1", "0", str(10**30)):
            page.goto(f"{url}/portal/made?page={asked}")
            assert page.url == f"{url}/portal/made"
            assert heading in page.locator("h1").inner_text()
        name = "360" if size is PHONE else "laptop"
        page.screenshot(path=str(shots_folder(name, language) / "portal-made-no-such-page.png"), full_page=True)
        assert scroll_width(page) <= size["width"]
        assert errors == []
    finally:
        context.close()
