"""Every route × every role: a role lacking the route's permission gets 403, a role holding it
never gets 401 or 403, and without credentials every non-public route answers 401.

Routes are enumerated from the app, so a new route without a declared permission fails here.
"""

from __future__ import annotations

import io
import re

import numpy as np
from fastapi.routing import APIRoute
from PIL import Image

from likeness.service.roles import Permission, Role, allows

SAMPLE_ARGS = {
    "fmt": "html",
    "username": "viewer",
    "code": "en",
    "name": "NanumGothic.ttf",
    "slug": "mina",
    "photo": "0" * 64,
    # the rights-holder portal's routes (a holder session, never a service role, opens them)
    "token": "no-such-invitation",
    "request_id": "0" * 32,
    "grant_id": "0" * 32,
    "seq": "1",
    "digest": "0" * 64,
}

#: Where a rights holder starts (anyone may open them): the sign-in page and the start of a
#: passkey sign-in, and the invitation page (which says the token is unknown).
HOLDER_ENTRY_ROUTES = ("/portal", "/portal/invite/{token}", "/portal/api/signin/options")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def api_routes(routes) -> list[APIRoute]:
    """The app's APIRoutes, through included routers (FastAPI keeps those as branches)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(api_routes(route.original_router.routes))
    return found


def _requests(world):
    """(method, path, permission, request kwargs) for every route of the app."""
    queue = world.workspace and world.app.state.services.queue
    org_id = world.accounts.get_user("viewer").org_id
    finished = queue.enqueue("verify", {"upload": "none/x.png", "name": "x.png"}, org_id=org_id)
    queue.cancel(finished.id)
    token_id = world.accounts.create_token(world.accounts.get_user("viewer"), "to revoke")[1].id
    out = []
    for route in api_routes(world.app.routes):
        permission = (route.openapi_extra or {}).get("x-permission")
        assert permission, f"{route.path} declares no x-permission"
        for method in route.methods:

            def path_for(job_state: str, route: APIRoute = route) -> str:
                def value(match: re.Match) -> str:
                    name = match.group(1)
                    if name == "job_id":
                        if job_state == "queued":
                            return queue.enqueue("verify", {"upload": "none/y.png", "name": "y.png"}, org_id=org_id).id
                        return finished.id
                    if name == "token_id":
                        return token_id
                    return SAMPLE_ARGS[name]

                return re.sub(r"\{(\w+)\}", value, route.path)

            kwargs: dict = {}
            if route.path.endswith("/verifications") or (route.path == "/verify" and method == "POST"):
                kwargs["files"] = {"file": ("probe.png", _png(), "image/png")}
            elif route.path.endswith(("/references", "/extractions")):
                kwargs["data"] = {"subject": "mina"}
                kwargs["files"] = {"file": ("probe.png", _png(), "image/png")}
            elif route.path in ("/api/v1/trainings", "/api/v1/exports"):
                kwargs["json"] = {"source": finished.id, "target": finished.id, "model": finished.id}
            elif route.path in ("/studio/trainings", "/studio/exports"):  # the console's forms
                kwargs["data"] = {"source": finished.id, "target": finished.id, "model": finished.id}
            elif route.path == "/api/v1/users" and method == "POST":
                kwargs["json"] = {"username": "probe-user", "password": "a long password", "role": "viewer"}
            elif route.path == "/api/v1/users/{username}":
                kwargs["json"] = {"role": "viewer"}
            elif route.path == "/api/v1/tokens" and method == "POST":
                kwargs["json"] = {"name": "probe", "role": "viewer"}
            out.append((method, route.path, permission, path_for, kwargs))
    return out


def _expected_permission(permission: str) -> Permission | None:
    if permission in ("public", "holder"):  # holder routes: see test_no_role_opens_a_holder_route
        return None
    if permission == "job-kind":
        return Permission.VERIFY  # the matrix's jobs are verify jobs
    return Permission(permission)


def test_every_route_against_every_role(service_world):
    requests = _requests(service_world)
    assert len(requests) >= 25
    seen = set()
    for method, path, declared, path_for, kwargs in requests:
        needed = _expected_permission(declared)
        if declared == "holder":  # a service user is no rights holder: nothing opens
            for role in Role:
                client = service_world.token_client(role, raise_server_exceptions=False)
                response = client.request(method, path_for("finished"), follow_redirects=False, **kwargs)
                assert response.status_code < 500, (method, path, role, response.text)
                assert response.status_code in (200, 303, 401, 403, 404, 422) and (
                    response.status_code != 200 or path in HOLDER_ENTRY_ROUTES
                ), (method, path, role, response.status_code)
                seen.add((method, path, role))
            continue
        for role in Role:
            client = service_world.token_client(role, raise_server_exceptions=False)
            url = path_for("queued" if path.endswith("/cancel") else "finished")
            response = client.request(method, url, follow_redirects=False, **kwargs)
            assert response.status_code < 500, (method, path, role, response.text)
            if needed is None:
                assert response.status_code != 401, (method, path, role)
            elif allows(role, needed):
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.status_code)
            seen.add((method, path, role))
        anonymous = service_world.client(raise_server_exceptions=False)
        response = anonymous.request(method, path_for("finished"), follow_redirects=False, **kwargs)
        if needed is None:
            assert response.status_code != 401, (method, path, response.text, dict(response.request.headers))
        else:
            # API: a 401 problem; console pages: a redirect to the sign-in page (for browsers)
            assert response.status_code == 401, (method, path, response.status_code)
    assert len(seen) == len(requests) * len(Role)


def test_every_permission_is_held_by_some_role_and_viewer_only_reads():
    for permission in Permission:
        assert any(allows(role, permission) for role in Role)
    assert [p for p in Permission if allows(Role.VIEWER, p)] == [Permission.READ]
    assert not allows(Role.STUDIO, Permission.VERIFY) and not allows(Role.LEGAL, Permission.RENDER)
    assert not allows("root", Permission.READ)
