"""The rights-holder portal (``/portal``): passkeys, grant requests in plain words, signing,
transparency and revocation, phone-first, in Korean and English.

The holder is a principal of their own (cookie ``likeness_holder``, path ``/portal``), never a
service user: no service role reaches these routes, and no holder session reaches the agency's.
Every signature is a WebAuthn assertion over the digest of the exact payload shown
(``likeness.consent.holder_portal``); the agency's side (``/api/v1/portal/...`` and the
``/consent/holders`` page) can only invite and ask.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, BinaryIO
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import Field, ValidationError
from starlette.datastructures import UploadFile

from likeness import strict_json
from likeness.consent.canonical import now_utc, parse_utc
from likeness.consent.holder_portal import (
    MADE_PAGE,
    HolderPortal,
    RelyingParty,
    assertion_from_response,
    verify_registration,
)
from likeness.consent.integrity import RECOVERY_PURPOSE
from likeness.consent.passkeys import PASSKEY_ONLY, b64url, unb64url
from likeness.consent.tables import HolderSession
from likeness.consent.vocabulary import USE_WORDS, USES
from likeness.errors import ConsentError, MediaError, RegistryError
from likeness.service.auth import guard, require
from likeness.service.errors import AlreadyDecided, Conflict, CsrfFailed, NotAuthenticated, NotFound, ServiceError
from likeness.service.forms import StrictBody, StrictJSONRoute, unknown_fields
from likeness.service.kept_files import kept_paths, read_kept_file
from likeness.service.problems import PAGE_SENTENCES
from likeness.service.roles import Permission
from likeness.service.security import Principal, check_csrf
from likeness.service.verdicts import N_

HOLDER_COOKIE = "likeness_holder"
HOLDER: dict[str, Any] = {"openapi_extra": {"x-permission": "holder"}}
ASK = Permission.REQUEST_CONSENT
router = APIRouter(include_in_schema=False, route_class=StrictJSONRoute)
api = APIRouter(prefix="/api/v1/portal", tags=["portal"], route_class=StrictJSONRoute)


def relying_party(settings: Any) -> RelyingParty:
    origin = settings.portal_origin.rstrip("/")
    return RelyingParty(settings.portal_rp_id or (urlsplit(origin).hostname or "localhost"), origin)


def portal_of(request: Request) -> HolderPortal:
    services = request.app.state.services
    portal = getattr(services, "holder_portal", None)
    if portal is None:
        portal = HolderPortal(services.workspace)
        services.holder_portal = portal
    return portal


def holder_session(request: Request) -> HolderSession | None:
    return portal_of(request).session_for(request.cookies.get(HOLDER_COOKIE, ""))


def require_holder(request: Request) -> HolderSession:
    """The signed-in holder; JSON calls must carry the session's CSRF token in ``X-CSRF-Token``."""
    session = holder_session(request)
    if session is None:
        raise NotAuthenticated("sign in to the portal with your passkey")
    if request.method == "POST" and request.url.path.startswith("/portal/api/"):
        _check_holder_csrf(session, request.headers.get("x-csrf-token"))
    return session


require_holder.permission = "holder"  # type: ignore[attr-defined]  # an access check (forms.access_checks)


def _check_holder_csrf(session: HolderSession, supplied: str | None) -> None:
    from likeness.service.accounts import same_secret

    if not supplied or not same_secret(session.csrf_token, supplied):
        raise CsrfFailed("missing or wrong CSRF token for the portal")


Holder = Annotated[HolderSession, Depends(require_holder)]


def page(request: Request, name: str, context: dict[str, Any], *, session: HolderSession | None = None) -> Response:
    from likeness.service.console import language, render

    holder = portal_of(request).registry.get_holder(session.holder_id) if session else None
    return render(
        request,
        name,
        {
            "holder": holder,
            "holder_csrf": session.csrf_token if session else "",
            "home": "/portal",
            "day": lambda stamp, end=True: _date(stamp, language(request), end=end),
            "problem_sentences": PAGE_SENTENCES,
            **context,
        },
    )


def _set_holder_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        HOLDER_COOKIE,
        token,
        max_age=12 * 3600,
        path="/portal",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# --- plain language ----------------------------------------------------------------------------


def request_sentences(pending: Any, _: Any, lang: str) -> dict[str, Any]:
    """The request in the words a holder reads: who asks, for what, until when, how many, what
    they may not do, and the label. The facts are ``grant_requests.request_facts``, the ones
    ``likeness holder sign`` prints offline."""
    from likeness.consent.grant_requests import request_facts

    facts = request_facts(
        pending.request,
        org=pending.org_name,
        subject=pending.subject_name,
        holder="",
        holder_kind=pending.holder_kind,
    )
    shown = [u for u in facts.uses if u != "training"]
    uses = _join([_(USE_WORDS[u]) for u in shown] or [_(USE_WORDS["training"])], _)
    until = _date(facts.valid_until, lang)
    if facts.max_renders:
        ask = _(
            "{org} asks to use your face in {uses} until {until}, at most {count} videos.",
            org=facts.org,
            uses=uses,
            until=until,
            count=facts.max_renders,
        )
    else:
        ask = _("{org} asks to use your face in {uses} until {until}.", org=facts.org, uses=uses, until=until)
    not_allowed = [_(USE_WORDS[u]) for u in facts.not_asked if u != "training"]
    return {
        "ask": ask,
        "training": facts.training,
        "not_allowed": _("They may not use it for {uses}.", uses=_join(not_allowed, _)) if not_allowed else "",
        "label": _("Every video will carry a visible AI label.")
        if facts.labelled
        else _("They ask to leave the visible AI label off (the invisible watermark stays)."),
        "purpose": facts.purpose,
        "prohibited": [_(USE_WORDS[u]) for u in facts.prohibited],
        "guardian": facts.holder_kind == "guardian",
        "estate": facts.holder_kind == "estate",
    }


def _join(items: list[str], _: Any) -> str:
    if len(items) <= 1:
        return "".join(items)
    return _("{first} and {last}", first=", ".join(items[:-1]), last=items[-1])


def _date(stamp: str, lang: str, *, end: bool = True) -> str:
    """A day in words; for the ``end`` of a validity window its last day (the end is exclusive:
    midnight ends the day before)."""
    moment = parse_utc(stamp) - timedelta(seconds=1 if end else 0)
    if lang == "ko":
        return f"{moment.year}년 {moment.month}월 {moment.day}일"
    return f"{moment.day} {moment.strftime('%B')} {moment.year}"


# --- pages --------------------------------------------------------------------------------------
@router.get("/portal", **HOLDER)
def portal_home(request: Request) -> Response:
    from likeness.service.console import language, translator

    session = holder_session(request)
    if session is None:
        return page(request, "portal_signin.html", {})
    portal = portal_of(request)
    _ = translator(language(request))
    requests = portal.requests_for_holder(session.holder_id)
    return page(
        request,
        "portal_home.html",
        {
            "pending": [(r, request_sentences(r, _, language(request))) for r in requests if r.state == "pending"],
            "grants": portal.grants_of_holder(session.holder_id),
            "passkeys": portal.passkeys_of(session.holder_id, in_force=True),
            "recovered": portal.passkey_recoveries(session.holder_id)[-1:],
        },
        session=session,
    )


@router.get("/portal/invite/{token}", **HOLDER)
def invitation_page(token: str, request: Request) -> Response:
    portal = portal_of(request)
    try:
        invitation = portal.open_invitation(token)
    except ConsentError as refused:
        return page(request, "portal_invite.html", {"refused": refused.reason, "token": ""})
    holder = portal.registry.get_holder(invitation.holder_id)
    return page(
        request,
        "portal_invite.html",
        {
            "refused": None,
            "token": token,
            "invited": holder,
            "vouch": holder.key_fingerprint != PASSKEY_ONLY,
            "recovery": portal.invitation_purpose(invitation.id) == RECOVERY_PURPOSE,
            "org_name": portal.registry.org_display_name(invitation.org_id),
            "expires": invitation.expires_at,
        },
    )


@router.get("/portal/requests/{request_id}", **HOLDER)
def request_page(request_id: str, request: Request, session: Holder) -> Response:
    from likeness.service.console import language, translator

    pending = _holders_request(request, request_id, session)
    _ = translator(language(request))
    return page(
        request,
        "portal_request.html",
        {"pending": pending, "words": request_sentences(pending, _, language(request))},
        session=session,
    )


def _holders_request(request: Request, request_id: str, session: HolderSession) -> Any:
    portal = portal_of(request)
    try:
        return portal.holder_request(request_id, session.holder_id)
    except (RegistryError, ConsentError):
        raise NotFound(f"no grant request {request_id!r} for you") from None


@router.post("/portal/requests/{request_id}/decline", **HOLDER)
def decline(
    request_id: str,
    request: Request,
    session: Holder,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    _check_holder_csrf(session, csrf_token)
    _holders_request(request, request_id, session)
    try:
        portal_of(request).decline(request_id, session.holder_id)
    except RegistryError:  # decided in another tab, or a stale page after back: show the decision
        return RedirectResponse(f"/portal/requests/{request_id}", status_code=303)
    return RedirectResponse("/portal", status_code=303)


@router.get("/portal/grants/{grant_id}", **HOLDER)
def grant_page(grant_id: str, request: Request, session: Holder) -> Response:
    portal = portal_of(request)
    grant = _holders_grant(request, grant_id, session)
    uses = portal.uses_of_grant(grant_id)
    renders = [e for e in uses if e.event_type == "render.completed"]
    return page(
        request,
        "portal_grant.html",
        {
            "grant": grant,
            "events": list(reversed(uses)),
            "renders": _with_thumbnails(portal.workspace.settings, list(reversed(renders))),
            "counts": _counts(uses),
            "org_name": portal.registry.org_display_name(grant.org_slug),
            "signed": portal.ledger.find("grant.issued", grant_id=grant_id)[0].payload,
        },
        session=session,
    )


#: The highest page number the list answers; a larger one is no page (its offset would overflow).
MADE_LAST_PAGE = 1_000_000


def made_page_number(asked: str) -> int | None:
    """``asked`` as a page number of the list, or ``None`` where it names no page (not a plain
    decimal, below 1, above ``MADE_LAST_PAGE``)."""
    if not (asked.isascii() and asked.isdigit()) or len(asked) > len(str(MADE_LAST_PAGE)):
        return None
    number = int(asked)
    return number if 1 <= number <= MADE_LAST_PAGE else None


@router.get("/portal/made", **HOLDER)
def made_page(request: Request, session: Holder, asked: Annotated[str, Query(alias="page")] = "1") -> Response:
    """Every model, preview and render made under any of the holder's grants, newest first, paged.
    A page number that names no page leads to the first page: this is a browser page, not an API,
    so the holder gets the portal's page in their language rather than a JSON 422."""
    page_number = made_page_number(asked)
    if page_number is None:
        return RedirectResponse("/portal/made", status_code=303)
    portal = portal_of(request)
    made = portal.made_for_holder(session.holder_id, offset=(page_number - 1) * MADE_PAGE)
    return page(
        request,
        "portal_made.html",
        {
            "made": _with_thumbnails(portal.workspace.settings, made.events),
            "total": made.total,
            "page_number": page_number,
            "pages": max(1, -(-made.total // MADE_PAGE)),
        },
        session=session,
    )


def _counts(events: list[Any]) -> dict[str, int]:
    counts = {"authorizations": 0, "models": 0, "renders": 0, "refusals": 0}
    for event in events:
        key = {
            "authorization.issued": "authorizations",
            "model.trained": "models",
            "render.completed": "renders",
            "authorization.refused": "refusals",
        }.get(event.event_type)
        if key:
            counts[key] += 1
    return counts


def _holders_grant(request: Request, grant_id: str, session: HolderSession) -> Any:
    portal = portal_of(request)
    for grant in portal.grants_of_holder(session.holder_id):
        if grant.id == grant_id:
            return grant
    raise NotFound(f"no grant {grant_id!r} of yours")


@router.get("/portal/grants/{grant_id}/renders/{seq}/thumb", **HOLDER)
def render_thumbnail(grant_id: str, seq: int, request: Request, session: Holder) -> Response:
    """A small JPEG of a render made under the holder's grant: the file whose SHA-256 its
    ``render.completed`` event records (the first frame of a video)."""
    return _made_thumbnail(request, session, grant_id, seq, "render.completed")


@router.get("/portal/grants/{grant_id}/previews/{seq}/thumb", **HOLDER)
def preview_thumbnail(grant_id: str, seq: int, request: Request, session: Holder) -> Response:
    """A small JPEG of a training preview made under the holder's grant: a kept copy whose
    SHA-256 its ``preview.written`` event records."""
    return _made_thumbnail(request, session, grant_id, seq, "preview.written")


def _made_thumbnail(request: Request, session: HolderSession, grant_id: str, seq: int, event_type: str) -> Response:
    _holders_grant(request, grant_id, session)
    portal = portal_of(request)
    event = next((e for e in portal.uses_of_grant(grant_id) if e.seq == seq and e.event_type == event_type), None)
    if event is None:
        raise NotFound("no such render or preview under this grant")
    folders = _kept_folders(portal.workspace.settings, event_type)
    names = _made_names(event.event_type, event.payload)
    thumbnail = read_kept_file(folders, names, event.payload.get("output_sha256"), _thumbnail)
    if thumbnail is None:
        raise NotFound("the file is not kept in this workspace")
    return Response(thumbnail, media_type="image/jpeg")


#: Where the workspace keeps made files: renders under outputs; training previews in the
#: service's model folders (``models/<job>/previews``) or under outputs.
def _kept_folders(settings: Any, event_type: str) -> list[Path]:
    outputs = Path(settings.outputs_dir)
    return [Path(settings.service_dir) / "models", outputs] if event_type == "preview.written" else [outputs]


def _made_names(event_type: str, payload: dict[str, Any]) -> list[str]:
    """The file names a render or preview event records (bare names: never a path)."""
    named = payload.get("output_names") if event_type == "preview.written" else [payload.get("output_name")]
    names = [Path(str(n)).name for n in named or [] if isinstance(n, str)]
    return [n for n in names if n not in ("", ".", "..")]


def _with_thumbnails(settings: Any, events: list[Any]) -> list[tuple[Any, str | None]]:
    """Each made event with its thumbnail's address, or None where no file of its name is kept
    (a model; a preview written before previews recorded their hash; a file moved away): the
    page shows a plain line there, never a broken image. The thumbnail itself checks the file's
    hash (``kept_files``)."""
    kinds = {"render.completed": "renders", "preview.written": "previews"}
    hashed = [e for e in events if e.event_type in kinds and isinstance(e.payload.get("output_sha256"), str)]
    found = {
        kind: kept_paths(
            _kept_folders(settings, kind), [_made_names(kind, e.payload) for e in hashed if e.event_type == kind]
        )
        for kind in kinds
    }

    def address(event: Any) -> str | None:
        if event.event_type not in kinds or not isinstance(event.payload.get("output_sha256"), str):
            return None
        if not any(found[event.event_type].get(n) for n in _made_names(event.event_type, event.payload)):
            return None
        return f"/portal/grants/{event.payload.get('grant_id')}/{kinds[event.event_type]}/{event.seq}/thumb"

    return [(e, address(e)) for e in events]


def _thumbnail(kept: BinaryIO, path: Path) -> bytes:
    """A JPEG of the open kept file ``kept`` (named ``path``; the first frame of a video, upright
    as a player shows it), read from the handle whose bytes were hashed, never from the path
    again (``read_kept_file``)."""
    from PIL import Image

    if path.suffix.lower() in (".mp4", ".mov", ".webm", ".mkv"):
        image = _first_frame(kept, path) or Image.new("RGB", (8, 8))
    else:
        image = Image.open(kept).convert("RGB")
    image.thumbnail((360, 360))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _first_frame(video: BinaryIO, path: Path) -> Any:
    """The first picture of the open video file ``video`` as a PIL image, turned as its display
    matrix says (a phone's portrait clip stays portrait); None when it has none."""
    from PIL import Image

    from likeness.media.video.decode import first_frame_shown

    try:
        return Image.fromarray(first_frame_shown(video, name=Path(path.name), max_side=720))
    except MediaError:
        return None


@router.get("/portal/previews/{digest}", **HOLDER)
def preview(digest: str, request: Request, session: Holder) -> Response:
    portal = portal_of(request)
    mine = {d for r in portal.requests_for_holder(session.holder_id) for d in r.request.preview_sha256}
    path = portal.preview_path(digest) if digest in mine else None
    if path is None:
        raise NotFound("no such preview")
    return Response(path.read_bytes(), media_type="image/png")


@router.get("/portal/audit.json", **HOLDER)
def audit_export(request: Request, session: Holder) -> Response:
    export = portal_of(request).audit_export(session.holder_id, request.app.state.services.settings.org)
    return Response(
        json.dumps(export, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="likeness-audit.json"'},
    )


@router.post("/portal/logout", **HOLDER)
def holder_logout(request: Request, session: Holder, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    _check_holder_csrf(session, csrf_token)
    portal_of(request).end_session(request.cookies.get(HOLDER_COOKIE, ""))
    response = RedirectResponse("/portal", status_code=303)
    response.delete_cookie(HOLDER_COOKIE, path="/portal")
    return response


# --- WebAuthn ceremonies (JSON) -----------------------------------------------------------------
class Ceremony(StrictBody):
    ceremony_id: str = Field(max_length=64)
    credential: dict[str, Any]
    token: str | None = Field(default=None, max_length=200)


class RevokeBody(StrictBody):
    reason: str = Field(default="", max_length=500)


def _creation_options(rp: RelyingParty, challenge: bytes, holder: Any, exclude: list[bytes]) -> dict[str, Any]:
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=holder.id.encode("ascii"),
        user_name=holder.slug,
        user_display_name=holder.name,
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
    )
    return dict(json.loads(options_to_json(options)))


def _request_options(rp: RelyingParty, challenge: bytes, allow: list[bytes]) -> dict[str, Any]:
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return dict(json.loads(options_to_json(options)))


class InvitationToken(StrictBody):
    token: str = Field(default="", max_length=200)


@router.post("/portal/api/register/options", **HOLDER)
def register_options(request: Request, body: InvitationToken) -> JSONResponse:
    """Options to create the first passkey, for a live invitation token."""
    portal = portal_of(request)
    invitation = portal.open_invitation(body.token)
    holder = portal.registry.get_holder(invitation.holder_id)
    ceremony = portal.new_ceremony("register", holder_id=holder.id, invitation_id=invitation.id)
    rp = relying_party(request.app.state.services.settings)
    return JSONResponse(
        {
            "ceremony_id": ceremony.id,
            "publicKey": _creation_options(rp, bytes.fromhex(ceremony.challenge), holder, []),
        }
    )


@router.post("/portal/api/register", **HOLDER)
def register(request: Request, body: Ceremony) -> JSONResponse:
    portal = portal_of(request)
    invitation = portal.open_invitation(body.token or "")
    ceremony = portal.take_ceremony(body.ceremony_id, "register", holder_id=invitation.holder_id)
    if ceremony.invitation_id != invitation.id:
        raise ConsentError("invitation_unknown", "this passkey request belongs to another invitation")
    rp = relying_party(request.app.state.services.settings)
    verified = verify_registration(body.credential, bytes.fromhex(ceremony.challenge), rp)
    if portal.registry.get_holder(invitation.holder_id).key_fingerprint != PASSKEY_ONLY:
        # A holder who signs offline takes the statement away to vouch for with their key.
        statement = portal.vouch_by_invitation(
            invitation_id=invitation.id,
            holder_id=invitation.holder_id,
            credential_id=verified.credential_id,
            public_key=verified.public_key,
            sign_count=verified.sign_count,
            rp=rp,
        )
        return JSONResponse({"statement": statement})
    portal.register_passkey(
        holder_id=invitation.holder_id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        sign_count=verified.sign_count,
        rp=rp,
        invitation_id=invitation.id,
    )
    token, _session = portal.open_session(invitation.holder_id, verified.credential_id)
    response = JSONResponse({"redirect": "/portal"})
    _set_holder_cookie(request, response, token)
    return response


@router.post("/portal/api/passkeys/options", **HOLDER)
def recovery_options(request: Request, session: Holder) -> JSONResponse:
    """Options to add a second passkey (for recovery), for a signed-in holder."""
    portal = portal_of(request)
    holder = portal.registry.get_holder(session.holder_id)
    ceremony = portal.new_ceremony("register", holder_id=holder.id)
    existing = [unb64url(p.credential_id) for p in portal.passkeys_of(holder.id)]
    rp = relying_party(request.app.state.services.settings)
    return JSONResponse(
        {
            "ceremony_id": ceremony.id,
            "publicKey": _creation_options(rp, bytes.fromhex(ceremony.challenge), holder, existing),
        }
    )


@router.post("/portal/api/passkeys", **HOLDER)
def recovery_to_sign(request: Request, body: Ceremony, session: Holder) -> JSONResponse:
    """The new passkey is verified; its registration is then signed by the passkey the holder
    is signed in with (options for that second ceremony)."""
    portal = portal_of(request)
    ceremony = portal.take_ceremony(body.ceremony_id, "register", holder_id=session.holder_id)
    rp = relying_party(request.app.state.services.settings)
    verified = verify_registration(body.credential, bytes.fromhex(ceremony.challenge), rp)
    payload = portal.recovery_to_sign(
        holder_id=session.holder_id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        sign_count=verified.sign_count,
        rp=rp,
    )
    signing = portal.new_ceremony("add_passkey", holder_id=session.holder_id, payload=payload)
    return JSONResponse(
        {
            "ceremony_id": signing.id,
            "publicKey": _request_options(rp, bytes.fromhex(signing.challenge), [unb64url(session.credential_id)]),
        }
    )


@router.post("/portal/api/passkeys/confirm", **HOLDER)
def add_recovery_passkey(request: Request, body: Ceremony, session: Holder) -> JSONResponse:
    portal = portal_of(request)
    ceremony = portal.take_ceremony(body.ceremony_id, "add_passkey", holder_id=session.holder_id)
    payload = strict_json.loads(ceremony.payload or "{}")
    portal.add_recovery_passkey(session.holder_id, payload, _assertion(portal, body.credential))
    return JSONResponse({"redirect": "/portal"})


@router.post("/portal/api/signin/options", **HOLDER)
def signin_options(request: Request) -> JSONResponse:
    address = f"ip:{request.client.host if request.client else 'unknown'}"
    limiter = request.app.state.services.ceremony_limiter
    limiter.take(address, what="passkey sign-in attempts")
    portal = portal_of(request)
    ceremony = portal.new_ceremony("sign_in")
    rp = relying_party(request.app.state.services.settings)
    return JSONResponse(
        {"ceremony_id": ceremony.id, "publicKey": _request_options(rp, bytes.fromhex(ceremony.challenge), [])}
    )


@router.post("/portal/api/signin", **HOLDER)
def signin(request: Request, body: Ceremony) -> JSONResponse:
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import InvalidAuthenticationResponse

    portal = portal_of(request)
    ceremony = portal.take_ceremony(body.ceremony_id, "sign_in")
    try:
        credential_id = unb64url(str(body.credential.get("rawId", "")))
    except ValueError:
        raise ConsentError("credential_not_holders", "this passkey is not registered here") from None
    row = portal.passkey(credential_id)
    if row is None:
        raise ConsentError("credential_not_holders", "this passkey is not registered here")
    # the key and counter the ledger registered: a row a database editor planted or edited signs no one in
    passkey = portal.registered_passkey(row.holder_id, credential_id)
    rp = relying_party(request.app.state.services.settings)
    try:
        verified = verify_authentication_response(
            credential=body.credential,
            expected_challenge=bytes.fromhex(ceremony.challenge),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=max(row.sign_count, passkey.sign_count),
            require_user_verification=True,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError) as exc:
        from likeness.consent.holder_portal import webauthn_reason

        raise ConsentError(webauthn_reason(str(exc)), f"passkey sign-in refused: {exc}") from None
    portal.note_sign_count(credential_id, verified.new_sign_count)
    token, _session = portal.open_session(passkey.holder_id, credential_id)
    response = JSONResponse({"redirect": "/portal"})
    _set_holder_cookie(request, response, token)
    return response


@router.post("/portal/api/requests/{request_id}/sign/options", **HOLDER)
def sign_options(request_id: str, request: Request, session: Holder) -> JSONResponse:
    """The grant payload to sign and the WebAuthn options whose challenge is its digest."""
    portal = portal_of(request)
    _still_pending(request, request_id, session)
    credential_id = unb64url(session.credential_id)
    payload = portal.grant_to_sign(request_id, session.holder_id, credential_id)
    ceremony = portal.new_ceremony("grant", holder_id=session.holder_id, payload=payload)
    rp = relying_party(request.app.state.services.settings)
    return JSONResponse(
        {
            "ceremony_id": ceremony.id,
            "payload": payload,
            "publicKey": _request_options(rp, bytes.fromhex(ceremony.challenge), [credential_id]),
        }
    )


@router.post("/portal/api/requests/{request_id}/sign", **HOLDER)
def sign(request_id: str, request: Request, body: Ceremony, session: Holder) -> JSONResponse:
    portal = portal_of(request)
    _still_pending(request, request_id, session)
    ceremony = portal.take_ceremony(body.ceremony_id, "grant", holder_id=session.holder_id)
    payload = strict_json.loads(ceremony.payload or "{}")
    assertion = _assertion(portal, body.credential)
    grant_id = portal.sign_grant(request_id, session.holder_id, payload, assertion)
    return JSONResponse({"grant_id": grant_id, "redirect": f"/portal/grants/{grant_id}"})


def _still_pending(request: Request, request_id: str, session: HolderSession) -> None:
    """``AlreadyDecided`` for a request signed or declined since its page was loaded (another tab,
    the back button): the page reloads and says so in the holder's words, not the registry's."""
    pending = _holders_request(request, request_id, session)
    if pending.state != "pending":
        raise AlreadyDecided(f"this request was already {pending.state}")


def _assertion(portal: HolderPortal, credential: dict[str, Any]) -> Any:
    try:
        passkey = portal.passkey(unb64url(str(credential.get("rawId", ""))))
    except ValueError:
        passkey = None
    if passkey is None:
        raise ConsentError("credential_not_holders", "this passkey is not registered here")
    return assertion_from_response(credential, passkey.public_key)


@router.post("/portal/api/grants/{grant_id}/revoke/options", **HOLDER)
def revoke_options(grant_id: str, request: Request, body: RevokeBody, session: Holder) -> JSONResponse:
    portal = portal_of(request)
    if _holders_grant(request, grant_id, session).state == "revoked":  # revoked in another tab
        raise AlreadyDecided("this grant was already revoked")
    payload = portal.revocation_to_sign(grant_id, session.holder_id, reason=body.reason)
    ceremony = portal.new_ceremony("revoke", holder_id=session.holder_id, payload=payload)
    rp = relying_party(request.app.state.services.settings)
    allow = [unb64url(p.credential_id) for p in portal.passkeys_of(session.holder_id)]
    return JSONResponse(
        {
            "ceremony_id": ceremony.id,
            "payload": payload,
            "publicKey": _request_options(rp, bytes.fromhex(ceremony.challenge), allow),
        }
    )


@router.post("/portal/api/grants/{grant_id}/revoke", **HOLDER)
def revoke(grant_id: str, request: Request, body: Ceremony, session: Holder) -> JSONResponse:
    portal = portal_of(request)
    ceremony = portal.take_ceremony(body.ceremony_id, "revoke", holder_id=session.holder_id)
    payload = strict_json.loads(ceremony.payload or "{}")
    portal.revoke_grant(grant_id, session.holder_id, payload, _assertion(portal, body.credential))
    return JSONResponse({"redirect": f"/portal/grants/{grant_id}"})


# --- the agency's side: invite and ask -----------------------------------------------------------
class InvitationBody(StrictBody):
    holder: str = Field(max_length=64, description="the rights holder's slug (created when new)")
    holder_name: str | None = Field(default=None, max_length=200)
    holder_kind: str = Field(default="artist", max_length=20)
    subject: str | None = Field(default=None, max_length=64, description="a subject to enrol for a new holder")
    subject_name: str | None = Field(default=None, max_length=200)
    days: int = Field(default=7, ge=1, le=30)


def create_invitation(request: Request, principal: Principal, body: InvitationBody) -> dict[str, Any]:
    services = request.app.state.services
    portal = portal_of(request)
    registry = services.workspace.registry
    if _new_holder(registry, body):
        portal.add_passkey_holder(
            body.holder, body.holder_name or body.holder, kind=body.holder_kind, org=principal.user.org_slug
        )
        if body.subject:
            kind = "virtual_idol" if body.holder_kind == "agency" else "artist"
            registry.add_subject(
                body.subject,
                body.subject_name or body.subject,
                kind=kind,
                holder=body.holder,
                owner_org=principal.user.org_slug if kind == "virtual_idol" else None,
                org=principal.user.org_slug,
            )
    offline = registry.get_holder(body.holder).key_fingerprint != PASSKEY_ONLY
    invitation_id, token = (portal.invite_to_vouch if offline else portal.invite)(
        body.holder, principal.user.org_slug, created_by=principal.user.username, ttl=timedelta(days=body.days)
    )
    origin = relying_party(services.settings).origin
    return {
        "invitation_id": invitation_id,
        "url": f"{origin}/portal/invite/{token}",
        "expires_at": (now_utc() + timedelta(days=body.days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _new_holder(registry: Any, body: InvitationBody) -> bool:
    """Whether the invitation creates its holder (and subject), checked before anything is made
    so a refusal leaves nothing behind: a malformed slug or holder kind is a ``ServiceError``
    (400); a subject that exists, or a subject for a holder that exists and does not represent
    it, is a ``Conflict`` (409). An existing holder with their own subject is a retry."""
    from likeness.consent.registry import check_slug
    from likeness.consent.vocabulary import HOLDER_KINDS

    try:
        check_slug(body.holder, "rights holder")
        if body.subject:
            check_slug(body.subject, "subject")
        if _found(registry.get_holder, body.holder) is None:  # names a new holder and subject would get
            registry.new_name("rights holder", body.holder_name or body.holder)
            if body.subject and _found(registry.get_subject, body.subject) is None:
                registry.new_name("subject", body.subject_name or body.subject)
    except RegistryError as exc:
        raise ServiceError(str(exc)) from None
    if body.holder_kind not in HOLDER_KINDS:
        raise ServiceError(f"holder kind '{body.holder_kind}': expected one of {', '.join(HOLDER_KINDS)}")
    holder = _found(registry.get_holder, body.holder)
    subject = _found(registry.get_subject, body.subject) if body.subject else None
    if holder is None:
        if subject is not None:
            raise Conflict(f"subject '{body.subject}' already exists: invite its rights holder instead")
        return True
    if body.subject and (subject is None or subject.holder_id != holder.id):
        raise Conflict(
            f"rights holder '{body.holder}' already exists: a subject is enrolled here only with a new holder "
            "(enrol it with: likeness subject add)"
        )
    return False


def _found(lookup: Any, slug: str) -> Any:
    try:
        return lookup(slug)
    except RegistryError:
        return None


@api.post("/invitations", status_code=201, **guard(ASK))
def invite_holder(
    request: Request, body: InvitationBody, principal: Annotated[Principal, Depends(require(ASK))]
) -> dict[str, Any]:
    """Invite a rights holder to register a passkey (one-time link, expiring); a new holder is
    created passkey-only (no key is made or kept for them). A holder who signs offline gets a
    link that makes a passkey and its registration statement, which counts only once they vouch
    for it with their own key (``likeness holder vouch-passkey``) and it is imported."""
    return create_invitation(request, principal, body)


class RequestBody(StrictBody):
    subject: str = Field(max_length=64)
    uses: list[str] = Field(min_length=1, max_length=10)
    valid_until: str = Field(max_length=40, description="YYYY-MM-DD, an ISO time or +30d")
    max_renders: int | None = Field(default=None, ge=1, le=1_000_000)
    allow_unlabelled: bool = False
    purpose: str = Field(default="", max_length=2000)


def create_request(request: Request, principal: Principal, body: RequestBody, previews: list[bytes]) -> dict[str, Any]:
    from likeness.consent.grant_requests import request_payload
    from likeness.consent.names import request_purpose
    from likeness.consent.registry import parse_when

    try:  # a bad value, not a missing record: 400 rather than the RegistryError's 404
        request_purpose(body.purpose)
    except RegistryError as exc:
        raise ServiceError(str(exc)) from None
    drafted = portal_of(request).draft_request(
        body.subject,
        principal.user.org_slug,
        body.uses,
        valid_until=parse_when(body.valid_until, end_of_day=True),
        max_renders=body.max_renders,
        allow_unlabelled=body.allow_unlabelled,
        purpose=body.purpose,
        previews=previews,
        created_by=principal.user.username,
    )
    return request_payload(drafted)


@api.post("/requests", status_code=201, **guard(ASK))
def draft_grant_request(
    request: Request, body: RequestBody, principal: Annotated[Principal, Depends(require(ASK))]
) -> dict[str, Any]:
    """Draft a grant request for the subject's rights holder to read and sign in the portal (a
    prohibited use is refused: ``prohibited_use``)."""
    return create_request(request, principal, body, [])


@router.get("/consent/holders", **guard(ASK))
def holders_page(request: Request, principal: Annotated[Principal, Depends(require(ASK))]) -> Response:
    from likeness.service.console import render

    return render(request, "holders.html", _holders_context(request, principal, made=None), principal=principal)


@router.post(
    "/consent/holders/invite",
    **guard(ASK, csrf_from_header=False),
)
def invite_from_console(
    request: Request,
    principal: Annotated[Principal, Depends(require(ASK, csrf_from_header=False))],
    holder: Annotated[str, Form(max_length=64)],
    holder_name: Annotated[str, Form(max_length=200)] = "",
    holder_kind: Annotated[str, Form(max_length=20)] = "artist",
    subject: Annotated[str, Form(max_length=64)] = "",
    subject_name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    from likeness.service.console import render

    check_csrf(principal, csrf_token)
    body = InvitationBody(
        holder=holder.strip(),
        holder_name=holder_name.strip() or None,
        holder_kind=holder_kind,
        subject=subject.strip() or None,
        subject_name=subject_name.strip() or None,
    )
    made = create_invitation(request, principal, body)
    return render(request, "holders.html", _holders_context(request, principal, made=made), principal=principal)


#: Only an administrator sends a passkey recovery: it retires every passkey the holder has.
RECOVER = Permission.MANAGE_USERS


#: The fields of the console's recovery form (``recover_from_console`` reads them itself).
RECOVER_FORM = ("holder", "statement", "verified_by", "method", "passkeys_lost", "evidence")


class RecoveryBody(StrictBody):
    holder: str = Field(max_length=64)
    statement: str = Field(max_length=2000)
    verified_by: str = Field(max_length=200)
    method: str = Field(max_length=100)
    passkeys_lost: str = Field(default="", max_length=10)


@router.post(
    "/consent/holders/recover",
    **guard(RECOVER, csrf_from_header=False),
)
async def recover_from_console(request: Request) -> Response:
    """``likeness consent recover-passkey`` from the console: the attestation the CLI asks for,
    signed by the administrator's organisation (``invite_to_recover`` refuses a holder another
    organisation onboards, 403); the link is shown on this one page and never again. An
    evidence file is optional; as with ``--evidence``, only its SHA-256 goes on the ledger."""
    from likeness.consent.registry import RecoveryAttestation, new_attestation_problem
    from likeness.service.console import render

    principal = require(RECOVER, csrf_from_header=False)(request)
    _bounded_evidence_form(request)
    async with request.form(max_files=1, max_fields=len(RECOVER_FORM) + 2) as form:
        check_csrf(principal, str(form.get("csrf_token", "")))
        unknown_fields(form.keys(), RECOVER_FORM)
        try:
            body = RecoveryBody(**{k: str(v) for k, v in form.items() if k in RecoveryBody.model_fields})
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        upload = form.get("evidence")
        evidence = _evidence_digest(upload) if isinstance(upload, UploadFile) and upload.filename else None
    attestation = RecoveryAttestation(
        statement=body.statement, verified_by=body.verified_by, method=body.method, evidence_sha256=evidence
    )
    problem = new_attestation_problem(attestation)
    if problem:  # a blank field or an unknown method is a bad form (400), not a missing record
        raise ServiceError(problem)
    _, token = portal_of(request).invite_to_recover(
        body.holder.strip(),
        principal.user.org_slug,
        created_by=principal.user.username,
        attestation=attestation,
        passkeys_lost=body.passkeys_lost == "on",
    )
    origin = relying_party(request.app.state.services.settings).origin
    recovered = {"holder": body.holder.strip(), "url": f"{origin}/portal/invite/{token}", "evidence": evidence}
    return render(
        request, "holders.html", _holders_context(request, principal, recovered=recovered), principal=principal
    )


def _bounded_evidence_form(request: Request) -> None:
    """Refuse (413) a multipart recovery form whose declared length is over the evidence bound
    (plus room for its fields), or that declares none, before a byte of it is spooled: the form
    parser keeps file parts of any size. Other forms are bounded by ``BodyLimit``."""
    from likeness.consent.registry import EVIDENCE_MAX_BYTES
    from likeness.service.errors import UploadTooLarge

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > EVIDENCE_MAX_BYTES + 64 * 1024:
        raise UploadTooLarge(f"an evidence file may have at most {EVIDENCE_MAX_BYTES} bytes")


def _evidence_digest(upload: UploadFile) -> str:
    """The SHA-256 of an uploaded evidence file (the part the form spooled), refused as the
    command line refuses its ``--evidence``: empty (400) or over the bound (413)."""
    from likeness.consent.registry import evidence_sha256
    from likeness.errors import EvidenceRefused
    from likeness.service.errors import EmptyFile, UploadTooLarge

    upload.file.seek(0)
    try:
        return evidence_sha256(iter(lambda: upload.file.read(1 << 20), b""), source=_shown_name(upload.filename))
    except EvidenceRefused as refused:
        raise (UploadTooLarge if refused.too_large else EmptyFile)(str(refused)) from None


#: The fields of the console's grant request form (``request_from_console`` reads them itself).
REQUEST_FORM = ("subject", "uses", "valid_until", "max_renders", "allow_unlabelled", "purpose", "previews")


@router.post(
    "/consent/holders/request",
    **guard(ASK, csrf_from_header=False),
)
async def request_from_console(request: Request) -> Response:
    from likeness.service.console import render

    principal = require(ASK, csrf_from_header=False)(request)
    async with request.form(max_files=10) as form:
        check_csrf(principal, str(form.get("csrf_token", "")))
        unknown_fields(form.keys(), REQUEST_FORM)
        limit = request.app.state.services.settings.upload_max_image_bytes
        previews = [
            _png(await _preview_bytes(f, limit), f.filename)
            for f in form.getlist("previews")
            if isinstance(f, UploadFile) and f.filename
        ]
        max_renders = str(form.get("max_renders") or "")
        body = RequestBody(
            subject=str(form.get("subject", "")),
            uses=[str(u) for u in form.getlist("uses")] or ["music_video"],
            valid_until=str(form.get("valid_until", "")),
            max_renders=int(max_renders) if max_renders.isdigit() else None,
            allow_unlabelled=form.get("allow_unlabelled") == "on",
            purpose=str(form.get("purpose", "")),
        )
    drafted = create_request(request, principal, body, previews)
    return render(request, "holders.html", _holders_context(request, principal, drafted=drafted), principal=principal)


#: A recovery attestation's method code -> its words (English msgids, ``locales/ko`` translates);
#: the form posts the code, the ledger keeps it.
RECOVERY_METHODS = {
    "in_person": N_("In person"),
    "notarised_document": N_("Notarised document"),
    "legal_representative": N_("Legal representative"),
}


def _holders_context(request: Request, principal: Principal, **extra: Any) -> dict[str, Any]:
    from likeness.service.roles import allows

    can_recover = allows(principal.role, RECOVER)
    from likeness.consent.registry import EVIDENCE_MAX_BYTES

    return {
        "uses": USES,
        "recovery_methods": RECOVERY_METHODS,
        "made": None,
        "drafted": None,
        "recovered": None,
        "can_recover": can_recover,
        "evidence_max_mb": EVIDENCE_MAX_BYTES // (1024 * 1024),
        **extra,
    }


async def _preview_bytes(upload: UploadFile, limit: int) -> bytes:
    """A preview still's bytes, refused by name over ``limit`` before it is read into memory (the
    form spools it to disk)."""
    from likeness.service.errors import UploadTooLarge

    if upload.size is None or upload.size > limit:
        raise UploadTooLarge(f"{_shown_name(upload.filename)}: a preview still may have at most {limit} bytes")
    return await upload.read()


def _shown_name(filename: str | None) -> str:
    return Path(str(filename or "")).name[:80] or "preview"


def _png(data: bytes, filename: str | None) -> bytes:
    """A preview still re-encoded as PNG (whatever image was uploaded), so the portal serves
    only images it wrote; decoded by the one image reader (its pixel bound refuses a bomb)."""
    from PIL import Image

    from likeness.media.images import read_image_bytes
    from likeness.service.errors import UnsupportedMedia

    try:
        image = Image.fromarray(read_image_bytes(data, source=_shown_name(filename)))
    except MediaError as exc:
        raise UnsupportedMedia(f"a preview still must be an image: {exc}") from None
    image.thumbnail((1280, 1280))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def install_portal(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(api)


__all__ = ["HOLDER_COOKIE", "b64url", "install_portal", "relying_party", "request_sentences"]
