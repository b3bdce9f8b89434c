"""The JSON bodies are as strict as the forms: a member the route does not take is a 422
naming it. Before, pydantic dropped it without a word, so a misspelt ``max_render`` drafted a
grant request with no cap on renders and ``iteratons`` queued a training without its limit."""

from __future__ import annotations

import pytest

from likeness.service.roles import Role
from likeness.service.worker import Worker

JOB = "0" * 32


@pytest.mark.parametrize(
    "role, path, body, misspelt",
    [
        (
            Role.ADMIN,
            "/api/v1/portal/requests",
            {"subject": "mina", "uses": ["music_video"], "valid_until": "+30d"},
            "max_render",
        ),
        (Role.ADMIN, "/api/v1/portal/invitations", {"holder": "z-holder"}, "day"),
        (Role.STUDIO, "/api/v1/trainings", {"source": JOB, "target": JOB}, "iteratons"),
        (Role.STUDIO, "/api/v1/exports", {"model": JOB}, "modle"),
        (Role.ADMIN, "/api/v1/users", {"username": "zed", "password": "x" * 20, "role": "viewer"}, "display"),
        (Role.ADMIN, "/api/v1/tokens", {"name": "ci"}, "expires_days"),
        (Role.ADMIN, "/portal/api/register/options", {"token": "x"}, "tokn"),
    ],
)
def test_a_json_body_with_a_misspelt_member_is_a_422(service_world, role, path, body, misspelt):
    client = service_world.token_client(role)
    ledger = service_world.workspace.ledger.count()
    response = client.post(path, json={**body, misspelt: "5"})
    assert response.status_code == 422, (response.status_code, response.text[:400])
    assert f"body.{misspelt}" in response.json()["detail"], response.text
    assert service_world.workspace.ledger.count() == ledger  # nothing drafted, invited or made
    assert Worker(service_world.workspace).run_one() is None  # nothing queued


def test_a_refused_member_is_not_echoed_whole(service_world):
    # A 500,000-character member name came back twice (in detail and errors), a 1 MB answer.
    client = service_world.token_client(Role.ADMIN)
    for path, body in (("/api/v1/tokens", {"name": "ci"}), ("/portal/api/register/options", {"token": "x"})):
        response = client.post(path, json={**body, "k" * 500_000: 1, **{f"m{i}": 1 for i in range(5000)}})
        assert response.status_code == 422, response.text[:300]
        assert len(response.content) < 4000, (path, len(response.content))
        assert "k" * 40 in response.json()["detail"] and "k" * 41 not in response.text


@pytest.mark.parametrize(
    "role, path, body",
    [
        (
            Role.ADMIN,
            "/api/v1/portal/requests",
            '{"subject": "mina", "uses": ["fan_message"], "uses": ["music_video"], "valid_until": "+30d"}',
        ),
        (Role.STUDIO, "/api/v1/trainings", f'{{"source": "{JOB}", "target": "{JOB}", "target": "{JOB}"}}'),
        (Role.ADMIN, "/portal/api/register/options", '{"token": "x", "token": "y"}'),
    ],
)
def test_a_json_body_naming_a_member_twice_is_a_422_naming_it(service_world, role, path, body):
    """Before, the last of the two was taken without a word: a client (or a proxy, or the holder's
    view of the request) keeping the first read a fan message where a music video was drafted."""
    client = service_world.token_client(role)
    ledger = service_world.workspace.ledger.count()
    member = "uses" if "uses" in body else "target" if "target" in body else "token"
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, (response.status_code, response.text[:400])
    assert f"duplicate member name '{member}'" in response.json()["detail"], response.text
    # where: the second name's place in the body (FastAPI's ``body.CHAR``) and its JSON path
    second = body.rindex(f'"{member}"')
    assert f"body.{second}: not JSON: duplicate member name '{member}' at $.{member}" in response.json()["detail"]
    assert service_world.workspace.ledger.count() == ledger  # nothing drafted, invited or made
    assert Worker(service_world.workspace).run_one() is None  # nothing queued


def test_a_json_body_naming_a_lone_surrogate_member_twice_is_a_422_not_a_500(service_world):
    """The refusal's JSON path held the name raw: a lone surrogate could not be written into the
    problem's body, and the client got 'internal error' for its own bad JSON."""
    client = service_world.token_client(Role.ADMIN)
    body = '{"name": "ci", "\\ud800": 1, "\\ud800": 2}'
    response = client.post("/api/v1/tokens", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, (response.status_code, response.text[:400])
    assert "duplicate member name '\\ud800'" in response.json()["detail"], response.text
