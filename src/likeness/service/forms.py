"""Strict forms: a field a form route does not take is refused (422 naming it), on every form
route of the service, its console and studio, the public page and the rights-holder portal. A
misspelt option (``thin-rims``, ``Eyes``, ``coment``) would otherwise be dropped without a word
and the job queued, the case marked or the request drafted without it.

One check, :func:`unknown_fields`, reached three ways: routes that declare their fields as
FastAPI ``Form`` parameters through the app-wide dependency :func:`strict_form`; streamed
uploads through ``api.accept_upload``/``public.receive_public_upload`` (their field lists); and
the few routes that read ``request.form()`` themselves, with the names they read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from fastapi import Request, params

from likeness.service.errors import InvalidField

#: Fields the service's own pages send with every form, whatever the route takes.
BROWSER_FIELDS = ("csrf_token",)


def unknown_fields(sent: Iterable[str], known: Collection[str]) -> None:
    """Refuse (422 naming it) a form field that is neither in ``known`` nor one the browser
    always sends (``BROWSER_FIELDS``).

    >>> unknown_fields(["eyes", "csrf_token"], ("eyes",))
    >>> unknown_fields(["Eyes"], ("eyes",))
    Traceback (most recent call last):
    ...
    likeness.service.errors.InvalidField: 'Eyes': not a field of this form (it takes eyes)
    """
    for name in sent:
        if name not in known and name not in BROWSER_FIELDS:
            raise InvalidField(f"{name[:40]!r}: not a field of this form (it takes {', '.join(sorted(known))})")


def declared_form_fields(request: Request) -> list[str] | None:
    """The form fields the matched route declares as ``Form`` parameters (its dependencies'
    too), or None when it takes no declared form (JSON, a streamed upload, no body)."""
    route = request.scope.get("route")
    body = getattr(route, "body_field", None)
    if body is None or not isinstance(body.field_info, params.Form):
        return None

    def names(dependant: Any) -> list[str]:
        found = [field.alias for field in dependant.body_params]
        for sub in dependant.dependencies:
            found += names(sub)
        return found

    return names(route.dependant)  # type: ignore[union-attr]


async def strict_form(request: Request) -> None:
    """App-wide dependency: a route with declared form fields refuses any other. FastAPI has
    parsed the form before dependencies run, so this reads its cached copy."""
    known = declared_form_fields(request)
    if known is not None:
        unknown_fields((await request.form()).keys(), known)
