"""WCAG 2.1 AA on the public page: axe-core (the npm package, pinned in .ci/node/package.json
and installed there by .ci/run) run by Playwright in Debian's Chromium, at both viewports, in
both languages, before and after a verdict (card, open details and the report form). Any
violation fails. Without axe-core the test is skipped, except where LIKENESS_REQUIRE_BROWSER=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import VIEWPORTS

from .public_media import allow_many_checks, verdict_media
from .test_public_browser import check, open_page

AXE = Path(__file__).resolve().parents[2] / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        if os.environ.get("LIKENESS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LIKENESS_REQUIRE_BROWSER=1 but {AXE} is missing (npm ci --prefix .ci/node)")
        pytest.skip("axe-core is not installed (npm ci --prefix .ci/node)")
    return AXE.read_text("utf-8")


def violations(page, axe_source: str) -> list[str]:
    """axe's WCAG 2.1 A/AA violations on the page as it is now, one line per node. The script
    is evaluated through the DevTools protocol, which the page's CSP does not govern."""
    page.evaluate(axe_source)
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}}).then(r => r.violations.map("
        "v => v.nodes.map(n => `${v.id} (${v.impact}): ${n.target.join(' ')}: ${n.failureSummary}`)).flat())",
        WCAG_AA,
    )
    return list(found)


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_public_page_has_no_axe_violations(browser, live_service, service_world, tmp_path, axe_source, size, language):
    media = verdict_media(service_world.consent, tmp_path / "media")
    allow_many_checks(service_world.app)
    context, page, _errors = open_page(browser, live_service, size, language)
    try:
        assert violations(page, axe_source) == []
        for name in ("labelled", "unlabelled", "corrupt"):
            check(page, media[name])
            if page.locator("[data-result] details").count():
                page.click("[data-result] details summary")
            assert violations(page, axe_source) == [], name
        # a link to the result, and the shared result's own page
        page.click("[data-result] [data-share]")
        link = page.wait_for_selector("[data-result] [data-link]", timeout=20_000)
        assert violations(page, axe_source) == [], "link made"
        page.goto(link.get_attribute("href"))
        page.wait_for_selector("[data-result] .verdict-card", timeout=20_000)
        assert violations(page, axe_source) == [], "shared result"
        # a problem answer (not a picture at all)
        check(page, {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"plain text\n" * 8})
        assert violations(page, axe_source) == []
    finally:
        context.close()
