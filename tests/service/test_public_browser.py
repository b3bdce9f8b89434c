"""The public page in Debian's Chromium (Playwright): every verdict from generated media, at a
phone's and a laptop's size, in Korean and English. Screenshots go to ``test-artifacts/public/``.
Uses tests/browser.py's ``browser`` and tests/service/conftest.py's ``live_service`` (Uvicorn in a thread)."""

from __future__ import annotations

import pytest

from tests.browser import ARTIFACTS, LOCALES, VIEWPORTS, new_page, scroll_width, sign_in

from .public_media import allow_many_checks, verdict_media

SHOTS = ARTIFACTS.parent / "public"
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")]

#: What the page shows for each generated file (live_service enrols mina and the performer jun).
EXPECTED = {
    "labelled": "authorized-synthetic",
    "reencoded": "authorized-synthetic",
    "still": "authorized-synthetic",
    "tampered": "tampered",
    "unlabelled": "enrolled-artist-unlabelled",
    "stranger": "no-enrolled-artist",
    "no_face": "no-face",
    "corrupt": "error",
    "other_issuer": "synthetic-other-issuer",
}
HEADLINES = {
    ("authorized-synthetic", "en"): "Made with AI, with the artist’s consent",
    ("authorized-synthetic", "ko"): "아티스트의 동의를 받아 AI로 만든 콘텐츠입니다",
    ("synthetic-consent-revoked", "en"): "Made with AI, but the consent is no longer in force",
    ("synthetic-consent-revoked", "ko"): "AI로 만들었지만 동의가 더 이상 유효하지 않습니다",
    ("synthetic-other-issuer", "en"): "Made with AI by someone else",
    ("synthetic-other-issuer", "ko"): "다른 곳에서 AI로 만든 콘텐츠입니다",
}


PICK = {"en": "Choose a file", "ko": "파일 고르기"}


def open_page(browser, base: str, size: str, language: str):
    context, page, errors = new_page(browser, size, LOCALES[language])
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.fonts = []  # type: ignore[attr-defined]  (the font files the page fetched)
    page.on("request", lambda request: page.fonts.append(request.url) if "font" in request.url else None)
    page.goto(f"{base}/")
    assert page.locator("html").get_attribute("lang") == language
    return context, page, errors


def page_font_characters(page, base: str) -> set[str]:
    """The characters the page's own cut of NanumGothic sets."""
    import io

    from fontTools.ttLib import TTFont

    served = page.request.get(f"{base}/fonts/page/NanumGothic.woff")
    assert served.ok
    return {chr(code) for code in TTFont(io.BytesIO(served.body())).getBestCmap()}


def check(page, upload) -> str:
    """Choose ``upload`` (a path, or Playwright's ``{name, mimeType, buffer}``) and send it."""
    page.set_input_files("input[type=file]", upload if isinstance(upload, dict) else str(upload))
    page.click("form[data-public-check] button[type=submit]")
    card = page.wait_for_selector("[data-result] .verdict-card, [data-result] .alert", timeout=60_000)
    return card.get_attribute("data-verdict") or "problem"


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_every_verdict_on_the_public_page(browser, live_service, service_world, tmp_path, size, language):
    media = verdict_media(service_world.consent, tmp_path / "media")
    allow_many_checks(service_world.app)
    shots = SHOTS / f"{size}-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    context, page, errors = open_page(browser, live_service, size, language)
    font = page_font_characters(page, live_service)
    try:
        page.screenshot(path=str(shots / "0-start.png"), full_page=True)
        # the picker speaks the page's language (the browser's own button speaks the browser's)
        assert page.locator(".pick").inner_text() == PICK[language]
        native = page.locator("input[type=file]").bounding_box()
        assert native is not None and native["width"] <= 1 and native["height"] <= 1
        for name, verdict in EXPECTED.items():
            assert check(page, media[name]) == verdict, name
            # ASCII names: nothing on the page calls for the full face
            assert page.locator(".outside-cut").count() == 0, name
            card = page.locator("[data-result] .verdict-card")
            if (verdict, language) in HEADLINES:
                assert card.locator("h2").inner_text() == HEADLINES[(verdict, language)]
            if verdict == "enrolled-artist-unlabelled" and language == "ko":  # the particle fits the word
                assert card.locator("h2").inner_text() == "이 소속사의 아티스트가 나오지만 AI 표시나 기록이 없습니다"
                assert "이 소속사의 아티스트를 알아보았지만" in card.inner_text()
            if verdict == "synthetic-other-issuer" and language == "ko":  # after a Latin name it stays
                assert "Studio Haneul likeness signer이(가) 서명한" in card.inner_text()
            if verdict in ("authorized-synthetic", "enrolled-artist-unlabelled"):
                # mina's rights holder did not allow public naming
                unnamed = "이 소속사의 아티스트" if language == "ko" else "an artist this agency represents"
                assert unnamed in card.inner_text() and "mina" not in card.inner_text().lower()
            if verdict == "authorized-synthetic":  # the organisation's name, never its slug
                assert "Studio Haneul" in card.inner_text() and "studio" not in card.inner_text()
            if verdict == "synthetic-other-issuer":
                assert "Studio Haneul likeness signer" in card.inner_text()  # who signed it
            if name in ("labelled", "unlabelled"):
                page.click("[data-result] details summary")
                page.wait_for_selector("[data-frames] canvas", timeout=20_000)
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            shown = page.evaluate("document.body.innerText").replace(media[name].name, "")
            assert sorted({ch for ch in shown if not ch.isspace()} - font) == [], name
            assert scroll_width(page) <= VIEWPORTS[size]["width"], name
        # the page's own cut of NanumGothic sets every Korean character; the 4.7 MB face is not fetched
        assert page.evaluate("document.fonts.check('16px NanumGothicPage', '진짜일까')")
        assert any(url.endswith("/fonts/page/NanumGothic.woff") for url in page.fonts)
        assert not [url for url in page.fonts if "/static/fonts/" in url]
        service_world.consent.revoke_grant()
        assert check(page, media["labelled"]) == "synthetic-consent-revoked"
        assert page.locator("[data-result] h2").first.inner_text() == HEADLINES[("synthetic-consent-revoked", language)]
        page.screenshot(path=str(shots / "revoked.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


def test_hostile_names_and_files_are_shown_as_text(browser, live_service, service_world, tmp_path):
    media = verdict_media(service_world.consent, tmp_path / "media")
    hostile = {
        "name": "<img src=x onerror=alert(1)><script>alert(2)</script>.jpg",
        "mimeType": "image/jpeg",
        "buffer": media["unlabelled"].read_bytes(),
    }
    text_file = {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"<script>alert(3)</script>\n" * 10}
    context, page, errors = open_page(browser, live_service, "phone", "en")
    try:
        assert check(page, hostile) == "enrolled-artist-unlabelled"
        assert page.locator("img[src=x]").count() == 0 and page.locator("body script").count() == 0
        assert "onerror" in page.locator("[data-chosen]").inner_text()  # the name, as text
        assert check(page, text_file) == "problem"
        assert "not a picture or video we can read" in page.locator("[data-result] .alert").inner_text()
        page.screenshot(path=str(SHOTS / "hostile-phone-en.png"), full_page=True)
        # Chromium logs the refused upload's 415; no script ran, no dialog opened
        assert errors == ["Failed to load resource: the server responded with a status of 415 (Unsupported Media Type)"]
    finally:
        context.close()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_report_a_case_through_to_the_console(browser, live_service, service_world, tmp_path, size):
    from .conftest import PASSWORD

    media = verdict_media(service_world.consent, tmp_path / "media")
    context, page, errors = open_page(browser, live_service, size, "en")
    try:
        assert check(page, media["unlabelled"]) == "enrolled-artist-unlabelled"
        form = page.locator("[data-report-form]")
        form.locator("input[name=contact]").fill("fan@example.org")
        form.locator("textarea[name=note]").fill("Posted by a fan account <script>alert(1)</script>")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("[data-case]", timeout=20_000)
        page.screenshot(path=str(SHOTS / f"report-sent-{size}.png"), full_page=True)

        page.goto(f"{live_service}/login")
        sign_in(page, live_service, "legal", PASSWORD, "/console")
        page.click("nav >> a[href='/cases']")
        page.click("table.cases a")
        page.wait_for_url(f"{live_service}/cases/*")  # a click does not wait for the next page
        assert "fan@example.org" in page.locator(".facts").inner_text()
        assert "<script>alert(1)</script>" in page.locator(".note").inner_text()  # shown as text
        for _ in range(120):  # the worker writes the evidence pack
            if page.locator("[data-export]").count():
                break
            page.wait_for_timeout(500)
            page.reload()
        page.select_option("select[name=state]", "takedown-requested")
        page.fill("input[name=comment]", "sent to the platform")
        page.click("form[action$='/mark'] button[type=submit]")
        assert page.locator("[data-case-state]").inner_text() == "takedown-requested"
        with page.expect_download() as download:
            page.click("[data-export]")
        assert download.value.suggested_filename.endswith(".zip")
        page.screenshot(path=str(SHOTS / f"case-{size}.png"), full_page=True)
        assert scroll_width(page) <= VIEWPORTS[size]["width"]
        assert errors == []
    finally:
        context.close()
    types = [e.event_type for e in service_world.workspace.ledger.events() if e.event_type.startswith("case.")]
    assert types == ["case.opened", "case.marked", "case.evidence_exported"]


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_a_shared_link_shows_the_card_without_the_file(browser, live_service, tmp_path, size, language):
    from likeness.media import write_image
    from likeness.media.synthetic import astronaut

    photo = write_image(tmp_path / "holiday.jpg", astronaut(), quality=90)
    shots = SHOTS / f"{size}-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    context, page, errors = open_page(browser, live_service, size, language)
    try:
        assert check(page, photo) == "enrolled-artist-unlabelled"
        page.click("[data-result] [data-share]")
        link = page.wait_for_selector("[data-result] [data-link]", timeout=20_000)
        url = link.get_attribute("href")
        assert "/r/" in url and link.inner_text() == url
        page.screenshot(path=str(shots / "link-made.png"), full_page=True)
        page.goto(url)
        card = page.wait_for_selector("[data-result] .verdict-card", timeout=20_000)
        assert card.get_attribute("data-verdict") == "enrolled-artist-unlabelled"
        unnamed = "이 소속사의 아티스트" if language == "ko" else "an artist this agency represents"
        shared_on = "확인한 결과를 공유한 것입니다" if language == "ko" else "A shared result of a check on"
        assert unnamed in card.inner_text() and shared_on in card.inner_text()
        assert "holiday" not in page.content()  # the file's name is not kept
        assert page.locator("[data-report-form], [data-share], [data-frames]").count() == 0  # no file here
        page.screenshot(path=str(shots / "link-page.png"), full_page=True)
        assert scroll_width(page) <= VIEWPORTS[size]["width"]
        assert errors == []
    finally:
        context.close()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_a_slow_page_font_does_not_fetch_the_full_face(browser, live_service, service_world, tmp_path, language):
    """On a slow link (or a loaded server) the page's cut of NanumGothic arrives late. While it
    loads the page is set in the system face, not in the next web font down the list: a phone
    must not start fetching the 4.7 MB face just because the small one was slow."""
    import time

    context = browser.new_context(viewport=VIEWPORTS["phone"], locale=LOCALES[language])
    page = context.new_page()
    fonts: list[str] = []
    page.on("request", lambda request: fonts.append(request.url) if "font" in request.url else None)

    def slow(route):
        time.sleep(1.5)
        route.continue_()

    page.route("**/fonts/page/*", slow)
    try:
        page.goto(f"{live_service}/")
        page.wait_for_function("document.fonts.status === 'loaded'", timeout=20_000)
        page.wait_for_timeout(300)
        assert any(url.endswith("/fonts/page/NanumGothic.woff") for url in fonts)
        assert page.evaluate("document.fonts.check('16px NanumGothicPage', '진짜일까')")
        assert not [url for url in fonts if "/static/fonts/" in url]
    finally:
        context.close()


def test_a_korean_file_name_outside_the_cut_is_set_in_the_apps_own_face(browser, live_service, service_world, tmp_path):
    """Korean text is set in NanumGothic served by the app, a visitor's file name too: a name
    with Hangul the page's cut lacks brings in the full face (for that name only), not the
    system's font; an ASCII name never does (test_every_verdict_on_the_public_page)."""
    media = verdict_media(service_world.consent, tmp_path / "media")
    named = {"name": "뷁 직캠.jpg", "mimeType": "image/jpeg", "buffer": media["unlabelled"].read_bytes()}
    context, page, errors = open_page(browser, live_service, "phone", "ko")
    try:
        assert "뷁" not in page_font_characters(page, live_service)
        assert check(page, named) == "enrolled-artist-unlabelled"
        page.wait_for_timeout(500)
        assert any(url.endswith("/static/fonts/NanumGothic.ttf") for url in page.fonts)
        assert page.evaluate("document.fonts.check('16px NanumGothic', '뷁')")
        assert "뷁 직캠.jpg" in page.locator("[data-chosen]").inner_text()
        # that name, where it shows, and nothing else
        marked = page.locator(".outside-cut")
        assert marked.count() == 2 and all("뷁 직캠.jpg" in text for text in marked.all_inner_texts())
        page.screenshot(path=str(SHOTS / "korean-file-name-phone-ko.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


NO_FILE = {"en": "Choose a photo or video to check first.", "ko": "먼저 확인할 사진이나 동영상을 골라 주세요."}


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_checking_with_no_file_says_so_on_the_page(browser, live_service, size, language):  # noqa: F811
    # Before, only the browser's own validation bubble (in the browser's language) said it.
    shots = SHOTS / f"{size}-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    context, page, errors = open_page(browser, live_service, size, language)
    try:
        page.click("form[data-public-check] button[type=submit]")
        alert = page.wait_for_selector("[data-result] .alert", timeout=10_000)
        assert alert.inner_text() == NO_FILE[language]
        assert page.url == f"{live_service}/" and not page.locator("[data-progress]").is_visible()
        page.screenshot(path=str(shots / "no-file.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS[size]["width"]
        assert errors == []
    finally:
        context.close()
    # Without JavaScript the form posts itself: the server answers the page with the same alert.
    locale = "ko-KR" if language == "ko" else "en-GB"
    context = browser.new_context(viewport=VIEWPORTS[size], locale=locale, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_service}/")
        with page.expect_navigation():
            page.click("form[data-public-check] button[type=submit]")
        assert page.locator("[data-result] .alert").inner_text() == NO_FILE[language]
        page.screenshot(path=str(shots / "no-file-no-script.png"), full_page=True)
    finally:
        context.close()


GRANT_ID = "3f9a1c2be4d54f6a8b7c9d0e1f2a3b4c"
#: An authorized-synthetic answer as the verifier gives it (likeness.verify/1.1), answered by the
#: page's route so the details' words are checked without a render.
SIGNED_ANSWER = {
    "schema": "likeness.verify/1.1",
    "sha256": "0" * 64,
    "verdict": "authorized-synthetic",
    "c2pa": {
        "present": True,
        "state": "Trusted",
        "reasons": [],
        "signer": "Studio Haneul likeness signer",
        "actions": ["c2pa.created", "c2pa.edited"],
        "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "declares_ai": True,
        "consent_assertion": None,
        "consent": {
            "grant_id": GRANT_ID,
            "state": "active",
            "subject_slug": "mina",
            "org_slug": "studio",
            "subject_id": None,
            "org_id": None,
            "use": "music_video",
        },
    },
    "watermark": {
        "algorithm": "likeness-dwt",
        "found": True,
        "payload": "a1b2c3d4e5f6",
        "bit_confidence": 0.97,
        "frame_timestamps_s": [],
        "ledger_entry": {
            "job_id": "job-1",
            "grant_id": GRANT_ID,
            "subject_id": None,
            "org_id": None,
            "use": "music_video",
            "output_sha256": None,
            "output_name": None,
            "ledger_seq": 7,
            "ledger_event_id": None,
            "recorded_at": "2026-12-01T10:00:00Z",
            "kind": "render",
        },
        "grant": {
            "grant_id": GRANT_ID,
            "state": "active",
            "subject_slug": "mina",
            "org_slug": "studio",
            "subject_id": None,
            "org_id": None,
            "use": "music_video",
        },
    },
    "visible_label": {"present": True},
    "faces": {"faces": [], "frames_analysed": 0},
}
DETAIL_WORDS = {
    "en": ["signed, by a signer this agency trusts", "created", "edited", "made by AI (a trained model)", "in force"],
    "ko": ["서명이 맞고, 이 소속사가 신뢰하는 서명자입니다", "만듦", "편집함", "AI(학습된 모델)가 만든 것", "유효"],
}


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_details_say_their_values_in_words_and_the_verdict_a_short_grant_id(
    browser, live_service, tmp_path, language
):
    """The details spoke the verifier's raw English (Trusted, c2pa.created, trainedAlgorithmicMedia)
    on the Korean page too, and the verdict sentence named the 32-character grant id."""
    import json

    from likeness.media import write_image
    from likeness.media.synthetic import astronaut

    photo = write_image(tmp_path / "still.jpg", astronaut(), quality=90)
    context, page, errors = open_page(browser, live_service, "phone", language)
    page.route(
        "**/api/v1/public/verify",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(SIGNED_ANSWER)),
    )
    try:
        assert check(page, photo) == "authorized-synthetic"
        card = page.locator("[data-result] .verdict-card")
        assert GRANT_ID not in card.inner_text() and GRANT_ID[:8] in card.inner_text()
        assert card.locator(f'[title="{GRANT_ID}"]').count() == 1  # the whole id, for the curious
        page.click("[data-result] details summary")
        details = page.locator("[data-result] details")
        shown = details.inner_text()
        for words in DETAIL_WORDS[language]:
            assert words in shown, words
        for raw in ("Trusted", "c2pa.created", "trainedAlgorithmicMedia", "active"):
            assert raw not in shown, raw
            assert details.locator(f'code:text-is("{raw}"), [title*="{raw}"]').count() >= 1, raw
        assert details.locator(f'code:text-is("{GRANT_ID}")').count() >= 1
        page.screenshot(path=str(SHOTS / f"details-words-phone-{language}.png"), full_page=True)
        assert scroll_width(page) <= VIEWPORTS["phone"]["width"]
        assert errors == []
    finally:
        context.close()


#: The card of a grant not in force, by its state and language: its headline and its one state
#: line's start. Not yet valid and altered read "not in force" like an unknown grant.
GRANT_STATE_CARDS = {
    "revoked": {
        "en": ("Made with AI, but the consent is no longer in force", "Today that consent is revoked."),
        "ko": ("AI로 만들었지만 동의가 더 이상 유효하지 않습니다", "현재 이 동의는 철회됨 상태입니다."),
    },
    "not_yet_valid": {
        "en": ("Made with AI, but the consent is not in force yet", "That consent is not in force yet: the period"),
        "ko": ("AI로 만들었지만 동의가 아직 유효하지 않습니다", "이 동의는 아직 유효하지 않습니다. 동의한 기간이"),
    },
    "altered": {
        "en": (
            "Made with AI, but the consent is no longer in force",
            "The agency’s record of that consent no longer matches what was signed",
        ),
        "ko": ("AI로 만들었지만 동의가 더 이상 유효하지 않습니다", "소속사에 있는 이 동의의 기록이 서명된 내용과"),
    },
    "unknown": {
        "en": ("Made with AI, but the consent is no longer in force", "Today that consent is not in force."),
        "ko": ("AI로 만들었지만 동의가 더 이상 유효하지 않습니다", "현재 이 동의는 무효 상태입니다."),
    },
}


def _answer_with(body: str):
    return lambda route: route.fulfill(status=200, content_type="application/json", body=body)


@pytest.mark.parametrize("language", ["en", "ko"])
def test_a_grant_not_yet_valid_or_altered_has_its_own_words_on_the_card(browser, live_service, tmp_path, language):
    """A grant whose period had not begun, or whose signed record was altered, read "Today that
    consent is not in force" (as an unknown one does), under a headline saying "no longer". Each
    has its own line now; the card of a withheld artist's grant still names no one and no date."""
    import copy
    import json

    from likeness.media import write_image
    from likeness.media.synthetic import astronaut

    photo = write_image(tmp_path / "still.jpg", astronaut(), quality=90)
    context, page, errors = open_page(browser, live_service, "phone", language)
    try:
        for state, cards in GRANT_STATE_CARDS.items():
            answer = copy.deepcopy(SIGNED_ANSWER)
            answer["verdict"] = "synthetic-consent-revoked"
            for grant in (answer["watermark"]["grant"], answer["c2pa"]["consent"]):
                grant.update(state=state, subject_slug=None)  # a withheld artist, as the public answer has it
            page.route("**/api/v1/public/verify", _answer_with(json.dumps(answer)))
            assert check(page, photo) == "synthetic-consent-revoked"
            card = page.locator("[data-result] .verdict-card")
            headline, line = cards[language]
            assert card.locator("h2").all_inner_texts() == [headline], state
            lines = card.locator(".state-line").all_inner_texts()
            assert len(lines) == 1 and lines[0].startswith(line), (state, lines)
            shown = card.inner_text()
            assert "mina" not in shown and "2026-12-01" in shown  # the render's date, and no other
            assert len([word for word in shown.split() if word[:4].isdigit() and "-" in word]) == 1, shown
            page.screenshot(path=str(SHOTS / f"grant-{state}-phone-{language}.png"), full_page=True)
            page.unroute("**/api/v1/public/verify")
            page.click("[data-result] button.wide >> nth=-1")  # check another file
        assert errors == []
    finally:
        context.close()


#: A refusal's sentence by its cause (problem, the page's sentence's start).
REFUSALS = {
    "uploads-in-progress": (
        {"type": "urn:likeness:problem:rate-limited", "status": 429, "cause": "uploads-in-progress"},
        {"en": "Your other uploads are still being sent", "ko": "보내고 있는 다른 파일이 아직 있습니다"},
    ),
    "uploads-busy": (
        {"type": "urn:likeness:problem:rate-limited", "status": 429, "cause": "busy"},
        {"en": "Many people are sending files right now", "ko": "지금 파일을 보내는 사람이 많습니다"},
    ),
    "checker-busy": (
        {"type": "urn:likeness:problem:analysis-timeout", "status": 503, "cause": "busy"},
        {"en": "Many people are checking files right now", "ko": "지금 파일을 확인하는 사람이 많아"},
    ),
}


@pytest.mark.parametrize("language", ["en", "ko"])
def test_each_refusal_says_its_own_cause(browser, live_service, tmp_path, language):
    """A 429 for the address's uploads still in progress said "you checked many files in a short
    time", which that visitor had not."""
    import json

    from likeness.media import write_image
    from likeness.media.synthetic import astronaut

    photo = write_image(tmp_path / "still.jpg", astronaut(), quality=90)
    generic = {"en": "You have checked many files", "ko": "짧은 시간에"}[language]

    def answer(status: int, body: str):
        return lambda route: route.fulfill(status=status, content_type="application/problem+json", body=body)

    context, page, errors = open_page(browser, live_service, "phone", language)
    try:
        for name, (problem, says) in REFUSALS.items():
            page.route(
                "**/api/v1/public/verify",
                answer(problem["status"], json.dumps(problem)),
            )
            assert check(page, photo) == "problem"
            text = page.locator("[data-result] .alert").inner_text()
            assert text.startswith(says[language]) and generic not in text, (name, text)
            page.screenshot(path=str(SHOTS / f"refusal-{name}-phone-{language}.png"), full_page=True)
            page.unroute("**/api/v1/public/verify")
        assert [e for e in errors if "Failed to load resource" not in e] == []  # the refusals themselves
    finally:
        context.close()
