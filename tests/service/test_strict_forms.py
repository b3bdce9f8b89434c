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
