"""The console's /render form offers ``likeness render --mouth/--eyes`` as two check boxes,
unticked, with their help, at phone and laptop sizes in Korean and English; a ticked box reaches
the render and the job page says what was kept (screenshots under
``test-artifacts/console/render-options/``). ``render_media`` is the recorder of
test_render_options.py: the form and the job are the point here, not the model."""

from __future__ import annotations

import pytest

from tests.browser import ARTIFACTS, LOCALES, VIEWPORTS, new_page, shoot, sign_in

from .conftest import PASSWORD
from .test_render_options import model_id, rendered, target  # noqa: F401  (fixtures)

SHOTS = ARTIFACTS / "render-options"
WORDS = {
    "en": {
        "legend": "Keep from the performer",
        "mouth": "Open mouth (teeth, tongue): for singing and speech",
        "eyes": "Blinks: the performer's closing eyelids show through (video)",
        "kept": "open mouth · blinks",
    },
    "ko": {
        "legend": "연기자에게서 살릴 부분",
        "mouth": "벌린 입 (치아, 혀): 노래와 말하는 장면용",
        "eyes": "눈 깜빡임: 감기는 연기자의 눈꺼풀이 그대로 보입니다 (영상)",
        "kept": "벌린 입 · 눈 깜빡임",
    },
}


def _shot(page, name: str, size: str, language: str) -> None:
    shoot(page, SHOTS / f"{name}-{size}-{language}.png", size, name)


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_render_form_check_boxes_reach_the_render(
    browser,
    live_service,
    model_id,  # noqa: F811
    rendered,  # noqa: F811
    target,  # noqa: F811
    size,
    language,
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    words = WORDS[language]
    context, page, errors = new_page(browser, size, LOCALES[language])
    try:
        page.goto(f"{live_service}/login?next=/render")
        sign_in(page, live_service, "studio", PASSWORD, "/render")
        assert page.locator("html").get_attribute("lang") == language
        options = page.locator("[data-render-options]")
        assert options.locator("legend").inner_text() == words["legend"]
        for name in ("mouth", "eyes"):
            box = page.locator(f"input[type=checkbox][name={name}]")
            assert not box.is_checked()  # the swap draws the whole face unless asked
            assert box.locator("xpath=..").inner_text().strip() == words[name]
        _shot(page, "1-form", size, language)

        page.check("input[name=mouth]")
        page.check("input[name=eyes]")
        page.set_input_files("input[type=file]", str(target))
        _shot(page, "2-form-ticked", size, language)
        page.click("form[data-upload-form] button[type=submit]")
        page.wait_for_url(f"{live_service}/jobs/*")
        page.wait_for_selector("dd[data-render-options]", timeout=60_000)
        assert page.locator("dd[data-render-options]").inner_text() == words["kept"]
        _shot(page, "3-job", size, language)
        assert [(o.refine.mouth, o.refine.eyes) for o in rendered] == [(True, True)]
        assert errors == []
    finally:
        context.close()
