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
