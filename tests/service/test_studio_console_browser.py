"""A train job's page in the browser: live progress, the latest labelled preview and the
loss/identity plot, then the finished run, at phone and laptop sizes in English and Korean
(screenshots under ``test-artifacts/console/train-*``)."""

from __future__ import annotations

import time

import httpx
import pytest

from likeness.service.roles import Role
from tests.browser import ARTIFACTS, VIEWPORTS, collect_errors, image_shown, new_page, scroll_width, sign_in

from .conftest import PASSWORD
from .test_studio_jobs import TINY_TRAINING, media  # noqa: F401  (fixture)


def _wait(api: httpx.Client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def _upload(api: httpx.Client, url: str, path, **fields) -> str:
    with path.open("rb") as handle:
        response = api.post(url, data=fields, files={"file": (path.name, handle, "application/octet-stream")})
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.mark.slow
def test_a_train_job_shows_its_previews_and_plot(browser, live_service, service_world, media):  # noqa: F811
    token = service_world.tokens[Role.STUDIO]
    with httpx.Client(base_url=live_service, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        faceset = {}
        for slug in ("mina", "jun"):
            faceset[slug] = _upload(api, "/api/v1/extractions", media[f"{slug}.mp4"], subject=slug, dedup="-1")
            assert _wait(api, faceset[slug])["state"] == "succeeded"
        body = {**TINY_TRAINING, "iterations": 30, "preview_every": 5, "checkpoint_every": 10}
        train = api.post("/api/v1/trainings", json={"source": faceset["mina"], "target": faceset["jun"], **body})
        assert train.status_code == 202, train.text
        job_id = train.json()["id"]

        context, page, errors = new_page(browser, "laptop", console=False)
        page.goto(f"{live_service}/login?next=/jobs/{job_id}")
        sign_in(page, live_service, "studio", PASSWORD, f"/jobs/{job_id}")
        # While it trains, the page follows it: the preview and plot appear without a reload.
        page.wait_for_selector("img[src*='preview_latest.png']:not([hidden])", timeout=120_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "train-running-laptop-en.png"), full_page=True)
        assert _wait(api, job_id)["state"] == "succeeded"
        cookies = context.cookies()
        context.close()

    for size, viewport in VIEWPORTS.items():
        for language in ("en", "ko"):
            context = browser.new_context(viewport=viewport)
            context.add_cookies([*cookies, {"name": "likeness_lang", "value": language, "url": live_service}])
            page = context.new_page()
            collect_errors(page, errors, console=False)
            page.goto(f"{live_service}/jobs/{job_id}")
            assert page.locator("h2", has_text="학습" if language == "ko" else "Training").is_visible()
            for name in ("preview_latest.png", "metrics.png"):
                image = page.locator(f"img[src*='{name}']")
                assert image_shown(image), name
            assert scroll_width(page) <= viewport["width"]
            page.screenshot(path=str(ARTIFACTS / f"train-done-{size}-{language}.png"), full_page=True)
            context.close()
    assert errors == []
