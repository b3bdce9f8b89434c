"""The console's 409 page in a real browser (Debian's Chromium), phone and laptop, Korean and
English: the sentence is in the page's language, the English detail wraps on a smaller line
without a sideways scroll, and its ``--org`` is never split after its hyphens. Screenshots:
``test-artifacts/console/errors/409-{size}-{language}.png``."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser import (
    ARTIFACTS,
    LOCALES,
    VIEWPORTS,
    axe_violations,
    free_port,
    new_page,
    serving,
    shoot,
    sign_in,
)

from .conftest import PASSWORD
from .test_error_pages import ENROLLING_ORG_UNNAMED

#: The flag's line boxes (a sorted set) at each width of the detail's line from 120 to 360 px.
NARROWED_LINE_BOXES = """(line, flag) => {
  const counts = new Set();
  for (let width = 120; width <= 360; width += 1) {
    line.style.width = `${width}px`;
    counts.add(flag.getClientRects().length);
  }
  line.style.width = "";
  return [...counts].sort();
}"""


@pytest.fixture
def enrolling_page(service_world) -> Iterator[str]:
    """The served app with ``/console/test-enrol``, which enrols a subject naming no organisation
    among several (the 409 ``enrolling-org-unnamed``); its address."""
    app, registry = service_world.app, service_world.workspace.registry
    registry.add_org("byeol", "Byeol Entertainment")
    holder = registry.get_subject("jun").holder_slug

    @app.get("/console/test-enrol")
    def enrol() -> None:
        registry.add_subject("sora", "Sora", holder=holder)

    port = free_port()
    with serving(app, port):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_the_409_page_says_why_in_the_readers_language_and_fits(browser, axe_source, enrolling_page, size, language):
    shots = ARTIFACTS / "errors"
    shots.mkdir(parents=True, exist_ok=True)
    context, page, errors = new_page(browser, size, LOCALES[language])
    try:
        page.goto(f"{enrolling_page}/login?next=/console")
        sign_in(page, enrolling_page, "legal", PASSWORD, "/console")
        response = page.goto(f"{enrolling_page}/console/test-enrol")
        assert response is not None and response.status == 409
        assert page.locator("h1").inner_text().startswith("409 · ")
        sentence = page.locator("[data-problem-sentence]").inner_text()
        assert sentence == ENROLLING_ORG_UNNAMED[language]
        assert bool(re.search("[가-힣]", sentence)) == (language == "ko")
        detail = page.locator(".problem-detail code")
        assert detail.get_attribute("lang") == "en"
        assert "this workspace has several organisations (byeol, studio)" in detail.inner_text()
        flag = page.locator(".problem-detail .flag")
        assert flag.inner_text() == "--org"
        # one line box: the flag is not split after "--", however the sentence wraps around it
        # (narrowed a pixel at a time, the detail puts its line ends at every place near the flag)
        assert flag.evaluate("node => node.getClientRects().length") == 1
        assert page.locator(".problem-detail").evaluate(NARROWED_LINE_BOXES, flag.element_handle()) == [1]
        lines = detail.evaluate("node => Math.round(node.getBoundingClientRect().height / 16)")
        assert lines >= 2 or size == "laptop"  # it does wrap on a phone
        font = page.locator(".problem-detail").evaluate("node => parseFloat(getComputedStyle(node).fontSize)")
        assert font < page.locator("[data-problem-sentence]").evaluate(
            "node => parseFloat(getComputedStyle(node).fontSize)"
        )
        shoot(page, shots / f"409-{size}-{language}.png", size, language)
        assert axe_violations(page, axe_source) == []  # the smaller line keeps its contrast
        # nothing blocked, no script error (the console logs the page's own 409 as a failed load)
        assert [e for e in errors if "status of 409" not in e] == []
    finally:
        context.close()
