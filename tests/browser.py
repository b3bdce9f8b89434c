"""What the browser tests share: Debian's Chromium driven by Playwright (``executable_path``;
Playwright's own browser download does not work on these machines), the ``browser`` fixture,
pages that collect script errors, the console's sign-in form, and an app served on a loopback
port (Uvicorn in a thread) with a job worker beside it.

Without a Chromium the browser tests are skipped, except where ``LIKENESS_REQUIRE_BROWSER=1``
(.ci/run) makes that a failure. Screenshots go to ``LIKENESS_ARTIFACTS`` (default
``test-artifacts/``) under ``console/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = (
    Path(os.environ.get("LIKENESS_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")) / "console"
)
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}
LOCALES = {"en": "en-GB", "ko": "ko-KR"}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, launched headless for the block. Playwright's sync API marks an event
    loop as running in this thread while it is open, so keep it to the tests that drive it."""
    executable = chromium_path()
    if executable is None:
        if os.environ.get("LIKENESS_REQUIRE_BROWSER") == "1":
            pytest.fail("LIKENESS_REQUIRE_BROWSER=1 but no chromium on this machine (apt-get install chromium)")
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


#: axe-core, pinned in .ci/node/package.json and installed there by .ci/run (npm ci --prefix .ci/node).
AXE = Path(__file__).resolve().parents[1] / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's script; skipped without it, except where LIKENESS_REQUIRE_BROWSER=1."""
    if not AXE.is_file():
        if os.environ.get("LIKENESS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LIKENESS_REQUIRE_BROWSER=1 but {AXE} is missing (npm ci --prefix .ci/node)")
        pytest.skip("axe-core is not installed (npm ci --prefix .ci/node)")
    return AXE.read_text("utf-8")


def axe_violations(page: Any, axe_source: str) -> list[str]:
    """axe's WCAG 2.1 A/AA violations on the page as it is now, one line per node. The script
    is evaluated through the DevTools protocol, which the page's CSP does not govern."""
    page.evaluate(axe_source)
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}}).then(r => r.violations.map("
        "v => v.nodes.map(n => `${v.id} (${v.impact}): ${n.target.join(' ')}: ${n.failureSummary}`)).flat())",
        WCAG_AA,
    )
    return list(found)


def collect_errors(page: Any, errors: list[str], *, console: bool = True) -> list[str]:
    """Append ``page``'s script errors to ``errors``, and with ``console`` its console errors too
    (what the CSP blocked, failed loads)."""
    if console:
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def new_page(browser: Any, size: str, locale: str = "en-GB", *, console: bool = True) -> tuple[Any, Any, list[str]]:
    """A fresh context at one of ``VIEWPORTS`` and its page, with the errors it will collect."""
    context = browser.new_context(viewport=VIEWPORTS[size], locale=locale)
    page = context.new_page()
    return context, page, collect_errors(page, [], console=console)


def sign_in(page: Any, base: str, username: str, password: str, landing: str) -> None:
    """Fill the console's sign-in form (on the page now) and wait to land on ``landing``."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{landing}")


def scroll_width(page: Any) -> int:
    """The page's width as laid out: above the viewport's it scrolls sideways."""
    return int(page.evaluate("document.documentElement.scrollWidth"))


# Resolves once the image has loaded or failed (or after 20 s): a click that navigates returns
# before the page's images arrive, so reading ``complete`` at once raced the load on a busy machine.
_DECODED = """img => new Promise(done => {
  const decoded = () => done(img.naturalWidth > 0);
  if (img.complete) return decoded();
  img.addEventListener("load", decoded, { once: true });
  img.addEventListener("error", decoded, { once: true });
  setTimeout(decoded, 20000);
})"""


def image_shown(image: Any) -> bool:
    """Whether the ``<img>`` locator's picture arrived and decoded (brought into view first, so a
    lazily loaded one is fetched)."""
    image.scroll_into_view_if_needed()
    return bool(image.evaluate(_DECODED))


def shoot(page: Any, path: Path, size: str, note: object = None) -> None:
    """A full-page screenshot at ``path``, of a page that must not scroll sideways at ``size``."""
    page.screenshot(path=str(path), full_page=True)
    assert scroll_width(page) <= VIEWPORTS[size]["width"], note


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(app: Any, port: int) -> Iterator[None]:
    """``app`` served by Uvicorn on 127.0.0.1:``port`` in a thread for the block."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def working(workspace: Any, join_s: float) -> Iterator[None]:
    """The service's job worker on ``workspace`` in a thread for the block; at the end it gets
    ``join_s`` to finish the job in hand."""
    from likeness.service.worker import Worker

    worker = Worker(workspace)
    thread = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 0.2}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(timeout=join_s)
