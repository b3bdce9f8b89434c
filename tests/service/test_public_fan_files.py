"""The public page as a fan on a phone uses it: what phones and apps hand over
that the page cannot check is told in the page's language with what to do, an upload cut by a
flaky connection can be sent again, and a picture that shows our "AI-generated" label without
any record of ours behind it is not called unlabelled. Screenshots go to
``test-artifacts/public/fan/``."""

from __future__ import annotations

import json

import av
import pytest

from likeness.media import write_image
from likeness.media.synthetic import animate_portrait, astronaut
from likeness.provenance.visible_label import burn_visible_label
from tests.browser import ARTIFACTS, scroll_width
from tests.verify.test_heif_family import heic_bytes

from .public_media import allow_many_checks, enroll_mina
from .test_public_browser import check, open_page

SHOTS = ARTIFACTS.parent / "public" / "fan"
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")]
#: A small phone (360x740), as in the brief's phone check.
SMALL_PHONE = {"width": 360, "height": 740}

SAYS = {
    "heic": {"en": "HEIC", "ko": "HEIC"},
    "heic-way-out": {"en": "JPEG", "ko": "JPEG"},
    "empty": {"en": "This file is empty", "ko": "빈 파일입니다"},
    "network": {"en": "The connection was lost", "ko": "연결이 끊어졌습니다"},
    "slow": {"en": "The upload stopped or came too slowly", "ko": "업로드가 멈췄거나 너무 느렸습니다"},
    "busy": {"en": "Many people are checking files right now", "ko": "지금 파일을 확인하는 사람이 많아"},
    "no-frames": {
        "en": "This browser cannot play this video, so its frames are not drawn here. The result above does not depend on it.",
        "ko": "이 브라우저에서는 이 영상을 재생할 수 없어 프레임을 그려 보여 드리지 못합니다. 위의 결과는 이와 관계없습니다.",
    },
    "label-only": {"en": "anyone can draw a label", "ko": "누구나 표시를 그려 넣을 수 있으므로"},
}


def avi_clip(folder) -> bytes:
    """A 2 s 9:16 MPEG-4 Part 2 AVI of the astronaut: the verifier reads it, no browser plays it."""
    path = folder / "clip.avi"
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 360, 640, "yuv420p"
        for index, rgb in enumerate(animate_portrait(astronaut(), n_frames=20, size=(360, 640), seed=1)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


def alert(page) -> str:
    return page.locator("[data-result] .alert").inner_text()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_what_a_phone_hands_over_gets_a_way_forward_in_the_pages_language(
    browser, live_service, service_world, tmp_path, language
):
    allow_many_checks(service_world.app)
    enroll_mina(service_world.consent)
    photo = write_image(tmp_path / "photo.jpg", astronaut(), quality=90).read_bytes()
    # someone drew our label onto an ordinary photo of the artist: no watermark, no manifest
    painted = write_image(tmp_path / "painted.jpg", burn_visible_label(astronaut()), quality=90).read_bytes()
    shots = SHOTS / language
    shots.mkdir(parents=True, exist_ok=True)
    context, page, errors = open_page(browser, live_service, "phone", language)
    page.set_viewport_size(SMALL_PHONE)
    try:
        # An iPhone photo: which format, and what to do, in the page's language.
        assert check(page, {"name": "IMG_0001.HEIC", "mimeType": "image/heic", "buffer": heic_bytes()}) == "problem"
        assert SAYS["heic"][language] in alert(page) and SAYS["heic-way-out"][language] in alert(page)
        page.screenshot(path=str(shots / "heic.png"), full_page=True)
        # A file whose download or share never finished.
        assert check(page, {"name": "직캠 🎤 최고.jpg", "mimeType": "image/jpeg", "buffer": b""}) == "problem"
        assert alert(page).startswith(SAYS["empty"][language])
        assert page.locator("[data-chosen]").inner_text().endswith(" · 0 B")  # was "1 KiB"
        page.screenshot(path=str(shots / "empty.png"), full_page=True)

        # A clip the browser cannot play (an AVI download; an iPhone's HEVC .MOV in Chromium):
        # the verdict stands, and the frames' place says why no frame is drawn.
        assert check(page, {"name": "직캠.avi", "mimeType": "video/x-msvideo", "buffer": avi_clip(tmp_path)}) == (
            "enrolled-artist-unlabelled"
        )
        page.click("[data-result] details summary")
        note = page.wait_for_selector("[data-frames-note]", timeout=20_000)
        assert note.inner_text() == SAYS["no-frames"][language]
        page.screenshot(path=str(shots / "avi-frames.png"), full_page=True)

        # The connection drops half-way: the page says so, and the same file goes again.
        page.route("**/api/v1/public/verify", lambda route: route.abort("connectionreset"))
        named = {"name": "직캠 🎤 민아 최고 (1).jpg", "mimeType": "image/jpeg", "buffer": photo}
        assert check(page, named) == "problem"
        assert alert(page).startswith(SAYS["network"][language])
        page.unroute("**/api/v1/public/verify")
        page.click("form[data-public-check] button[type=submit]")  # the file is still chosen
        page.wait_for_selector("[data-result] .verdict-card", timeout=60_000)
        # the card names the file as the fan's phone named it
        assert "직캠 🎤 민아 최고 (1).jpg" in page.locator("[data-result] .filename").inner_text()

        # A connection too slow for the server's floor: the server's 408, said as what it is.
        slow = {"type": "urn:likeness:problem:upload-timeout", "status": 408, "title": "The upload took too long"}
        page.route(
            "**/api/v1/public/verify",
            lambda route: route.fulfill(status=408, content_type="application/problem+json", body=json.dumps(slow)),
        )
        assert check(page, named) == "problem"
        assert alert(page).startswith(SAYS["slow"][language])
        page.unroute("**/api/v1/public/verify")

        # The checker busy with other visitors' files: nothing was analysed, so no "shorter clip".
        busy = {"type": "urn:likeness:problem:analysis-timeout", "status": 503, "cause": "busy"}
        page.route(
            "**/api/v1/public/verify",
            lambda route: route.fulfill(status=503, content_type="application/problem+json", body=json.dumps(busy)),
        )
        assert check(page, named) == "problem"
        assert alert(page).startswith(SAYS["busy"][language])
        page.unroute("**/api/v1/public/verify")

        # Our label drawn on a photo: the card says the label is there and what it is worth.
        assert check(page, {"name": "painted.jpg", "mimeType": "image/jpeg", "buffer": painted}) == (
            "enrolled-artist-unlabelled"
        )
        card = page.locator("[data-result] .verdict-card")
        assert SAYS["label-only"][language] in card.inner_text()
        assert card.locator("h2").inner_text() not in (
            "An artist this agency represents appears, with no AI label or record",
            "이 소속사의 아티스트가 나오지만 AI 표시나 기록이 없습니다",
        )
        page.click("[data-result] details summary")
        page.wait_for_selector("[data-frames] canvas", timeout=20_000)
        page.screenshot(path=str(shots / "label-only.png"), full_page=True)
        assert scroll_width(page) <= SMALL_PHONE["width"]
        # large system text (200 %): still one column, nothing scrolls sideways
        page.evaluate("document.documentElement.style.zoom = '200%'")
        page.screenshot(path=str(shots / "label-only-zoom-200.png"), full_page=True)
        assert scroll_width(page) <= SMALL_PHONE["width"]
        # Chromium logs the refused uploads and the cut connection; no script error
        assert [e for e in errors if not e.startswith("Failed to load resource")] == []
    finally:
        context.close()
