"""The studio's forms in the browser: a reference photo → extract both facesets → train (tiny,
seconds) → export → render, all through the console's forms on a phone in Korean, then every
page of the walk at phone and laptop sizes in Korean and English (screenshots under
``test-artifacts/console/studio/``)."""

from __future__ import annotations

import re

import pytest

from tests.browser import ARTIFACTS, VIEWPORTS, image_shown, shoot, sign_in

from .conftest import PASSWORD
from .test_studio_jobs import TINY_TRAINING, media  # noqa: F401  (fixture)

SHOTS = ARTIFACTS / "studio"
TRAIN_LIVE_OUTPUT = re.compile(r"/outputs/(preview_latest|metrics)\.png(\?at=|$)")
JOB_DONE_MS = 180_000


def _finished(page, next_link: str) -> None:
    """Wait on a job page until the job succeeded and the page offers ``next_link``."""
    page.wait_for_selector(f"{next_link}, .alert.bad", timeout=JOB_DONE_MS)
    assert page.locator(".alert.bad").count() == 0, page.locator(".alert.bad").inner_text()
    assert "succeeded" in (page.locator("[data-job-state]").get_attribute("class") or "")


def _watch(page, errors: list[str]) -> None:
    """Collect script errors, CSP refusals and failed requests, except a training's preview and
    plot, which the job page asks for until they exist (a 404 until the first preview)."""

    def failed(response) -> None:
        if response.status >= 400 and not TRAIN_LIVE_OUTPUT.search(response.url):
            errors.append(f"{response.status} {response.url}")

    page.on(
        "console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load" not in m.text else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", failed)


def _shot(page, name: str, size: str, language: str) -> None:
    shoot(page, SHOTS / f"{name}-{size}-{language}.png", size, name)


@pytest.mark.slow
def test_reference_extract_train_export_render_through_the_forms(browser, live_service, service_world, media):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    context = browser.new_context(viewport=VIEWPORTS["phone"], locale="ko-KR")
    page = context.new_page()
    _watch(page, errors)
    page.goto(f"{live_service}/login?next=/studio")
    sign_in(page, live_service, "studio", PASSWORD, "/studio")
    assert page.locator("h1").inner_text() == "스튜디오"
    assert page.locator("#subjects .consent.ok").count() == 2  # mina's grant, jun's release
    assert page.locator("#subjects img.face").count() == 2  # their reference photos, as pictures

    # 1. a reference photo of mina
    page.select_option("#references select[name=subject]", "mina")
    page.set_input_files("#references input[type=file]", str(media["mina.png"]))
    page.click("#references button[type=submit]")
    page.wait_for_url(f"{live_service}/jobs/*")
    _finished(page, "a[href='/studio#extract']")
    pages = {"1-reference-job": page.url}

    # 2. mina's faceset and jun's (the performer), each from a short clip
    facesets = {}
    for slug in ("mina", "jun"):
        page.goto(f"{live_service}/studio#extract")
        page.select_option("#extract select[name=subject]", slug)
        page.check("#extract input[name=dedup]")
        page.set_input_files("#extract input[type=file]", str(media[f"{slug}.mp4"]))
        page.click("#extract button[type=submit]")
        page.wait_for_url(f"{live_service}/jobs/*")
        side = "source" if slug == "mina" else "target"
        _finished(page, f"a[href^='/studio?{side}=']")
        facesets[slug] = page.url.rsplit("/", 1)[1]
    pages["2-extract-job"] = page.url

    # 3. train: the performer's faceset comes picked from its job page, mina's is the newest source
    page.click("a[href^='/studio?target=']")
    assert page.locator(f"#train input[value='{facesets['jun']}']").is_checked()
    assert page.locator(f"#train input[value='{facesets['mina']}']").is_checked()
    page.fill("#train input[name=iterations]", str(TINY_TRAINING["iterations"]))
    page.click("#train summary")
    page.fill("#train input[name=model]", TINY_TRAINING["model"])
    page.select_option("#train select[name=resolution]", str(TINY_TRAINING["resolution"]))
    for name in ("batch_size", "preview_every", "checkpoint_every"):
        page.fill(f"#train input[name={name}]", str(TINY_TRAINING[name]))
    page.check("#train input[name=skip_identity_metrics]")
    page.check("#train input[name=accept_gaps]")
    page.locator("#train").screenshot(path=str(SHOTS / "3-train-form-phone-ko.png"))
    page.click("#train button[type=submit]")
    page.wait_for_url(f"{live_service}/jobs/*")
    _finished(page, "a[href^='/studio?model=']")
    assert image_shown(page.locator("img[src*='preview_latest.png']"))
    pages["3-train-job"] = page.url

    # 4. export the model just trained (picked from the train job's page)
    page.click("a[href^='/studio?model=']")
    assert page.locator("#export input[name=model]:checked").count() == 1
    pages["4-studio-export"] = page.url
    page.click("#export button[type=submit]")
    page.wait_for_url(f"{live_service}/jobs/*")
    _finished(page, "a[href^='/render?model=']")
    pages["4-export-job"] = page.url

    # 5. render with it: the model comes picked
    page.click("a[href^='/render?model=']")
    page.set_input_files("input[type=file]", str(media["jun.png"]))
    page.click("form[data-upload-form] button[type=submit]")
    page.wait_for_url(f"{live_service}/jobs/*")
    page.wait_for_selector(".before-after img >> nth=1", timeout=JOB_DONE_MS)
    assert image_shown(page.locator(".before-after img").nth(1))
    pages["5-render-job"] = page.url
    cookies = context.cookies()
    context.close()

    # Every page of the walk at both sizes in both languages; then the studio page once mina's
    # grant is revoked: the refusal and its date, and nothing of mina's left to pick.
    pages = {"0-studio": f"{live_service}/studio", **pages, "6-consent": f"{live_service}/consent"}
    _shoot_all(browser, cookies, live_service, pages, errors)
    service_world.consent.revoke_grant()
    _shoot_all(browser, cookies, live_service, {"7-studio-revoked": f"{live_service}/studio"}, errors)
    assert errors == []


def _shoot_all(browser, cookies, live_service: str, pages: dict[str, str], errors: list[str]) -> None:
    for size, viewport in VIEWPORTS.items():
        for language in ("ko", "en"):
            context = browser.new_context(viewport=viewport)
            context.add_cookies([*cookies, {"name": "likeness_lang", "value": language, "url": live_service}])
            page = context.new_page()
            _watch(page, errors)
            for name, url in pages.items():
                page.goto(url)
                page.wait_for_load_state("networkidle")
                _shot(page, name, size, language)
                if name == "7-studio-revoked":
                    note = page.locator("#subjects li", has_text="mina").locator(".consent.refused")
                    assert ("철회됨" if language == "ko" else "Revoked on") in note.inner_text()
                    assert page.locator("#train input[name=source]:not([disabled])").count() == 0
                    assert page.locator("#export input[name=model]:not([disabled])").count() == 0
                    assert page.locator("#train button[type=submit]").is_disabled()
                    assert page.locator("#export button[type=submit]").is_disabled()
            context.close()
