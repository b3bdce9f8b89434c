"""WCAG 2.1 AA on the public page: axe-core (the npm package, pinned in .ci/node/package.json
and installed there by .ci/run) run by Playwright in Debian's Chromium, at both viewports, in
both languages, before and after a verdict (card, open details and the report form). Any
violation fails. Without axe-core the test is skipped, except where LIKENESS_REQUIRE_BROWSER=1
(tests/browser.py's ``axe_source``; the portal's pages use the same, in tests/portal)."""

from __future__ import annotations

import pytest

from tests.browser import VIEWPORTS, axe_violations

from .public_media import allow_many_checks, verdict_media
from .test_public_browser import check, open_page

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")]


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_public_page_has_no_axe_violations(browser, live_service, service_world, tmp_path, axe_source, size, language):
    media = verdict_media(service_world.consent, tmp_path / "media")
    allow_many_checks(service_world.app)
    context, page, _errors = open_page(browser, live_service, size, language)
    try:
        assert axe_violations(page, axe_source) == []
        for name in ("labelled", "unlabelled", "corrupt"):
            check(page, media[name])
            if page.locator("[data-result] details").count():
                page.click("[data-result] details summary")
            assert axe_violations(page, axe_source) == [], name
        # a link to the result, and the shared result's own page
        page.click("[data-result] [data-share]")
        link = page.wait_for_selector("[data-result] [data-link]", timeout=20_000)
        assert axe_violations(page, axe_source) == [], "link made"
        page.goto(link.get_attribute("href"))
        page.wait_for_selector("[data-result] .verdict-card", timeout=20_000)
        assert axe_violations(page, axe_source) == [], "shared result"
        # a problem answer (not a picture at all)
        check(page, {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"plain text\n" * 8})
        assert axe_violations(page, axe_source) == []
    finally:
        context.close()


def _answer(verdict: str, *, media_type: str, label: bool) -> dict:
    """A likeness.verify/1.1 answer with nothing of ours in it and one face analysed."""
    face = {"face_id": 1, "bbox": [40.0, 40.0, 200.0, 220.0], "match": None, "best_timestamp_s": 0.0}
    return {
        "schema": "likeness.verify/1.1",
        "sha256": "1" * 64,
        "verdict": verdict,
        "media_type": media_type,
        "c2pa": {"present": False},
        "watermark": {"found": False},
        "visible_label": {"present": label},
        "faces": {"faces": [face], "frames_analysed": 1},
    }


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_the_label_only_card_and_the_frames_note_have_no_axe_violations(
    browser, live_service, tmp_path, axe_source, size, language
):
    """Added after the page's check above was written: the card for our label drawn with nothing
    of ours behind it, and the note where the browser cannot play the clip. The page draws both
    from the answer, which the route gives here."""
    import json

    from likeness.media import write_image
    from likeness.media.synthetic import astronaut

    photo = write_image(tmp_path / "painted.jpg", astronaut(), quality=90)
    context, page, errors = open_page(browser, live_service, size, language)

    def answer(body: dict):
        return lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    try:
        page.route(
            "**/api/v1/public/verify", answer(_answer("enrolled-artist-unlabelled", media_type="image", label=True))
        )
        assert check(page, photo) == "enrolled-artist-unlabelled"
        assert page.locator("[data-result] [data-label-only]").count() == 1
        page.click("[data-result] details summary")
        page.wait_for_selector("[data-frames] canvas", timeout=20_000)
        assert axe_violations(page, axe_source) == [], "label-only card"
        page.unroute("**/api/v1/public/verify")

        page.route("**/api/v1/public/verify", answer(_answer("no-enrolled-artist", media_type="video", label=False)))
        clip = {"name": "clip.avi", "mimeType": "video/x-msvideo", "buffer": b"RIFF\x00\x00\x00\x00AVI " + bytes(64)}
        assert check(page, clip) == "no-enrolled-artist"
        page.click("[data-result] details summary")
        page.wait_for_selector("[data-frames-note]", timeout=20_000)
        assert axe_violations(page, axe_source) == [], "frames note"
        assert errors == []
    finally:
        context.close()
