"""Every form route of the service refuses a field it does not take (422 naming it), as the
render routes did alone before: a misspelt field was dropped without a word (a case marked
without its comment, an invitation without the holder's name, a training without its limit)."""

from __future__ import annotations

import pytest

from likeness.service.roles import Role
from likeness.service.worker import Worker

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
JOB = "0" * 32


def _signed_in(world, role: Role):
    client = world.client()
    return client, world.login(client, role.value)


def _refused(response, misspelt: str) -> None:
    assert response.status_code == 422, (response.status_code, response.text[:400])
    assert response.json()["detail"].startswith(f"{misspelt!r}: not a field of this form"), response.text


@pytest.mark.parametrize(
    "role, path, fields, misspelt",
    [
        (Role.LEGAL, f"/cases/{JOB}/mark", {"state": "open"}, "coment"),
        (Role.ADMIN, f"/jobs/{JOB}/cancel", {}, "reason"),
        (Role.ADMIN, "/consent/holders/invite", {"holder": "mina-holder"}, "holder_nmae"),
        (Role.ADMIN, "/consent/holders/request", {"subject": "mina"}, "purpse"),
        (Role.STUDIO, "/studio/trainings", {"source": JOB, "target": JOB}, "iteratons"),
        (Role.STUDIO, "/studio/exports", {"model": JOB}, "modle"),
        (Role.ADMIN, "/logout", {}, "next_page"),
    ],
)
def test_a_console_form_with_a_misspelt_field_is_a_422(service_world, role, path, fields, misspelt):
    client, csrf = _signed_in(service_world, role)
    sent = {**fields, misspelt: "x", "csrf_token": csrf}
    _refused(client.post(path, data=sent, headers={"accept": "application/json"}), misspelt)
    assert Worker(service_world.workspace).run_one() is None  # nothing was queued


def test_the_login_form_and_the_public_forms_are_strict_too(service_world):
    client = service_world.client()
    client.get("/login")
    login = {"username": "admin", "password": "x" * 12, "csrf_token": client.cookies.get("likeness_login_csrf")}
    _refused(client.post("/login", data={**login, "remember": "on"}), "remember")
    _refused(client.post("/api/v1/public/links", data={"sha256": "a" * 64, "sha": "b"}), "sha")
    report = client.post(
        "/api/v1/public/reports", data={"contcat": "me@example.org"}, files={"file": ("a.png", PNG, "image/png")}
    )
    _refused(report, "contcat")


def test_an_upload_form_without_flags_is_strict_too(service_world):
    # /studio/extractions and the API's upload routes refused unknown fields only when they had
    # yes/no options (the render routes).
    client, csrf = _signed_in(service_world, Role.STUDIO)
    sent = {"csrf_token": csrf, "subject": "jun", "dedupe": "3"}
    _refused(client.post("/studio/extractions", data=sent, files={"file": ("a.png", PNG, "image/png")}), "dedupe")


def test_the_fields_the_pages_send_still_pass(service_world):
    client, csrf = _signed_in(service_world, Role.ADMIN)
    # the CSRF token, sent by every console form, is never an unknown field
    assert client.post(f"/jobs/{JOB}/cancel", data={"csrf_token": csrf}).status_code == 404
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "path, fields",
    [
        (f"/cases/{JOB}/mark", {"state": "open", "comment": "x"}),
        ("/consent/holders/invite", {"holder": "mina-holder", "subject_name": "x"}),
        (f"/jobs/{JOB}/cancel", {}),
        ("/logout", {}),
        (f"/portal/requests/{JOB}/decline", {}),
        ("/portal/logout", {}),
    ],
)
def test_a_caller_who_may_not_use_a_form_learns_nothing_of_its_fields(service_world, path, fields):
    # The app-wide check ran before the route's sign-in: an anonymous caller got a 422 listing
    # a staff form's fields, and a 422 for a wrong name against a 401 for a right one.
    anonymous = service_world.client()
    for sent in (fields, {**fields, "zzz": "1"}):
        response = anonymous.post(path, data=sent)
        assert response.status_code == 401, (sent, response.status_code, response.text[:300])
        assert "not a field" not in response.text


def test_a_role_without_the_permission_gets_its_403_before_the_field_check(service_world):
    client, csrf = _signed_in(service_world, Role.VIEWER)
    response = client.post(f"/cases/{JOB}/mark", data={"state": "open", "zzz": "1", "csrf_token": csrf})
    assert response.status_code == 403, response.text[:300]
    assert "comment" not in response.text


def test_an_upload_route_without_text_fields_says_so(service_world):
    sent = {"x": "1"}
    response = service_world.client().post(
        "/api/v1/public/verify", data=sent, files={"file": ("a.png", PNG, "image/png")}
    )
    _refused(response, "x")
    assert response.json()["detail"].endswith("(it takes no other field)"), response.text
