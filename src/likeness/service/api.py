"""The JSON API under ``/api/v1``: routes parse, call one library function, map errors."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as Path_
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from likeness.service.accounts import MIN_PASSWORD_CHARS
from likeness.service.auth import guard, public, require
from likeness.service.consent_view import consent_overview
from likeness.service.errors import Forbidden, InvalidField, NotFound, ServiceError
from likeness.service.forms import StrictBody, StrictJSONRoute, unknown_fields
from likeness.service.job_kinds import (
    RENDER_FLAGS,
    exported_models,
    render_output_folder,
    train_file,
    uploads_root,
)
from likeness.service.jobs import FREE_RELEASES, JobQueue, JobView, page_cursor
from likeness.service.ledger_scope import scoped_events
from likeness.service.roles import Permission, Role, allows
from likeness.service.security import Principal, check_csrf
from likeness.service.uploads import TransferFloor, new_upload_folder, receive_upload
from likeness.service.worker import JOB_KINDS, job_folder
from likeness.train.recipes import MAX_ITERATIONS

router = APIRouter(prefix="/api/v1", route_class=StrictJSONRoute)
READ, VERIFY, RENDER, USERS = Permission.READ, Permission.VERIFY, Permission.RENDER, Permission.MANAGE_USERS


# --- models ------------------------------------------------------------------------------
class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    role: Role
    org: str
    active: bool


class MeOut(UserOut):
    acting_role: Role = Field(description="the role in force: a token's own role, else the user's")
    via: Literal["session", "token"]
    permissions: list[str]


class UserIn(StrictBody):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    password: str = Field(min_length=MIN_PASSWORD_CHARS, max_length=1024)
    role: Role
    display_name: str | None = Field(default=None, max_length=200)


class UserPatch(StrictBody):
    role: Role | None = None
    active: bool | None = Field(default=None, description="false: the user's sessions and tokens stop working")


class TokenIn(StrictBody):
    name: str = Field(min_length=1, max_length=100)
    role: Role | None = Field(default=None, description="the token's role: your own (default) or viewer")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    user: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class NewTokenOut(TokenOut):
    token: str = Field(description="the secret, shown only now: send it as 'Authorization: Bearer ...'")


class JobOut(BaseModel):
    id: str
    kind: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float
    message: str
    attempts: int
    max_attempts: int
    releases: int = Field(
        description=(
            "times a worker shutting down put the job back in the queue; the first "
            f"{FREE_RELEASES} are not counted as attempts, the ones after are"
        )
    )
    cancel_requested: bool
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None


class JobList(BaseModel):
    jobs: list[JobOut]
    next_before: str | None = Field(
        description="pass as 'before' for the next (older) page: the last job's created_at and id, joined by '~'"
    )


class LedgerEventOut(BaseModel):
    seq: int
    event_id: str
    event_type: str
    created_at: str
    payload: dict[str, Any] | None = Field(description="null for another organisation's event or an unreadable row")
    other_organisation: bool = Field(
        description="the event is not the reader's to read: another organisation's, or a failed sign-in under a name "
        "no user has (read whole by the workspace's admins only); only what the hash chain needs"
    )
    unreadable: str | None = Field(
        default=None,
        description="why the row's payload cannot be read (edited or appended outside likeness); null for a readable row",
    )
    prev_hash: str
    hash: str


class LedgerPage(BaseModel):
    events: list[LedgerEventOut]
    head_seq: int
    next_after: int | None = Field(description="pass as 'after' for the next page; null at the head")


class ChainOut(BaseModel):
    ok: bool
    rows: int
    head_hash: str
    broken_seq: int | None
    problem: str | None
    cause: str | None


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: str


# --- helpers -----------------------------------------------------------------------------
def job_out(job: JobView) -> dict[str, Any]:
    return job.as_dict()


def _queued(job: JobView) -> JSONResponse:
    """202 with the queued job, and where to follow it."""
    return JSONResponse(job_out(job), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


#: A render target keeps the suffix of what its bytes are (render decides image or video by it).
CONTAINER_SUFFIX = {
    "jpeg": ".jpg",
    "png": ".png",
    "webp": ".webp",
    "gif": ".gif",
    "bmp": ".bmp",
    "tiff": ".tif",
    "mp4": ".mp4",
    "matroska": ".mkv",
    "avi": ".avi",
    "mpegts": ".ts",
    "mpeg-ps": ".mpg",
    "flv": ".flv",
}


#: Kinds whose library call picks image or video by the file's suffix: the upload keeps the
#: suffix of what its bytes are.
SUFFIX_FROM_BYTES = ("render", "extract", "references")

#: What a yes/no form field takes, exactly: a check box sends "on" when ticked (and nothing when
#: not), an API client "true"/"false" or "1"/"0". Absent or empty is no.
FLAG_VALUES = {"true": True, "on": True, "1": True, "false": False, "0": False, "": False}


def form_flags(sent: dict[str, str], names: Collection[str]) -> dict[str, bool]:
    """The yes/no fields ``names`` of a form as booleans; another value is a 422 naming the field.

    >>> form_flags({"mouth": "on", "eyes": "false"}, ("mouth", "eyes", "other"))
    {'mouth': True, 'eyes': False, 'other': False}
    """
    flags = {}
    for name in names:
        text = sent.get(name, "")
        if text not in FLAG_VALUES:
            raise InvalidField(f"{name} {text[:20]!r}: expected true, on or 1, or false or 0 (or leave it out)")
        flags[name] = FLAG_VALUES[text]
    return flags


async def accept_upload(
    request: Request,
    principal: Principal,
    *,
    kind: str,
    csrf_header: str | None,
    fields: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
    choices: dict[str, Collection[str]] | None = None,
) -> JobView:
    """Stream an upload to the workspace and queue a ``kind`` job for it. The CSRF token
    (sessions only) comes from the header or from a form field sent before the file, as do the
    job's ``fields`` (and ``optional`` ones, kept when sent; ``flags``, yes/no fields kept as
    booleans, see ``form_flags``; any other field is refused, see
    ``forms.unknown_fields``); ``extra`` are parameters the route already knows; a field named in
    ``choices`` must be one of its values (else 404, before any byte of the file is written)."""
    svc = request.app.state.services
    svc.upload_limiter.take(f"user:{principal.user.id}", what="uploads")
    folder = new_upload_folder(uploads_root(svc.workspace))
    known = (*fields, *optional, *flags)

    def before_file(sent: dict[str, str]) -> None:
        check_csrf(principal, csrf_header or sent.get("csrf_token"))
        unknown_fields(sent, known)
        missing = [name for name in fields if not sent.get(name, "").strip()]
        if missing:
            raise ServiceError(f"send the form fields {', '.join(missing)} before the file")
        for name, allowed in (choices or {}).items():
            if sent.get(name, "").strip() not in allowed:
                raise NotFound(f"no {name} {sent.get(name, '').strip()[:64]!r} for your organisation")
        form_flags(sent, flags)

    if csrf_header is not None:
        check_csrf(principal, csrf_header)
    length = request.headers.get("content-length")
    with svc.uploads.hold(f"user:{principal.user.id}"):
        upload = await receive_upload(
            request.headers.get("content-type"),
            request.stream(),
            folder,
            svc.limits,
            declared_length=int(length) if length and length.isdigit() else None,
            before_file=before_file,
            # Footage may come slowly over a studio's link, so no deadline: a floor far below any
            # studio's link instead, over a long window (a 2 GiB upload at 1 Mbit/s takes 4.8 h and
            # passes); a client dripping a byte now and then would hold its part file for ever.
            floor=TransferFloor(
                bytes_per_s=svc.settings.upload_min_bytes_per_s,
                window_s=svc.settings.upload_rate_window_s,
                started=time.monotonic(),
            ),
            idle_s=svc.settings.upload_idle_timeout_s,
        )
    try:  # a field sent after the file is read only now
        unknown_fields(upload.fields, known)
        booleans = form_flags(upload.fields, flags)
    except InvalidField:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    path = upload.path
    if kind in SUFFIX_FROM_BYTES and path.suffix.lower() != CONTAINER_SUFFIX.get(upload.container, path.suffix.lower()):
        path = path.rename(path.with_name(path.stem + CONTAINER_SUFFIX[upload.container]))
    params = {
        "upload": f"{folder.name}/{path.name}",
        "name": upload.original_name,
        "media_type": upload.media_type,
        "container": upload.container,
        "size_bytes": upload.size_bytes,
        **{name: upload.fields[name].strip() for name in fields},
        **{name: upload.fields[name].strip() for name in optional if upload.fields.get(name, "").strip()},
        **booleans,
        **(extra or {}),
    }
    return await run_in_threadpool(
        svc.queue.enqueue,
        kind,
        params,
        org_id=principal.user.org_id,
        created_by=principal.user.id,
    )


async def accept_verification_upload(request: Request, principal: Principal, *, csrf_header: str | None) -> JobView:
    return await accept_upload(request, principal, kind="verify", csrf_header=csrf_header)


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "image or video; the type is read from its bytes",
                        }
                    },
                }
            }
        },
    }
}


# --- routes ------------------------------------------------------------------------------
@router.get("/health", response_model=HealthOut, **public())
def health(request: Request) -> dict[str, Any]:
    """The service is up and its database answers."""
    workspace = request.app.state.services.workspace
    workspace.ledger.head()
    return {"status": "ok", "database": workspace.engine.dialect.name}


@router.get("/me", response_model=MeOut, **guard(READ))
def me(principal: Annotated[Principal, Depends(require(READ))]) -> dict[str, Any]:
    """Who is asking, with which role in force."""
    return {
        **principal.user.as_dict(),
        "acting_role": principal.role.value,
        "via": principal.via,
        "permissions": sorted(p.value for p in Permission if allows(principal.role, p)),
    }


@router.get("/users", response_model=list[UserOut], **guard(USERS))
def list_users(request: Request, principal: Annotated[Principal, Depends(require(USERS))]) -> list[dict[str, Any]]:
    """The users of your organisation."""
    return [u.as_dict() for u in request.app.state.services.accounts.list_users(principal.user.org_id)]


@router.post("/users", response_model=UserOut, status_code=201, **guard(USERS))
def add_user(
    body: UserIn, request: Request, principal: Annotated[Principal, Depends(require(USERS))]
) -> dict[str, Any]:
    """Add a user to your organisation (on the ledger)."""
    accounts = request.app.state.services.accounts
    try:
        user = accounts.add_user(
            body.username,
            body.password,
            body.role,
            org=principal.user.org_id,
            display_name=body.display_name,
            actor=principal.user.username,
        )
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    return user.as_dict()


@router.patch("/users/{username}", response_model=UserOut, **guard(USERS))
def change_user(
    username: str, body: UserPatch, request: Request, principal: Annotated[Principal, Depends(require(USERS))]
) -> dict[str, Any]:
    """Change a user's role, or deactivate or reactivate them (on the ledger). Not yourself."""
    accounts = request.app.state.services.accounts
    user = accounts.get_user(username)
    if user.org_id != principal.user.org_id:
        raise NotFound(f"no user {username!r}")
    if body.role is not None:
        user = accounts.set_role(username, body.role, actor=principal.user)
    if body.active is not None:
        user = accounts.set_active(username, body.active, actor=principal.user)
    return user.as_dict()


@router.get("/tokens", response_model=list[TokenOut], **guard(READ))
def list_tokens(request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> list[dict[str, Any]]:
    """Your API tokens (an admin sees the organisation's)."""
    accounts = request.app.state.services.accounts
    if allows(principal.role, USERS):
        tokens = accounts.list_tokens(org_id=principal.user.org_id)
    else:
        tokens = accounts.list_tokens(user=principal.user)
    return [t.as_dict() for t in tokens]


@router.post("/tokens", response_model=NewTokenOut, status_code=201, **guard(READ))
def create_token(
    body: TokenIn, request: Request, principal: Annotated[Principal, Depends(require(READ))]
) -> dict[str, Any]:
    """A new API token for yourself, scoped to your role or to viewer (on the ledger). A token
    cannot make a token with more than its own role."""
    role = body.role or principal.role
    if principal.via == "token" and role != principal.role and role != Role.VIEWER:
        raise Forbidden("a token may only create tokens of its own role or viewer")
    secret, info = request.app.state.services.accounts.create_token(
        principal.user, body.name, role, expires_in_days=body.expires_in_days
    )
    return {**info.as_dict(), "token": secret}


@router.delete("/tokens/{token_id}", response_model=TokenOut, **guard(READ))
def revoke_token(
    token_id: str, request: Request, principal: Annotated[Principal, Depends(require(READ))]
) -> dict[str, Any]:
    """Revoke one of your tokens (an admin: any token of the organisation)."""
    return request.app.state.services.accounts.revoke_token(
        token_id, actor=principal.user, any_in_org=allows(principal.role, USERS)
    ).as_dict()


@router.post(
    "/verifications",
    response_model=JobOut,
    status_code=202,
    openapi_extra={**UPLOAD_BODY, "x-permission": VERIFY.value},
    dependencies=[Depends(require(VERIFY, csrf_from_header=False))],
)
async def create_verification(request: Request) -> JSONResponse:
    """Upload an image or video and queue its verification (the job's result is what
    ``likeness verify --json`` prints, and an evidence pack)."""
    principal = require(VERIFY, csrf_from_header=False)(request)
    job = await accept_verification_upload(request, principal, csrf_header=request.headers.get("x-csrf-token"))
    return _queued(job)


class SubjectOut(BaseModel):
    id: str
    slug: str
    name: str
    kind: str
    holder: str
    owned: bool = Field(description="the organisation owns this subject (a virtual idol)")
    references: int = Field(description="reference photos bound to the ledger")


class GrantOut(BaseModel):
    id: str
    subject_slug: str
    org_slug: str
    holder_slug: str
    uses: list[str]
    valid_from: str
    valid_until: str
    max_renders: int | None
    renders_used: int
    allow_unlabelled: bool
    purpose: str
    issued_at: str
    signature_sha256: str
    state: str = Field(description="active, revoked, expired, not_yet_valid or altered (docs/consent.md)")
    revoked_at: str | None


class ReleaseOut(BaseModel):
    id: str
    performer_slug: str
    org_slug: str
    valid_from: str
    valid_until: str
    purpose: str
    issued_at: str
    state: str
    revoked_at: str | None


@router.get("/subjects", response_model=list[SubjectOut], **guard(READ))
def list_subjects(request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> list[dict[str, Any]]:
    """Subjects your organisation owns or holds a grant or release for."""
    return consent_overview(request.app.state.services.workspace, principal.user.org_id, principal.user.org_slug)[
        "subjects"
    ]


@router.get("/grants", response_model=list[GrantOut], **guard(READ))
def list_grants(request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> list[dict[str, Any]]:
    """Grants to your organisation, with their state as the policy engine decides it."""
    return consent_overview(request.app.state.services.workspace, principal.user.org_id, principal.user.org_slug)[
        "grants"
    ]


@router.get("/releases", response_model=list[ReleaseOut], **guard(READ))
def list_releases(request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> list[dict[str, Any]]:
    """Performer releases to your organisation, with their state."""
    return consent_overview(request.app.state.services.workspace, principal.user.org_id, principal.user.org_slug)[
        "releases"
    ]


class ModelOut(BaseModel):
    id: str = Field(description="the model.exported ledger event's id: pass it as 'model' to POST /renders")
    subject: str | None
    performer: str | None
    architecture: str | None
    resolution: int | None
    exported_at: str


@router.get("/models", response_model=list[ModelOut], **guard(READ))
def list_models(request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> list[dict[str, Any]]:
    """The face-swap models your organisation exported (from the ledger), newest first."""
    models = exported_models(request.app.state.services.workspace, principal.user.org_id)
    return [{k: v for k, v in m.items() if not k.startswith("_")} for m in models]


RENDER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "use", "file"],
                    "properties": {
                        "model": {
                            "type": "string",
                            "description": "a model id from GET /models (send before the file)",
                        },
                        "use": {
                            "type": "string",
                            "description": "a final-media use the grant names (send before the file)",
                        },
                        "mouth": {
                            "type": "string",
                            "enum": list(FLAG_VALUES),
                            "description": "likeness render --mouth: keep the performer's open inner mouth (teeth, "
                            "tongue), for speech and singing (default false; send before the file)",
                        },
                        "eyes": {
                            "type": "string",
                            "enum": list(FLAG_VALUES),
                            "description": "likeness render --eyes: let the performer's closing eyelids show "
                            "through, so the output blinks; video only (default false; send before the file)",
                        },
                        "thin_rims": {
                            "type": "string",
                            "enum": list(FLAG_VALUES),
                            "description": "likeness render --thin-rims: also keep thin metal and light spectacle "
                            "rims in front of the swap, models of 128 px and more; costs a ring of the swap round "
                            "each rim, some wrinkle lines inside the lenses and about 4x the occlusion mask's time "
                            "(default false; send before the file)",
                        },
                        "file": {"type": "string", "format": "binary", "description": "the target image or video"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/renders",
    response_model=JobOut,
    status_code=202,
    openapi_extra={**RENDER_BODY, "x-permission": Permission.RENDER.value},
    dependencies=[Depends(require(Permission.RENDER, csrf_from_header=False))],
)
async def create_render(request: Request) -> JSONResponse:
    """Upload a target and queue a render of one of your models onto it. The job asks the
    consent policy exactly as ``likeness render`` does (grant, use, release, render limit) for
    your organisation; a refusal is the job's error. ``mouth``, ``eyes`` and ``thin_rims`` are
    ``likeness render --mouth/--eyes/--thin-rims``."""
    principal = require(Permission.RENDER, csrf_from_header=False)(request)
    job = await accept_upload(
        request,
        principal,
        kind="render",
        csrf_header=request.headers.get("x-csrf-token"),
        fields=("model", "use"),
        flags=RENDER_FLAGS,
    )
    return _queued(job)


def _multipart_body(
    fields: dict[str, str], file_description: str, optional: dict[str, str] | None = None
) -> dict[str, Any]:
    """An ``openapi_extra`` request body: text ``fields`` and ``optional`` ones (sent before the
    file), then ``file``."""
    described = {**fields, **(optional or {})}
    properties: dict[str, Any] = {name: {"type": "string", "description": text} for name, text in described.items()}
    properties["file"] = {"type": "string", "format": "binary", "description": file_description}
    schema = {"type": "object", "required": [*fields, "file"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def visible_subjects(request: Request, principal: Principal) -> set[str]:
    """The slugs of the subjects the organisation owns or holds a grant or release for."""
    overview = consent_overview(request.app.state.services.workspace, principal.user.org_id, principal.user.org_slug)
    return {s["slug"] for s in overview["subjects"]}


def _visible_subject(request: Request, principal: Principal, slug: str) -> str:
    """``slug`` when the organisation owns the subject or holds a grant or release for it."""
    if slug not in visible_subjects(request, principal):
        raise NotFound(f"no subject {slug!r} for your organisation")
    return slug


@router.post(
    "/subjects/{slug}/references",
    response_model=JobOut,
    status_code=202,
    openapi_extra={
        **_multipart_body({}, "a photo (or a short video) showing only the subject's face"),
        "x-permission": RENDER.value,
    },
    dependencies=[Depends(require(RENDER, csrf_from_header=False))],
)
async def add_reference(slug: Annotated[str, Path_(max_length=64)], request: Request) -> JSONResponse:
    """Upload a reference photo of a subject and queue its enrolment (``likeness subject photos
    add``). It needs the consent an extraction of the subject needs (the performer's release, or
    a training grant), checked by the job."""
    principal = require(RENDER, csrf_from_header=False)(request)
    subject = await run_in_threadpool(_visible_subject, request, principal, slug)
    job = await accept_upload(
        request,
        principal,
        kind="references",
        csrf_header=request.headers.get("x-csrf-token"),
        extra={"subject": subject},
    )
    return _queued(job)


@router.post(
    "/extractions",
    response_model=JobOut,
    status_code=202,
    openapi_extra={
        **_multipart_body(
            {"subject": "the subject slug whose faces to extract (send before the file)"},
            "consented footage: an image or a video",
            optional={"dedup": "near-duplicate limit in perceptual-hash bits, -1 keeps duplicates (default 3)"},
        ),
        "x-permission": RENDER.value,
    },
    dependencies=[Depends(require(RENDER, csrf_from_header=False))],
)
async def create_extraction(request: Request) -> JSONResponse:
    """Upload footage and queue the extraction of a subject's faces into a faceset (``likeness
    extract``): the policy engine asks for the performer's release or the subject's training
    grant to your organisation, and rechecks it while it runs; a refusal is the job's error."""
    principal = require(RENDER, csrf_from_header=False)(request)
    job = await accept_upload(
        request,
        principal,
        kind="extract",
        csrf_header=request.headers.get("x-csrf-token"),
        fields=("subject",),
        optional=("dedup",),
    )
    return _queued(job)


class TrainingIn(StrictBody):
    source: str = Field(pattern=r"^[0-9a-f]{32}$", description="the extract job of the consenting subject's faceset")
    target: str = Field(pattern=r"^[0-9a-f]{32}$", description="the extract job of the released performer's faceset")
    recipe: str | None = Field(default=None, max_length=40, description="a recipe name (docs/training.md)")
    model: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,32}$", description="architecture: df, liae, ...")
    resolution: Literal[64, 96, 128, 256] | None = None
    iterations: int | None = Field(default=None, ge=1, le=MAX_ITERATIONS)
    minutes: float | None = Field(default=None, gt=0, le=7 * 24 * 60)
    batch_size: int | None = Field(default=None, ge=1, le=512)
    checkpoint_every: int | None = Field(default=None, ge=1, le=1_000_000)
    preview_every: int | None = Field(default=None, ge=0, le=1_000_000)
    identity_metrics: bool | None = None
    expression_metrics: bool | None = None
    accept_gaps: bool = Field(default=False, description="train although the source lacks what the performer does")


class ExportIn(StrictBody):
    model: str = Field(pattern=r"^[0-9a-f]{32}$", description="the train job whose model to export")


def _own_job(queue: JobQueue, principal: Principal, job_id: str, kind: str) -> JobView:
    job = queue.get(job_id, org_id=principal.user.org_id)
    if job.kind != kind:
        raise NotFound(f"no {kind} job {job_id!r}")
    return job


def queue_training(queue: JobQueue, principal: Principal, body: TrainingIn) -> JobView:
    """Queue a train job on two of the organisation's extract jobs (the API's and the console's
    one way to start training; the job asks the policy engine)."""
    for job_id in (body.source, body.target):
        _own_job(queue, principal, job_id, "extract")
    params = body.model_dump(exclude_none=True)
    return queue.enqueue("train", params, org_id=principal.user.org_id, created_by=principal.user.id)


def queue_export(queue: JobQueue, principal: Principal, body: ExportIn) -> JobView:
    """Queue the export of one of the organisation's train jobs (API and console alike)."""
    _own_job(queue, principal, body.model, "train")
    return queue.enqueue("export", {"model": body.model}, org_id=principal.user.org_id, created_by=principal.user.id)


@router.post("/trainings", response_model=JobOut, status_code=202, **guard(RENDER))
def create_training(
    body: TrainingIn, request: Request, principal: Annotated[Principal, Depends(require(RENDER))]
) -> JSONResponse:
    """Queue the training of a face-swap model (``likeness train``) on two facesets your
    organisation extracted. The policy engine authorizes the subject's training use and the
    performer's release; previews and the loss plot appear as the job's outputs."""
    return _queued(queue_training(request.app.state.services.queue, principal, body))


@router.post("/exports", response_model=JobOut, status_code=202, **guard(RENDER))
def create_export(
    body: ExportIn, request: Request, principal: Annotated[Principal, Depends(require(RENDER))]
) -> JSONResponse:
    """Queue the ONNX export of a trained model (``likeness model export``); once done it is
    listed by ``GET /models`` for renders."""
    return _queued(queue_export(request.app.state.services.queue, principal, body))


@router.get("/jobs", response_model=JobList, **guard(READ))
def list_jobs(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ))],
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    kind: str | None = Query(default=None, max_length=32),
    limit: int = Query(default=50, ge=1, le=200),
    before: str | None = Query(default=None, max_length=80),
) -> dict[str, Any]:
    """Your organisation's jobs, newest first."""
    jobs = request.app.state.services.queue.list(
        org_id=principal.user.org_id, state=state, kind=kind, limit=limit, before=before
    )
    return {"jobs": [job_out(j) for j in jobs], "next_before": page_cursor(jobs[-1]) if len(jobs) == limit else None}


@router.get("/jobs/{job_id}", response_model=JobOut, **guard(READ))
def get_job(job_id: str, request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> dict[str, Any]:
    return job_out(request.app.state.services.queue.get(job_id, org_id=principal.user.org_id))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    openapi_extra={"x-permission": "job-kind"},
    dependencies=[Depends(require(READ))],
)
def cancel_job(
    job_id: str, request: Request, principal: Annotated[Principal, Depends(require(READ))]
) -> dict[str, Any]:
    """Cancel a job: needs the permission that creating its kind needs."""
    queue = request.app.state.services.queue
    job = queue.get(job_id, org_id=principal.user.org_id)
    kind = JOB_KINDS.get(job.kind)
    if kind is None or not allows(principal.role, kind.permission):
        raise Forbidden(f"the {principal.role.value} role may not cancel {job.kind} jobs")
    return job_out(queue.cancel(job_id, org_id=principal.user.org_id))


@router.get(
    "/jobs/{job_id}/events",
    **guard(READ),
    responses={
        200: {
            "description": "Server-Sent Events: 'job' with the job's state, then 'end'",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    """The job's state as Server-Sent Events, until it finishes."""
    principal = require(READ)(request)
    queue = request.app.state.services.queue
    await run_in_threadpool(queue.get, job_id, org_id=principal.user.org_id)  # 404 before streaming

    async def stream():
        last, quiet = None, 0.0
        while True:
            job = await run_in_threadpool(queue.get, job_id, org_id=principal.user.org_id)
            body = json.dumps(job_out(job), ensure_ascii=False)
            if body != last:
                yield f"event: job\ndata: {body}\n\n"
                last, quiet = body, 0.0
            elif quiet >= 15:
                yield ": still here\n\n"
                quiet = 0.0
            if job.terminal:
                yield "event: end\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.5)
            quiet += 0.5

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


EVIDENCE_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8", "zip": "application/zip"}
#: The evidence report is self-contained HTML with inline styles and data: images, no script.
EVIDENCE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


def evidence_file(services: Any, principal: Principal, job_id: str, fmt: str) -> Path:
    job = services.queue.get(job_id, org_id=principal.user.org_id)
    name = ((job.result or {}).get("evidence") or {}).get(fmt)
    if job.kind != "verify" or not name:
        raise NotFound(f"job {job_id} has no {fmt} evidence")
    path = job_folder(services.workspace, job.id) / "evidence" / Path(name).name
    if not path.is_file():
        raise NotFound(f"job {job_id}: the {fmt} evidence file is gone")
    return path


@router.get(
    "/jobs/{job_id}/evidence/{fmt}",
    **guard(READ),
    responses={
        200: {
            "description": "the evidence pack file",
            "content": {
                t.split(";")[0]: {"schema": {"type": "string", "format": "binary"}} for t in EVIDENCE_TYPES.values()
            },
        }
    },
)
def job_evidence(
    job_id: str,
    fmt: Literal["json", "html", "zip"],
    request: Request,
    principal: Annotated[Principal, Depends(require(READ))],
) -> FileResponse:
    """A verification's evidence pack: the JSON result, the HTML report or the zip."""
    path = evidence_file(request.app.state.services, principal, job_id, fmt)
    headers = {"Content-Security-Policy": EVIDENCE_CSP} if fmt == "html" else {}
    disposition = "inline" if fmt in ("html", "json") else "attachment"
    return FileResponse(
        path, media_type=EVIDENCE_TYPES[fmt], headers=headers, content_disposition_type=disposition, filename=path.name
    )


@router.get(
    "/jobs/{job_id}/outputs/{name}",
    **guard(READ),
    responses={
        200: {
            "description": "a labelled render output or its report (header Digest-SHA256), or a train job's preview or metrics",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("application/octet-stream", "image/png", "image/jpeg", "video/mp4", "text/csv")
            },
        }
    },
)
def job_output(
    job_id: str, name: str, request: Request, principal: Annotated[Principal, Depends(require(READ))]
) -> FileResponse:
    """A render's output (watermarked, C2PA-signed, labelled) or its report, with its SHA-256;
    or a train job's preview grids (labelled and watermarked like a render), metrics plot and
    table, available while it trains."""
    services = request.app.state.services
    job = services.queue.get(job_id, org_id=principal.user.org_id)
    path, digest = output_path(services.workspace, job, name)
    headers = {"Digest-SHA256": digest} if digest else {}
    if name.endswith(".html"):
        headers["Content-Security-Policy"] = EVIDENCE_CSP
    return FileResponse(
        path,
        headers=headers,
        filename=path.name,
        content_disposition_type="inline" if name.endswith((".html", ".json", ".png", ".csv")) else "attachment",
    )


def output_path(workspace: Any, job: JobView, name: str) -> tuple[Path, str | None]:
    """(file, its SHA-256 when the job recorded one) of output ``name`` of ``job``; only names
    the job's kind publishes, inside the job's own folder."""
    if job.kind == "train":
        found = train_file(workspace, job.id, name)
        if found is None:
            raise NotFound(f"job {job.id} has no output {name!r} (yet)")
        return found, None
    result = job.result or {}
    known = {o["name"]: o.get("sha256") for o in result.get("outputs", [])}
    known.update({n: None for n in (result.get("report") or {}).values() if n})
    if job.kind != "render" or name not in known:
        raise NotFound(f"job {job.id} has no output {name!r}")
    path = render_output_folder(workspace, job.id) / Path(name).name
    if not path.is_file():
        raise NotFound(f"job {job.id}: {name} is gone")
    return path, known[name]


@router.get("/ledger", response_model=LedgerPage, **guard(READ))
def ledger_page(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ))],
    after: int = Query(default=0, ge=0, le=2**62, description="events after this sequence number"),
    limit: int = Query(default=100, ge=1, le=500),
    event_type: str | None = Query(default=None, max_length=64),
) -> dict[str, Any]:
    """Page through the ledger in order; another organisation's events come without their
    payload (``other_organisation``), so the chain can still be followed."""
    services = request.app.state.services
    events = services.workspace.ledger.page(after=after, limit=limit, event_type=event_type)
    head_seq, _ = services.workspace.ledger.head()
    return {
        "events": scoped_events(
            services.workspace,
            events,
            principal.user.org_id,
            manages_users=allows(principal.role, USERS),
        ),
        "head_seq": head_seq,
        "next_after": events[-1].seq if len(events) == limit and events[-1].seq < head_seq else None,
    }


@router.get("/ledger/verify", response_model=ChainOut, **guard(READ))
def ledger_verify(request: Request) -> dict[str, Any]:
    """Recompute the hash chain (``likeness audit verify``'s first check)."""
    report = request.app.state.services.workspace.ledger.verify()
    return {
        "ok": report.ok,
        "rows": report.rows,
        "head_hash": report.head_hash,
        "broken_seq": report.broken_seq,
        "problem": report.problem,
        "cause": report.cause,
    }


@router.get(
    "/ledger/head",
    **guard(READ),
    responses={
        200: {
            "description": "the signed head (as 'likeness audit head' writes it)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
def ledger_head(request: Request, principal: Annotated[Principal, Depends(require(READ))]) -> JSONResponse:
    """The ledger head signed with your organisation's key, to keep outside the workspace."""
    workspace = request.app.state.services.workspace
    return JSONResponse(workspace.signed_head(principal.user.org_slug))
