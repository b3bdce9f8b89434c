"""Error pages speak the reader's language: each problem type a page can show has a title and a
sentence with Korean, above the problem's own English detail, which the API keeps as it was."""

from __future__ import annotations

import re

from likeness.errors import LikenessError
from likeness.service.console import flags_unbroken
from likeness.service.errors import ServiceError
from likeness.service.i18n import catalogue
from likeness.service.problems import _HTTP_TITLES, LIBRARY_PROBLEMS, PAGE_SENTENCES, page_sentence
from likeness.service.roles import Role
from likeness.service.security import LANG_COOKIE

ENROLLING_ORG_UNNAMED = {
    "en": "Name the organisation that enrols this rights holder or subject: this workspace cannot choose one for you.",
    "ko": "이 권리자나 대상을 등록하는 소속사를 지정해 주세요. 이 작업 공간에서는 소속사를 대신 고를 수 없습니다.",
}


def _service_errors(kind: type[ServiceError] = ServiceError) -> list[type[ServiceError]]:
    return [kind] + [found for sub in kind.__subclasses__() for found in _service_errors(sub)]


def _problem_types(service_world) -> dict[str, str]:
    """Every problem type an error page can show, with its title (the app's modules loaded)."""
    assert service_world.app is not None
    types = dict(_HTTP_TITLES.values())
    types |= {code: title for _, _, code, title in LIBRARY_PROBLEMS}
    types |= {kind.code: kind.title for kind in _service_errors()}
    return types


def test_every_problem_type_has_a_sentence_and_korean_for_it_and_its_title(service_world):
    types = _problem_types(service_world)
    assert {"enrolling-org-unnamed", "enroller-not-onboarding-org", "subject-not-enrolled", "csrf-failed"} <= set(types)
    assert sorted(set(types) - set(PAGE_SENTENCES)) == []
    assert sorted(set(PAGE_SENTENCES) - set(types) - {"error"}) == sorted(
        key for key in PAGE_SENTENCES if key.startswith("consent-refused-")
    )  # no sentence for a type that does not exist
    korean = catalogue("ko")
    words = [*types.values(), *PAGE_SENTENCES.values(), "Error", "Details:"]
    assert sorted(w for w in words if w not in korean) == []


def test_a_consent_refusals_sentence_is_by_its_reason_where_there_is_one():
    from likeness.errors import ConsentReason

    by_reason = [key.removeprefix("consent-refused-") for key in PAGE_SENTENCES if key.startswith("consent-refused-")]
    assert by_reason and all(ConsentReason(reason) for reason in by_reason)  # each names a real reason
    assert page_sentence("consent-refused", "user_not_verified") == PAGE_SENTENCES["consent-refused-user_not_verified"]
    assert page_sentence("consent-refused", "revoked") == PAGE_SENTENCES["consent-refused"]
    assert page_sentence("no-such-type") == PAGE_SENTENCES["error"]


def test_a_library_error_is_the_first_matching_problem_type():
    kinds = [kind for kind, *_ in LIBRARY_PROBLEMS]
    assert kinds[-1] is LikenessError
    for earlier, kind in enumerate(kinds):  # no type is shadowed by a base class before it
        assert not any(issubclass(kind, base) for base in kinds[:earlier]), kind


def test_the_409_page_says_why_in_the_readers_language_and_keeps_the_detail(service_world):
    from .test_app import _enrolling_routes

    _enrolling_routes(service_world)
    detail = "subject &#39;sora&#39;: this workspace has several organisations (byeol, studio) and none was named"
    for lang in ("en", "ko"):
        client = service_world.client(cookies={LANG_COOKIE: lang})
        page = client.post("/console/test-enrol", headers={"accept": "text/html"}).text
        (sentence,) = re.findall(r"<p data-problem-sentence>(.*?)</p>", page)
        assert sentence == ENROLLING_ORG_UNNAMED[lang]
        (shown,) = re.findall(r'<p class="small problem-detail">(.*?)</p>', page, re.S)
        assert shown.startswith("자세한 내용:" if lang == "ko" else "Details:")
        assert f'<code lang="en">{detail}' in shown
        assert 'with <span class="flag">--org</span> (only it' in shown
    # the API's detail is the same English, flag and all, without markup
    body = service_world.client().post("/api/v1/test-enrol").json()
    assert body["detail"].startswith(detail.replace("&#39;", "'")) and " with --org (" in body["detail"]


def test_an_unknown_page_and_a_refused_role_have_korean_sentences(service_world):
    viewer = service_world.token_client(Role.VIEWER, cookies={LANG_COOKIE: "ko"})
    missing = viewer.get("/jobs/0123", headers={"accept": "text/html"})
    assert missing.status_code == 404 and "여기에는 아무것도 없거나, 볼 수 있는 항목이 없습니다." in missing.text
    refused = viewer.get("/verify", headers={"accept": "text/html"})
    assert refused.status_code == 403 and "현재 역할로는 할 수 없는 작업입니다." in refused.text


def test_flags_stay_whole_and_the_rest_is_escaped():
    shown = str(flags_unbroken("name it with --org <b> or --owner-org; a re-enrol, x--y and -- alone stay"))
    assert shown == (
        'name it with <span class="flag">--org</span> &lt;b&gt; or <span class="flag">--owner-org</span>; '
        "a re-enrol, x--y and -- alone stay"
    )
