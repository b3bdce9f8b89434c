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


#: Each library error the service answers as its own problem type: (error, status, code,
#: title), a subclass before its base class (the first that matches is taken).
LIBRARY_PROBLEMS: tuple[tuple[type[LikenessError], int, str, str], ...] = (
    (ConsentError, 403, "consent-refused", "Refused by the consent policy"),
    # nothing is missing: the request must name who enrols
    (EnrollingOrgUnnamed, 409, "enrolling-org-unnamed", "No enrolling organisation was named"),
    # the holder exists: another organisation onboarded them
    (
        SubjectEnrollerRefused,
        409,
        "enroller-not-onboarding-org",
        "Only the holder's onboarding organisation enrols their subjects",
    ),
    # the photo is readable: its face is another holder's subject's
    (FaceOfAnotherHolder, 409, "face-of-another-holder", "The face is another rights holder's subject's"),
    # the subject row exists: the ledger does not back it
    (SubjectNotEnrolled, 409, "subject-not-enrolled", "The ledger does not back the subject's enrolment"),
    (RegistryError, 404, "not-found", "Not found"),
    (MediaError, 422, "unreadable-media", "Media could not be used"),
    (ConfigError, 503, "not-configured", "The workspace is not ready"),
    (LikenessError, 400, "refused", "Refused"),
)


def _library_status(exc: LikenessError) -> tuple[int, str, str]:
    return next((status, code, title) for kind, status, code, title in LIBRARY_PROBLEMS if isinstance(exc, kind))


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
        default_code, default_title = _HTTP_TITLES.get(status, ("error", "Error"))
        shown = _shortened(detail, MAX_DETAIL) if detail else detail
        sentence = page_sentence(code or default_code, extra.get("reason"))
        return error_page(request, status, title or default_title, sentence, shown, headers)
    return problem(status, code=code, title=title, detail=detail, instance=request.url.path, headers=headers, **extra)


#: What an error page tells a person, by problem type, in words a reader acts on: the page
#: shows it in the page's language (these are the catalogue's msgids) above the problem's own
#: ``detail``, which stays the English that API clients parse and names the specific things.
PAGE_SENTENCES = {
    "bad-request": "The request could not be used as it was sent.",
    "forbidden": "Your role does not allow this. Ask an administrator of your organisation if you need it.",
    "not-found": "There is nothing here, or nothing you may see.",
    "method-not-allowed": "This address does not take this kind of request.",
    "not-acceptable": "The service cannot answer in the form that was asked for.",
    "conflict": "This clashes with what is already recorded here.",
    "upload-too-large": "The file is larger than this form accepts. Choose a smaller file.",
    "unsupported-media": "This file is not an image or video this service can read.",
    "invalid-request": "Something that was sent is missing or not valid. Go back, check the form and try again.",
    "rate-limited": "There were too many tries in a short time. Wait a little, then try again.",
    "internal-error": "Something went wrong on the server. If it happens again, tell your administrator.",
    "consent-refused": "The consent checks refused this, so it was not done.",
    "enrolling-org-unnamed": (
        "Name the organisation that enrols this rights holder or subject: this workspace cannot choose one for you."
    ),
    "enroller-not-onboarding-org": (
        "Only the organisation that onboarded the rights holder may enrol subjects under them. Nothing was enrolled."
    ),
    "face-of-another-holder": (
        "The face in this photo is already enrolled for another rights holder's subject, so it was not added. "
        "Nothing was saved."
    ),
    "subject-not-enrolled": (
        "The ledger holds no valid enrolment of this subject, so no grant can be requested for it. Nothing was drafted."
    ),
    "unreadable-media": "The file could not be read as a picture or a video.",
    "not-configured": "The service is not set up for this, or cannot save right now. Tell your administrator.",
    "refused": "The service refused this request.",
    "not-authenticated": "Sign in first.",
    "login-failed": "The user name or the password is wrong.",
    "csrf-failed": "The form was open too long or came from another page. Reload the page and try again.",
    "no-file": "No file was chosen. Choose a file, then send the form again.",
    "already-decided": "This was decided already, earlier or in another tab. Reload the page to see the decision.",
    "upload-timeout": "The upload was too slow and was stopped. Try again on a steadier connection.",
    "empty-file": "The file is empty: its download or sharing may not have finished. Choose the file again.",
    "analysis-timeout": "Checking the file took too long. Try again later, or with a shorter clip.",
    "service-key-unusable": "The service cannot use one of its own keys. This is not your doing: tell your administrator.",
    "error": "Something went wrong.",
    # A consent refusal a rights holder meets in the portal's passkey ceremonies, or the console's
    # request form, by its reason ("consent-refused-" + ``ConsentReason``): what they can do.
    "consent-refused-credential_not_holders": (
        "The passkey used is not registered to you here, or what it was to sign belongs to another rights holder."
    ),
    "consent-refused-assertion_replayed": "This passkey answer was used once already. Try again.",
    "consent-refused-wrong_origin": (
        "The passkey answered for another site address. Open the portal from the agency's link and try again."
    ),
    "consent-refused-wrong_rp": (
        "The passkey answered for another site address. Open the portal from the agency's link and try again."
    ),
    "consent-refused-user_not_verified": (
        "Your phone or computer did not confirm that it is you (fingerprint, face or PIN). Try again and confirm "
        "when it asks."
    ),
    "consent-refused-counter_regressed": (
        "This passkey's count of uses went backwards, as a copied passkey's does. Contact the agency."
    ),
    "consent-refused-signature_invalid": "The passkey's answer could not be checked. Try again.",
    "consent-refused-invitation_unknown": "This invitation link is not valid. Ask the agency for a new link.",
    "consent-refused-invitation_expired": "The invitation has expired. Ask the agency for a new link.",
    "consent-refused-invitation_used": (
        "The invitation was already used to create a passkey. Sign in with that passkey instead."
    ),
    "consent-refused-prohibited_use": "That use can never be granted, whoever consents to it.",
    "consent-refused-unknown_use": "That use is not one this service knows. Choose one of the uses offered.",
}


def page_sentence(code: str, reason: str | None = None) -> str:
    """The error page's sentence (English, the msgid) for problem type ``code``, made exact by a
    consent refusal's ``reason`` where there is a sentence for it."""
    exact = PAGE_SENTENCES.get(f"{code}-{reason}") if reason else None
    return exact or PAGE_SENTENCES.get(code, PAGE_SENTENCES["error"])


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
