"""The case page of a file reported twice, in Chromium at phone and laptop sizes, English and
Korean: both reporters' words are shown and the page does not overflow. Screenshots under
``test-artifacts/console/<size>-<language>/case-reported-twice.png``."""

from __future__ import annotations

import pytest

from likeness.media import write_image
from likeness.media.synthetic import astronaut
from tests.browser import ARTIFACTS, VIEWPORTS, scroll_width, sign_in

from .conftest import PASSWORD

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_a_case_reported_twice_shows_both_reports(browser, live_service, service_world, tmp_path, size, language):
    photo = write_image(tmp_path / "fake.jpg", astronaut(), quality=90)
    client = service_world.client()
    sent = [
        client.post(
            "/api/v1/public/reports",
            data={"contact": contact, "note": note},
            files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
        )
        for contact, note in (("fan@example.org", "Seen on a fan account"), ("", "다른 사이트에서도 봤어요"))
    ]
    assert [r.status_code for r in sent] == [201, 201]
    case_id = sent[0].json()["case_id"]
    assert sent[1].json()["case_id"] == case_id
    context = browser.new_context(viewport=VIEWPORTS[size], locale="en-GB")
    page = context.new_page()
    try:
        page.goto(f"{live_service}/login")
        if language == "ko":
            page.click("text=한국어")
        sign_in(page, live_service, "legal", PASSWORD, "/console")
        page.goto(f"{live_service}/cases/{case_id}")
        further = page.locator("[data-further-report]")
        assert further.count() == 1 and "다른 사이트에서도 봤어요" in further.inner_text()
        assert ("추가 신고" if language == "ko" else "Further report") in page.content()
        assert "fan@example.org" in page.content()
        assert scroll_width(page) <= VIEWPORTS[size]["width"]
        shots = ARTIFACTS / f"{size}-{language}"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "case-reported-twice.png"), full_page=True)
    finally:
        context.close()
