"""Strict forms: a field a form route does not take is refused (422 naming it), on every form
route of the service, its console and studio, the public page and the rights-holder portal. A
misspelt option (``thin-rims``, ``Eyes``, ``coment``) would otherwise be dropped without a word
and the job queued, the case marked or the request drafted without it.

JSON bodies are strict too: their models derive from :class:`StrictBody` (pydantic refuses a
member they do not declare), and every router reads them through :class:`StrictJSONRoute` (an
object naming a member twice is refused, whichever value came last).

One check, :func:`unknown_fields`, reached three ways: routes that declare their fields as
FastAPI ``Form`` parameters through the app-wide dependency :func:`strict_form`; streamed
uploads through ``api.accept_upload``/``public.receive_public_upload`` (their field lists); and
the few routes that read ``request.form()`` themselves, with the names they read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, Iterable
from typing import Any

from fastapi import Request, Response, params
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from likeness import strict_json
from likeness.service.errors import InvalidField


class StrictBody(BaseModel):
    """A JSON request body: a member it does not declare is a 422 naming it (``body.max_render:
    Extra inputs are not permitted``), as a form's unknown field is; dropped without a word, a
    misspelt ``max_renders`` would draft a grant request with no cap on renders."""

    model_config = ConfigDict(extra="forbid")


class StrictJSONRequest(Request):
    """A request whose JSON body is read by :func:`likeness.strict_json.loads`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_json.loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """The route class of every router: FastAPI reads a JSON body with ``request.json()``, which
    keeps the last of two members of one name (``{"uses": ["music_video"], "uses": ["ads"]}``);
    through :class:`StrictJSONRequest` the duplicate is a 422 naming the member instead (the
    decode error FastAPI answers for a body that is not JSON)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_json_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_json_handler


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
            takes = ", ".join(sorted(known)) or "no other field"
            raise InvalidField(f"{name[:40]!r}: not a field of this form (it takes {takes})")


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


def access_checks(dependant: Any) -> list[Callable[[Request], object]]:
    """The route's sign-in and role checks: its dependencies that carry a ``permission``
    (``auth.require``, the portal's ``require_holder``), its sub-dependencies' too."""
    found = []
    for sub in dependant.dependencies:
        if getattr(sub.call, "permission", None) is not None:
            found.append(sub.call)
        found += access_checks(sub)
    return found


async def strict_form(request: Request) -> None:
    """App-wide dependency: a route with declared form fields refuses any other. FastAPI has
    parsed the form before dependencies run, so this reads its cached copy.

    App-wide dependencies run before the route's own, so a refusal first runs the route's
    access checks: a caller who may not use the form gets their 401/403, not a 422 listing a
    staff form's fields (nor a 422-or-401 answer telling which names the form takes)."""
    known = declared_form_fields(request)
    if known is None:
        return
    sent = list((await request.form()).keys())
    if any(name not in known and name not in BROWSER_FIELDS for name in sent):
        for check in access_checks(request.scope["route"].dependant):
            check(request)
        unknown_fields(sent, known)
