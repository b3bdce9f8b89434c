"""The public page's cards for a manipulation flagged by an artist's registered detector, in
Debian's Chromium at a phone's and a laptop's size, in Korean and English. Screenshots go to
``test-artifacts/public/``. The detector is the hand-built one of ``tests/detector/handmade``,
evaluated for mina on generated media (it passes its gates there) and registered for her."""

from __future__ import annotations

import pytest

from likeness.detector.registered import register_detector
from likeness.media import write_image
from likeness.media.synthetic import astronaut
from tests.browser import VIEWPORTS, scroll_width
from tests.detector.handmade import evaluated_for_mina, face_box, gate_media, tint_face, write_detector

from .test_public_browser import SHOTS, check, open_page, page_font_characters

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")]

HEADLINE = {
    "en": "An artist this agency represents appears, and the face looks manipulated",
    "ko": "이 소속사의 아티스트가 나오며 얼굴이 조작된 것으로 보입니다",
}


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    root = tmp_path_factory.mktemp("detector")
    media = gate_media(root / "media")
    return write_detector(root / "chroma", "chroma", media.calibration), media


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_suspected_manipulation_card(browser, live_service, service_world, chroma, tmp_path, size, language):
    evaluated = evaluated_for_mina(service_world.workspace, *chroma, tmp_path / "chroma")
    register_detector(service_world.workspace, evaluated, "mina")
    rgb = astronaut()
    fake = write_image(tmp_path / "fan_edit.png", tint_face(rgb, face_box(rgb), amount=30))
    shots = SHOTS / f"{size}-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    context, page, errors = open_page(browser, live_service, size, language)
    font = page_font_characters(page, live_service)
    try:
        assert check(page, fake) == "enrolled-artist-suspected-manipulation"
        card = page.locator("[data-result] .verdict-card")
        assert card.locator("h2").inner_text() == HEADLINE[language]
        assert "mina" not in card.inner_text().lower()  # mina's rights holder did not allow naming
        assert "bad" in (card.get_attribute("class") or "")
        page.screenshot(path=str(shots / "suspected-manipulation.png"), full_page=True)
        shown = page.evaluate("document.body.innerText").replace(fake.name, "")
        assert sorted({ch for ch in shown if not ch.isspace()} - font) == []
        assert scroll_width(page) <= VIEWPORTS[size]["width"]
        assert errors == []
    finally:
        context.close()
