"""FastAPI dependencies: who is asking, and may their role do this.

Every route declares one permission with ``guard(Permission.X)`` (or ``public()``); the
declaration is also in the OpenAPI document as ``x-permission``, and the role matrix test
checks each route against each role.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Depends, Request

from likeness.service.errors import Forbidden, NotAuthenticated
from likeness.service.roles import Permission, allows
from likeness.service.security import (
    SESSION_COOKIE,
    UNSAFE_METHODS,
    Principal,
    check_csrf,
)


def services(request: Request) -> Any:
    return request.app.state.services


def current_principal(request: Request) -> Principal | None:
    """The principal of a bearer token or session cookie; ``None`` for an anonymous request.
    A bearer token that is not live is an error, never a fallback to the cookie."""
    accounts = services(request).accounts
    header = request.headers.get("authorization")
    if header:
        scheme, _, secret = header.partition(" ")
        found = accounts.token_principal(secret.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise NotAuthenticated(
                "the API token is unknown, expired or revoked", headers={"WWW-Authenticate": 'Bearer realm="likeness"'}
            )
        user, role, token_id = found
        return Principal(user=user, role=role, via="token", token_id=token_id)
    session = accounts.session_for(request.cookies.get(SESSION_COOKIE, ""))
    if session is not None:
        return Principal(user=session.user, role=session.user.role, via="session", session=session)
    return None


@cache
def require(permission: Permission, *, csrf_from_header: bool = True):
    """A dependency giving the principal when its role holds ``permission``; for a session's
    unsafe request also checks the CSRF header (console forms check their form field)."""

    def dependency(request: Request) -> Principal:
        principal = current_principal(request)
        if principal is None:
            raise NotAuthenticated(
                "sign in, or send an API token (Authorization: Bearer ...)",
                headers={"WWW-Authenticate": 'Bearer realm="likeness"'},
            )
        if not allows(principal.role, permission):
            raise Forbidden(f"the {principal.role.value} role may not do this (needs '{permission.value}')")
        if csrf_from_header and request.method in UNSAFE_METHODS:
            check_csrf(principal, request.headers.get("x-csrf-token"))
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


def guard(permission: Permission, *, csrf_from_header: bool = True) -> dict[str, Any]:
    """Route keyword arguments: the permission check plus its ``x-permission`` declaration."""
    return {
        "dependencies": [Depends(require(permission, csrf_from_header=csrf_from_header))],
        "openapi_extra": {"x-permission": permission.value},
    }


def public() -> dict[str, Any]:
    return {"openapi_extra": {"x-permission": "public"}}
