"""Korean and English: every console string has its Korean, and the language is chosen well."""

from __future__ import annotations

import re
from pathlib import Path

from likeness.service.i18n import catalogue, pick_language, translator
from likeness.service.roles import Role

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "likeness" / "service" / "templates"
LITERAL = re.compile(r"""_\(\s*'([^']+)'|_\(\s*"([^"]+)\"""")


def test_every_template_string_has_a_korean_translation():
    korean = catalogue("ko")
    strings = {a or b for path in TEMPLATES.glob("*.html") for a, b in LITERAL.findall(path.read_text("utf-8"))}
    assert len(strings) > 40
    missing = sorted(s for s in strings if s not in korean)
    assert missing == []
    # and the states, roles and job kinds the templates translate by value
    for value in ["queued", "running", "succeeded", "failed", "cancelled", "verify", *[r.value for r in Role]]:
        assert value in korean


def test_placeholders_survive_translation():
    korean = catalogue("ko")
    for msgid, msgstr in korean.items():
        assert set(re.findall(r"\{\w+\}", msgid)) == set(re.findall(r"\{\w+\}", msgstr)), msgid
    assert translator("ko")("Hash chain broken at event {seq}:", seq=7) == "해시 체인이 이벤트 7에서 끊어졌습니다:"
    assert translator("en")("Sign in") == "Sign in"


def test_language_choice():
    assert pick_language("ko", "en-GB") == "ko"
    assert pick_language(None, "ko-KR,ko;q=0.9,en;q=0.8") == "ko"
    assert pick_language("fr", "fr-FR, en;q=0.5") == "en"
    assert pick_language(None, None) == "en"


def test_language_switch_is_a_cookie_and_redirects_only_inside_the_site(service_world):
    client = service_world.client()
    response = client.get("/lang/ko", params={"next": "/ledger"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ledger"
    assert "samesite=strict" in response.headers["set-cookie"].lower()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil", "javascript:alert(1)"):
        assert client.get("/lang/en", params={"next": target}, follow_redirects=False).headers["location"] == "/"
    assert client.get("/lang/fr").status_code == 404
    page = service_world.client().get("/login", headers={"accept-language": "ko-KR"})
    assert "로그인" in page.text


def test_every_verdict_headline_has_its_korean_from_one_source():
    from likeness.service.verdicts import VERDICT_HEADLINES
    from likeness.verify.verdict import VERDICTS

    korean = catalogue("ko")
    assert [code for code, text in VERDICT_HEADLINES.items() if text not in korean] == []
    assert set(VERDICTS) == set(VERDICT_HEADLINES)  # every verdict the verifier gives
    page = (TEMPLATES / "public.html").read_text("utf-8")
    assert not [text for text in VERDICT_HEADLINES.values() if text in page]  # the page does not copy them


def test_the_consoles_verify_result_is_korean_on_korean_pages(service_world, tmp_path):
    """A verification's headline on the job and case pages is the public card's, in the page's
    language; the verifier's own sentences stay English, marked lang="en"."""
    from likeness.media import write_image
    from likeness.media.synthetic import astronaut
    from likeness.service.worker import Worker

    from .public_media import enroll_mina

    enroll_mina(service_world.consent)
    photo = write_image(tmp_path / "fake.jpg", astronaut(), quality=90)
    files = {"file": (photo.name, photo.read_bytes(), "image/jpeg")}
    case_id = service_world.client().post("/api/v1/public/reports", files=files).json()["case_id"]
    assert Worker(service_world.workspace).run_one().state == "succeeded"
    legal = service_world.token_client(Role.LEGAL)
    for path in (f"/jobs/{case_id}", f"/cases/{case_id}"):
        korean = legal.get(path, headers={"accept-language": "ko-KR"}).text
        assert "Mina이(가) 나오지만 AI 표시나 기록이 없습니다" in korean, path
        assert "appears, with no AI label" not in korean
        english = legal.get(path, headers={"accept-language": "en"}).text
        assert "Mina appears, with no AI label or record" in english, path
    job_page = legal.get(f"/jobs/{case_id}", headers={"accept-language": "ko-KR"}).text
    assert re.search(r'<ul class="evidence" lang="en">', job_page)


def test_the_ledger_page_shows_a_releases_request_and_issue_in_both_languages(service_world):
    """release.requested and release.issued rows had empty details: their payloads name the
    release and performer with members the page did not list (a request's nested under
    ``payload``), where a grant's rows show its grant and subject."""
    import re

    release_id = service_world.consent.release_id
    assert release_id
    jun = service_world.workspace.registry.get_subject("jun").id
    client = service_world.client()
    service_world.login(client, "viewer")
    for language in ("en", "ko"):
        page = client.get("/ledger", headers={"accept-language": language}).text
        assert ("<h1>원장</h1>" in page) == (language == "ko")
        for event_type in ("release.requested", "release.issued"):
            (details,) = re.findall(
                rf"<code>{re.escape(event_type)}</code>.*?<td class=\"small\">(.*?)</td>", page, re.S
            )
            assert f"<b>release_id</b> {release_id}" in details, (language, event_type, details)
            assert f"<b>performer_id</b> {jun}" in details, (language, event_type, details)


def test_a_label_without_a_record_is_not_called_unlabelled():
    """Our label drawn on a photo of an artist, with no watermark or manifest: the console's and
    the card's headline said "no AI label" under a picture that shows one."""
    from likeness.service.verdicts import LABEL_ONLY_HEADLINES, verdict_headline

    korean = catalogue("ko")
    assert [code for code, text in LABEL_ONLY_HEADLINES.items() if text not in korean] == []
    painted = {
        "verdict": "enrolled-artist-unlabelled",
        "faces": {"faces": [{"match": {"slug": "mina", "name": "Mina"}}]},
        "visible_label": {"present": True},
        "watermark": {"found": False},
        "c2pa": {"present": False},
    }
    assert verdict_headline(translator("en"), painted) == "Mina appears, with an AI label but no record behind it"
    assert (
        verdict_headline(translator("ko"), painted) == "Mina이(가) 나오며 AI 표시는 있지만 뒷받침하는 기록은 없습니다"
    )
    plain = {**painted, "visible_label": {"present": False}}
    assert verdict_headline(translator("en"), plain) == "Mina appears, with no AI label or record"


def test_a_grant_not_yet_valid_is_not_headed_no_longer_in_force_in_either_language():
    """The console's job and case pages headed a grant whose period had not begun "the consent
    is no longer in force", as the public card did."""
    from likeness.service.verdicts import GRANT_STATE_HEADLINES, verdict_headline

    assert [text for text in GRANT_STATE_HEADLINES.values() if text not in catalogue("ko")] == []
    for state, english, korean in [
        (
            "not_yet_valid",
            "Made with AI, but the consent is not in force yet",
            "AI로 만들었지만 동의가 아직 유효하지 않습니다",
        ),
        (
            "revoked",
            "Made with AI, but the consent is no longer in force",
            "AI로 만들었지만 동의가 더 이상 유효하지 않습니다",
        ),
    ]:
        verification = {"verdict": "synthetic-consent-revoked", "watermark": {"grant": {"state": state}}}
        assert verdict_headline(translator("en"), verification) == english
        assert verdict_headline(translator("ko"), verification) == korean
