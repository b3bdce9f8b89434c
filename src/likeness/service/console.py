"""The console: server-rendered Jinja2 pages in Korean and English, a little plain JS.

Pages only parse, call the same library and service functions as the API, and render. A page
that needs a sign-in redirects to ``/login``; other errors render an error page with the same
problem type the API would send.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from likeness.consent.vocabulary import use_words
from likeness.service.accounts import same_secret
from likeness.service.api import accept_upload, accept_verification_upload
from likeness.service.auth import current_principal, guard, public, require
from likeness.service.devices import DEVICE_COOKIE, DEVICE_COOKIE_PATH, DEVICE_DAYS, device_cookie, trusted_device
from likeness.service.errors import (
    CsrfFailed,
    Forbidden,
    LoginFailed,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ServiceKeyUnusable,
)
from likeness.service.forms import StrictJSONRoute
from likeness.service.i18n import LANGUAGES, pick_language, translator
from likeness.service.job_kinds import RENDER_FLAGS
from likeness.service.jobs import FREE_RELEASES, page_cursor
from likeness.service.ledger_scope import scoped_events
from likeness.service.roles import Permission, allows
from likeness.service.security import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    check_csrf,
)
from likeness.service.service_keys import service_key
from likeness.service.verdicts import verdict_headline
from likeness.service.worker import JOB_KINDS

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["verdict_headline"] = verdict_headline
log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, route_class=StrictJSONRoute)
READ, VERIFY, RENDER, USERS = Permission.READ, Permission.VERIFY, Permission.RENDER, Permission.MANAGE_USERS
FONT_FILES = ("NanumGothic.ttf", "NanumGothicBold.ttf")
#: The console's dashboard; ``/`` is the public verification page (``likeness.service.public``).
CONSOLE_HOME = "/console"

VERDICT_TONES = {
    "authorized-synthetic": "good",
    "no-enrolled-artist": "neutral",
    "no-face": "neutral",
    "synthetic-other-issuer": "info",
    "synthetic-consent-revoked": "warn",
    "enrolled-artist-unlabelled": "bad",
    "enrolled-artist-suspected-manipulation": "bad",
    "suspected-manipulation": "bad",
    "tampered": "bad",
    "error": "bad",
}


def language(request: Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def render(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200, principal: Principal | None = None
) -> HTMLResponse:
    lang = language(request)
    _ = translator(lang)
    base = {
        "lang": lang,
        "_": _,
        "principal": principal,
        "path": request.url.path,
        "can_verify": principal is not None and allows(principal.role, VERIFY),
        "can_render": principal is not None and allows(principal.role, RENDER),
        "csrf_token": principal.session.csrf_token if principal and principal.session else "",
        "verdict_tones": VERDICT_TONES,
        "use_label": lambda use: _(use_words(use)),
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (no scheme, host or ``//``), else ``default``."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


#: A command-line flag in a sentence (``--org``, ``--owner-org``): a browser may break a line
#: after its hyphens, which leaves ``--`` at a line's end and a flag no one can copy.
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")


def flags_unbroken(text: str) -> Markup:
    """``text``, escaped, with each command-line flag in a ``<span class="flag">`` that the
    stylesheet keeps on one line (the rest of the text still wraps).

    >>> str(flags_unbroken("name it with --org <slug>"))
    'name it with <span class="flag">--org</span> &lt;slug&gt;'
    """
    return Markup(FLAG.sub(lambda found: f'<span class="flag">{found.group()}</span>', str(escape(text))))


templates.env.filters["flags_unbroken"] = flags_unbroken


def error_page(
    request: Request,
    status: int,
    title: str,
    sentence: str,
    detail: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The console's answer for an error (sign-in needed: a redirect to the login page): the
    problem type's title and sentence (``problems.page_sentence``) in the page's language, and
    its English ``detail`` (what the API sends, naming the specific things) on a smaller line."""
    if status == 401:
        if request.url.path.startswith("/portal"):  # a rights holder signs in with their passkey
            return RedirectResponse("/portal", status_code=303)
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    try:
        principal = current_principal(request)
    except NotAuthenticated:  # a broken token header: show the page without a user
        principal = None
    response = render(
        request,
        "error.html",
        {"status": status, "title": title, "sentence": sentence, "detail": detail},
        status=status,
        principal=principal,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


# --- sign in and out, language -------------------------------------------------------------
@router.get("/login", **public())
def login_form(request: Request, next: str = CONSOLE_HOME) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request, "login.html", {"next": local_path(next, CONSOLE_HOME), "login_csrf": token, "error": None}
    )
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login", **public())
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = CONSOLE_HOME,
) -> Response:
    services = request.app.state.services
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not same_secret(cookie, csrf_token):
        raise CsrfFailed("the sign-in form expired; reload it and try again")
    client = request.client.host if request.client else "unknown"
    name = username.strip().lower()  # one spelling for the limiter and the lookup
    devices_key = _devices_key(services.workspace)
    device = trusted_device(devices_key, name, request.cookies.get(DEVICE_COOKIE))
    # A browser this user signed in from before keeps its own count (see likeness.service.devices).
    address_key, user_key, device_key = f"ip:{client}", f"user:{name}", f"device:{device}"
    keys = (device_key,) if device else (address_key, user_key)
    try:
        # counted before the password is checked: guesses sent at once cannot all pass the limit
        attempted_at = services.login_limiter.take(*keys, what="sign-in attempts")
    except RateLimited as refused:
        if refused.first:  # one ledger event per refused window, not one per request
            services.accounts.record_failed_login(name, "rate_limited", client=client)
        raise
    try:
        user = services.accounts.authenticate(name, password, client=client)
    except LoginFailed:
        _ = translator(language(request))
        return render(
            request,
            "login.html",
            {"next": local_path(next, CONSOLE_HOME), "login_csrf": cookie, "error": _("Wrong user name or password.")},
            status=401,
        )
    if device:
        services.login_limiter.reset(device_key)
    else:
        services.login_limiter.reset(user_key)
        services.login_limiter.give_back(address_key, attempted_at)  # staff behind one address sign in freely
    secret, _session = services.accounts.start_session(user)
    response = RedirectResponse(local_path(next, CONSOLE_HOME), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, secret, max_age=12 * 3600)
    if devices_key is not None and not device:
        _set_cookie(
            request,
            response,
            DEVICE_COOKIE,
            device_cookie(devices_key, name),
            max_age=DEVICE_DAYS * 24 * 3600,
            path=DEVICE_COOKIE_PATH,
        )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout", **guard(READ, csrf_from_header=False))
def logout(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ, csrf_from_header=False))],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(principal, csrf_token)
    request.app.state.services.accounts.end_session(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}", **public())
def set_language(code: str, request: Request, next: str = "/") -> Response:
    if code not in LANGUAGES:
        raise NotFound(f"no language {code!r}: one of {', '.join(LANGUAGES)}")
    response = RedirectResponse(local_path(next), status_code=303)
    _set_cookie(request, response, LANG_COOKIE, code, max_age=365 * 86400, http_only=False)
    return response


@router.get("/static/fonts/{name}", **public())
def font(name: str) -> Response:
    """NanumGothic (SIL OFL), from the koreanize-matplotlib package the product ships."""
    if name not in FONT_FILES:
        raise NotFound(f"no font {name!r}")
    return Response(web_font(name), media_type="font/ttf", headers={"Cache-Control": "public, max-age=86400"})


@cache
def web_font(name: str) -> bytes:
    """The TTF as browsers accept it: the package's files carry empty VTT hinting-source tables
    (TSI0-TSI5) that Chromium's font sanitiser (OTS) rejects, so they are left out; the glyphs,
    metrics and hinting are unchanged."""
    import io

    from fontTools.ttLib import TTFont

    from likeness.provenance.visible_label import label_font_path

    font = TTFont(str(label_font_path().parent / name))
    for tag in [t for t in font.keys() if t.startswith("TSI")]:  # noqa: SIM118 (a TTFont, not a dict)
        del font[tag]
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _devices_key(workspace: Any) -> bytes | None:
    """The key of trusted-device cookies, or None when it cannot be used: sign-in then counts
    every browser by its user and address, as before device cookies. Refusing sign-in instead
    would lock every user out over a file's mode, while a forged device cookie buys only a
    count of its own, never a way in."""
    try:
        return service_key(workspace, "devices", create=True)
    except ServiceKeyUnusable as exc:
        log.error("sign-in trusts no device cookie: %s", exc)
        return None


def _set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int,
    http_only: bool = True,
    path: str = "/",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=http_only,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# --- pages ------------------------------------------------------------------------------
@router.get(CONSOLE_HOME, **guard(READ))
def dashboard(request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> Response:
    services = request.app.state.services
    org_id = principal.user.org_id
    running = services.queue.list(org_id=org_id, state="running", limit=20)
    queued = services.queue.list(org_id=org_id, state="queued", limit=20)
    verifications = [j for j in services.queue.list(org_id=org_id, kind="verify", limit=10)]
    soon = datetime.now(UTC) + timedelta(days=30)
    expiring = [
        g
        for g in services.workspace.registry.list_grants(org=principal.user.org_slug)
        if g.state == "active" and g.valid_until <= soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    ]
    return render(
        request,
        "dashboard.html",
        {"running": running, "queued": queued, "verifications": verifications, "expiring": expiring},
        principal=principal,
    )


@router.get("/jobs", **guard(READ))
def jobs_page(
    request: Request, principal: Annotated[Principal, Depends(require(READ))], before: str | None = None
) -> Response:
    jobs = request.app.state.services.queue.list(org_id=principal.user.org_id, limit=50, before=before)
    return render(
        request,
        "jobs.html",
        {"jobs": jobs, "next_before": page_cursor(jobs[-1]) if len(jobs) == 50 else None},
        principal=principal,
    )


@router.get("/jobs/{job_id}", **guard(READ))
def job_page(job_id: str, request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> Response:
    job = request.app.state.services.queue.get(job_id, org_id=principal.user.org_id)
    kind = JOB_KINDS.get(job.kind)
    can_cancel = not job.terminal and kind is not None and allows(principal.role, kind.permission)
    verification = (job.result or {}).get("verification") if job.kind == "verify" else None
    return render(
        request,
        "job.html",
        {
            "job": job,
            "verification": verification,
            "can_cancel": can_cancel,
            "free_releases": FREE_RELEASES,
            "evidence": (job.result or {}).get("evidence") or {},
            "train": train_outputs(request.app.state.services.workspace, job) if job.kind == "train" else {},
            "faceset_side": faceset_side(request.app.state.services.workspace, job) if job.kind == "extract" else "",
        },
        principal=principal,
    )


def faceset_side(workspace: Any, job: Any) -> str:
    """Where an extract job's faceset goes in a training: ``target`` for a performer's, else ``source``."""
    from likeness.errors import LikenessError

    try:
        kind = workspace.registry.get_subject(str(job.params.get("subject", ""))).kind
    except LikenessError:
        return "source"
    return "target" if kind == "performer" else "source"


def train_outputs(workspace: Any, job: Any) -> dict[str, Any]:
    """What a train job's folder shows so far: the latest preview, the plot, the preview grids."""
    from likeness.service.job_kinds import train_file, train_previews

    return {
        "latest": train_file(workspace, job.id, "preview_latest.png") is not None,
        "plot": train_file(workspace, job.id, "metrics.png") is not None,
        "previews": train_previews(workspace, job.id),
    }


@router.get("/jobs/{job_id}/upload", **guard(READ))
def job_upload(job_id: str, request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> Response:
    """The uploaded still of a verification or a render's target, for the result page (videos
    are not echoed back)."""
    from likeness.errors import ConfigError
    from likeness.service.job_kinds import job_upload_path

    services = request.app.state.services
    job = services.queue.get(job_id, org_id=principal.user.org_id)
    params = job.params
    if (
        job.kind not in ("verify", "render")
        or params.get("media_type") != "image"
        or params.get("container") not in IMAGE_TYPES
    ):
        raise NotFound(f"job {job_id} has no image to show")
    try:
        path = job_upload_path(services.workspace, params)
    except ConfigError:
        raise NotFound(f"job {job_id}: the upload is gone") from None
    return FileResponse(path, media_type=IMAGE_TYPES[params["container"]])


IMAGE_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif", "bmp": "image/bmp"}


@router.post(
    "/jobs/{job_id}/cancel",
    openapi_extra={"x-permission": "job-kind"},
    dependencies=[Depends(require(READ, csrf_from_header=False))],
)
def cancel_from_console(
    job_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(READ, csrf_from_header=False))],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(principal, csrf_token)
    queue = request.app.state.services.queue
    job = queue.get(job_id, org_id=principal.user.org_id)
    kind = JOB_KINDS.get(job.kind)
    if kind is None or not allows(principal.role, kind.permission):
        raise Forbidden(f"the {principal.role.value} role may not cancel {job.kind} jobs")
    queue.cancel(job_id, org_id=principal.user.org_id)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/verify", **guard(VERIFY))
def verify_form(request: Request, principal: Annotated[Principal, Depends(require(VERIFY))]) -> Response:
    limits = request.app.state.services.limits
    return render(
        request,
        "verify.html",
        {"image_mib": limits.image_bytes // (1024 * 1024), "video_mib": limits.video_bytes // (1024 * 1024)},
        principal=principal,
    )


@router.post(
    "/verify",
    **guard(VERIFY, csrf_from_header=False),
)
async def verify_upload(request: Request) -> Response:
    principal = require(VERIFY, csrf_from_header=False)(request)
    job = await accept_verification_upload(request, principal, csrf_header=None)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/consent", **guard(READ))
def consent_page(request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> Response:
    from likeness.service.consent_view import consent_overview

    overview = consent_overview(request.app.state.services.workspace, principal.user.org_id, principal.user.org_slug)
    return render(request, "consent.html", overview, principal=principal)


@router.get("/consent/photos/{slug}/{photo}", **guard(READ))
def reference_photo(
    slug: str, photo: str, request: Request, principal: Annotated[Principal, Depends(require(READ))]
) -> Response:
    """The kept head crop (160 px) of a reference photo of a subject the organisation sees."""
    from likeness.service.consent_view import consent_overview, reference_picture

    workspace = request.app.state.services.workspace
    overview = consent_overview(workspace, principal.user.org_id, principal.user.org_slug)
    subject = next((s for s in overview["subjects"] if s["slug"] == slug), None)
    path = reference_picture(workspace, subject["id"], photo) if subject else None
    if path is None:
        raise NotFound(f"no reference photo {photo[:64]!r} of {slug[:64]!r}")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/render", **guard(RENDER))
def render_form(
    request: Request, principal: Annotated[Principal, Depends(require(RENDER))], model: str = ""
) -> Response:
    from likeness.consent.vocabulary import FINAL_MEDIA_USES
    from likeness.service.job_kinds import exported_models

    models = exported_models(request.app.state.services.workspace, principal.user.org_id)
    limits = request.app.state.services.limits
    return render(
        request,
        "render.html",
        {
            "models": models,
            "picked": model,
            "uses": FINAL_MEDIA_USES,
            "image_mib": limits.image_bytes // (1024 * 1024),
            "video_mib": limits.video_bytes // (1024 * 1024),
        },
        principal=principal,
    )


@router.post(
    "/render",
    **guard(Permission.RENDER, csrf_from_header=False),
)
async def render_upload(request: Request) -> Response:
    principal = require(RENDER, csrf_from_header=False)(request)
    job = await accept_upload(
        request, principal, kind="render", csrf_header=None, fields=("model", "use"), flags=RENDER_FLAGS
    )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/ledger", **guard(READ))
def ledger_page(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ))],
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> Response:
    ledger = request.app.state.services.workspace.ledger
    head_seq, head_hash = ledger.head()
    page_size = 50
    start = max(0, head_seq - page_size) if after is None else max(0, after)
    events = scoped_events(
        request.app.state.services.workspace,
        ledger.page(after=start, limit=page_size),
        principal.user.org_id,
        manages_users=allows(principal.role, USERS),
    )
    chain = ledger.verify()
    return render(
        request,
        "ledger.html",
        {
            "events": list(reversed(events)),
            "head_seq": head_seq,
            "head_hash": head_hash,
            "chain": chain,
            "older": max(0, start - page_size) if start > 0 else None,
            "newer": start + page_size if start + page_size < head_seq else None,
        },
        principal=principal,
    )


def install_console(app: FastAPI) -> None:
    from likeness.service.studio import router as studio_router

    app.include_router(router)
    app.include_router(studio_router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.error_page = error_page
