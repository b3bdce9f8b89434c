"""RFC 9457 problem details for every error the service answers with.

``application/problem+json`` bodies: ``type`` (a stable URI per kind of problem), ``title``,
``status``, ``detail`` (what went wrong with this request), ``instance`` (the request path);
validation problems add ``errors`` (where and what). An unexpected exception becomes a 500
problem with an ``error_id`` that the server log carries beside the traceback; the client never
sees the traceback.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from likeness.consent.ledger import database_busy
from likeness.errors import (
    ConfigError,
    ConsentError,
    DatabaseRefused,
    EnrollingOrgUnnamed,
    FaceOfAnotherHolder,
    LikenessError,
    MediaError,
    RegistryError,
    SubjectEnrollerRefused,
    SubjectNotEnrolled,
)
from likeness.service.errors import ServiceError

#: Problem types are URNs: stable names, not pages to fetch.
PROBLEM_TYPE_BASE = "urn:likeness:problem:"
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("likeness.service")

_HTTP_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("not-authenticated", "Not signed in"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("upload-too-large", "Request too large"),
    415: ("unsupported-media", "Unsupported media type"),
    422: ("invalid-request", "Invalid request"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal error"),
}

#: The JSON schema of a problem, for the OpenAPI document.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "reason": {"type": "string", "description": "a consent refusal's reason code"},
        "error_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


#: The most characters of a problem's detail and instance: both may echo what the client sent
#: (an id, a path), which must not come back whole however long it was.
MAX_DETAIL = 500


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def problem(
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    default_code, default_title = _HTTP_TITLES.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (code or default_code),
        "title": title or default_title,
        "status": status,
    }
    if detail:
        body["detail"] = _shortened(detail, MAX_DETAIL)
    if instance:
        body["instance"] = _shortened(instance, MAX_DETAIL)
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _library_status(exc: LikenessError) -> tuple[int, str, str]:
    if isinstance(exc, ConsentError):
        return 403, "consent-refused", "Refused by the consent policy"
    if isinstance(exc, EnrollingOrgUnnamed):  # nothing is missing: the request must name who enrols
        return 409, "enrolling-org-unnamed", "No enrolling organisation was named"
    if isinstance(exc, SubjectEnrollerRefused):  # the holder exists: another organisation onboarded them
        return 409, "enroller-not-onboarding-org", "Only the holder's onboarding organisation enrols their subjects"
    if isinstance(exc, FaceOfAnotherHolder):  # the photo is readable: its face is another holder's subject's
        return 409, "face-of-another-holder", "The face is another rights holder's subject's"
    if isinstance(exc, SubjectNotEnrolled):  # the subject row exists: the ledger does not back it
        return 409, "subject-not-enrolled", "The ledger does not back the subject's enrolment"
    if isinstance(exc, RegistryError):
        return 404, "not-found", "Not found"
    if isinstance(exc, MediaError):
        return 422, "unreadable-media", "Media could not be used"
    if isinstance(exc, ConfigError):
        return 503, "not-configured", "The workspace is not ready"
    return 400, "refused", "Refused"


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def respond(
    request: Request,
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem for the API; for a browser on a console page, the console's error page."""
    error_page = getattr(request.app.state, "error_page", None)
    if error_page is not None and _wants_html(request):
        shown = _shortened(detail, MAX_DETAIL) if detail else detail
        return error_page(request, status, title or _HTTP_TITLES.get(status, ("", "Error"))[1], shown, headers)
    return problem(status, code=code, title=title, detail=detail, instance=request.url.path, headers=headers, **extra)


#: A 422 names where each problem is: the sender's own member names (a JSON key, a form field)
#: are echoed up to ``MAX_ECHO`` characters, and the first ``MAX_ERRORS`` problems, so a body of
#: one 500,000-character key (or 10,000 keys) is not sent back whole.
MAX_ECHO = 40
MAX_ERRORS = 20


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        return respond(
            request, exc.status, code=exc.code, title=exc.title, detail=str(exc), headers=exc.headers, **exc.members
        )

    @app.exception_handler(LikenessError)
    async def _library_error(request: Request, exc: LikenessError) -> Response:
        status, code, title = _library_status(exc)
        detail = str(exc)
        if isinstance(exc, DatabaseRefused):  # it names the server's database file
            error_id = uuid.uuid4().hex[:12]
            log.error("database refused a write (%s) on %s %s: %s", error_id, request.method, request.url.path, exc)
            detail = f"the database refused the write; quote {error_id} to your administrator"
        return respond(
            request,
            status,
            code=code,
            title=title,
            detail=detail,
            reason=getattr(exc, "reason", None) if isinstance(exc, ConsentError) else None,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"nothing at {request.url.path}"
        if exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        return respond(request, exc.status_code, detail=detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"where": ".".join(str(p)[:MAX_ECHO] for p in error.get("loc", ())), "problem": _problem(error)}
            for error in exc.errors()[:MAX_ERRORS]
        ]
        summary = "; ".join(f"{e['where']}: {e['problem']}" for e in errors[:5])
        return respond(request, 422, detail=summary or "the request is not valid", errors=errors)


def _problem(error: dict[str, Any]) -> str:
    """What is wrong at one place of a request; a body that is not JSON says why (FastAPI's
    message alone, "JSON decode error", would not name a member given twice)."""
    reason = (error.get("ctx") or {}).get("error") if error.get("type") == "json_invalid" else None
    return f"not JSON: {str(reason)[:200]}" if reason else str(error.get("msg", ""))


#: What a client is told to wait when SQLite's busy timeout (30 s) passed under another writer.
BUSY_RETRY_AFTER_S = 5


class CrashToProblem:
    """ASGI middleware: an exception nobody handled becomes a 500 problem (with an id that the
    log carries beside the traceback), inside the security-header middleware so the answer
    still has its headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            # The request may well succeed later: a 503 to retry, not an unexpected 500.
            if database_busy(exc) and not started:
                log.warning("database busy (%s) on %s %s: %s", error_id, scope.get("method"), scope.get("path"), exc)
                busy = problem(
                    503,
                    code="database-busy",
                    title="The database is busy",
                    detail=f"another writer held the database too long; try again shortly (error {error_id})",
                    instance=scope.get("path"),
                    headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
                )
                await busy(scope, receive, send)
                return
            log.exception("unhandled error %s on %s %s", error_id, scope.get("method"), scope.get("path"))
            if started:  # the status line is gone; all we can do is end the response
                return
            response = problem(
                500,
                detail=f"an unexpected error; quote {error_id} to your administrator",
                instance=scope.get("path"),
                error_id=error_id,
            )
            await response(scope, receive, send)


def problem_json(status: int, detail: str) -> bytes:
    code, title = _HTTP_TITLES.get(status, ("error", "Error"))
    return json.dumps({"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "detail": detail}).encode()
