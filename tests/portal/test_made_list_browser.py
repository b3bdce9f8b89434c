"""The holder's one list of everything made with their face, on a small phone in Korean and a
laptop in English: thumbnails load, watermark ids wrap inside the page, the pager works."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from likeness.media.synthetic import astronaut
from likeness.train.preview import preview_grid
from tests.browser import collect_errors, image_shown, scroll_width

from .conftest import shots_folder
from .test_portal_plain_words_browser import LAPTOP, PHONE, _a_render_under, _holder_signed_in, _music_video_request


def _a_preview_under(workspace, grant_id: str, name: str) -> Path:
    """A training preview a service train job keeps, with its ``preview.written`` event (the
    file's hash recorded); the file."""
    path = Path(workspace.settings.service_dir) / "models" / name[:15] / "previews" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    faces = np.stack([cv2.resize(astronaut()[20:220, 140:340], (64, 64))] * 2)
    cv2.imwrite(str(path), cv2.cvtColor(preview_grid([faces, faces], titles=["source", "swap"]), cv2.COLOR_RGB2BGR))
    payload = {"grant_id": grant_id, "use": "training", "job_id": hashlib.sha256(name.encode()).hexdigest()[:32]}
    payload |= {"output_names": [name], "output_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    workspace.ledger.append("preview.written", payload)
    return path


@pytest.mark.parametrize("size, language", [(PHONE, "ko"), (PHONE, "en"), (LAPTOP, "ko"), (LAPTOP, "en")])
def test_the_holder_reads_everything_made_under_their_grants(browser, portal_service, size, language):
    url, workspace = portal_service["url"], portal_service["workspace"]
    portal, context, page = _holder_signed_in(browser, portal_service, size, language)
    errors = collect_errors(page, [], console=False)
    try:
        request = _music_video_request(
            portal,
            previews=[cv2.imencode(".png", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()],
        )
        page.goto(f"{url}/portal/requests/{request.request_id}")
        page.click("[data-passkey-sign]")
        page.wait_for_url(f"{url}/portal/grants/*")
        grant_id = page.url.rsplit("/", 1)[1]
        _a_render_under(workspace, grant_id, "first.png")
        _a_render_under(workspace, grant_id, "second.jpg")
        workspace.ledger.append("model.trained", {"grant_id": grant_id, "use": "training", "job_id": "m" * 32})
        _a_preview_under(workspace, grant_id, "preview_0000100.png")
        _a_preview_under(workspace, grant_id, "preview_0000200.png").write_bytes(b"replaced")  # hash no longer matches
        workspace.ledger.append("preview.written", {"grant_id": grant_id, "use": "training", "job_id": "p" * 32})
        page.goto(f"{url}/portal")
        page.click("[data-made-link]")
        page.wait_for_url(f"{url}/portal/made")
        assert page.locator("[data-made]").count() == 6
        for n in range(6):  # each thumbnail loads (lazily: scrolled to first), or fails and becomes a line
            page.locator("[data-made]").nth(n).scroll_into_view_if_needed()
            page.wait_for_load_state("networkidle")
        thumbnails = page.locator("[data-made] img")
        assert thumbnails.count() == 3  # two renders and the kept preview; the replaced one is a plain line
        for n in range(3):
            assert image_shown(thumbnails.nth(n))
        preview_alt = "학습 미리보기" if language == "ko" else "Training preview"
        assert page.locator(f'[data-made="preview.written"] img[alt="{preview_alt}"]').count() == 1
        plain = page.locator('[data-made="preview.written"] .made-kind')
        assert plain.all_inner_texts() == ["미리보기" if language == "ko" else "Preview"] * 2
        page.evaluate("window.scrollTo(0, 0)")
        heading = page.locator("h1").inner_text()
        assert heading == ("내 얼굴로 만들어진 모든 것" if language == "ko" else "Everything made with your face")
        assert scroll_width(page) <= size["width"]
        name = "360" if size is PHONE else "laptop"
        page.screenshot(path=str(shots_folder(name, language) / "h-made-list.png"), full_page=True)
        assert errors == []
    finally:
        context.close()
