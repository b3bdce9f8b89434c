"""Shareable results of the public page (``/r/<sha256>``), made only when the visitor asks.

A plain check stores nothing. When the visitor presses "create a link", the answer this process
gave for that file a moment ago (already withheld as the public may see it; its file name is
dropped too) is stored, keyed by the file's SHA-256 and the verifier's version, until it
expires (``LIKENESS_PUBLIC_LINK_DAYS``; then the answer is erased, its digest and dates stay).
The file itself is never kept. The link shows the answer as it was on the day of the check;
the page says so. Only answers this server gave can
be stored: a visitor cannot post a verdict of their own. Nor can a database editor: each stored
answer carries a seal (HMAC-SHA256 over the digest, verifier, dates and answer) under a key kept
in ``HOME/keys/service/links.key`` (0600), and a row whose seal does not hold is not shown, so a
row inserted or edited to call a deepfake "authorized" on the agency's own domain is a 404.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import update
from sqlalchemy.orm import Session

from likeness import __version__, strict_json
from likeness.service.accounts import utc_stamp
from likeness.service.auth import public
from likeness.service.errors import NotFound, ServiceKeyUnusable
from likeness.service.forms import StrictJSONRoute
from likeness.service.service_keys import service_key
from likeness.service.tables import PublicResult

router = APIRouter(route_class=StrictJSONRoute)
VERIFIER = f"likeness {__version__}"
SHA256 = re.compile(r"[0-9a-f]{64}")
#: The member of a stored answer that holds its seal (taken off before the page shows it).
SEAL = "_seal"
log = logging.getLogger(__name__)


def share(workspace: Any, answer: dict[str, Any], *, days: int) -> PublicResult:
    """Store ``answer`` (the public JSON) under its file's digest, sealed; a second share renews it."""
    now = utc_stamp()
    shown = {**answer, "path": None}
    shown.pop(SEAL, None)
    expires_at = utc_stamp(_parse(now) + timedelta(days=days))
    key = service_key(workspace, "links", create=True)
    if key is None:
        raise ServiceKeyUnusable("keys/service/links.key: the service's key for shared results is missing")
    seal = _seal(key, answer["sha256"], now, expires_at, shown)
    result = json.dumps({**shown, SEAL: seal}, ensure_ascii=False)
    with Session(workspace.engine, expire_on_commit=False) as session, session.begin():
        _forget_expired(session, now)
        row = session.get(PublicResult, (answer["sha256"], VERIFIER))
        if row is None:
            row = PublicResult(sha256=answer["sha256"], verifier=VERIFIER)
            session.add(row)
        row.result, row.created_at, row.expires_at = result, now, expires_at
    return row


def shared(workspace: Any, sha256: str) -> PublicResult | None:
    """The shared result for this digest by this verifier (its ``result`` without the seal),
    unless it expired or its seal does not hold."""
    now = utc_stamp()
    with Session(workspace.engine, expire_on_commit=False) as session, session.begin():
        _forget_expired(session, now)
        row = session.get(PublicResult, (sha256, VERIFIER))
    if row is None or not row.result:
        return None
    try:
        stored = strict_json.loads(row.result)
        seal = stored.pop(SEAL)
        key = service_key(workspace, "links", create=False)
    except (ValueError, TypeError, KeyError, AttributeError):
        key, seal, stored = None, None, None
    if (
        key is None
        or not isinstance(seal, str)
        or not hmac.compare_digest(seal, _seal(key, row.sha256, row.created_at, row.expires_at, stored))
    ):
        log.warning("shared result %s is not shown: its seal does not hold (edited or inserted)", sha256)
        return None
    row.result = json.dumps(stored, ensure_ascii=False)  # detached: the page's copy only
    return row


def _seal(key: bytes, sha256: str, created_at: str, expires_at: str, shown: Any) -> str:
    message = json.dumps([VERIFIER, sha256, created_at, expires_at, shown], sort_keys=True, ensure_ascii=False)
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def _forget_expired(session: Session, now: str) -> None:
    """Erase expired answers in place (the application's database role may not DELETE)."""
    session.execute(
        update(PublicResult).where(PublicResult.expires_at <= now, PublicResult.result != "").values(result="")
    )


def _parse(stamp: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@router.post(
    "/api/v1/public/links",
    status_code=201,
    openapi_extra={"x-permission": "public"},
    responses={201: {"description": "the shared result's page: {url, expires_at}"}},
)
def create_link(request: Request, sha256: Annotated[str, Form(pattern="^[0-9a-f]{64}$")]) -> JSONResponse:
    """Share the answer this page gave a moment ago for the file with this SHA-256 (form field
    ``sha256``): 404 when this server did not just check it."""
    services = request.app.state.services
    answer = services.public_checker.answer(sha256)
    if answer is None:
        raise NotFound("no recent check of this file here: check it again, then create the link")
    row = share(services.workspace, answer, days=services.settings.public_link_days)
    return JSONResponse({"url": f"/r/{sha256}", "expires_at": row.expires_at}, status_code=201)


@router.get("/r/{digest}", include_in_schema=False, **public())
def link_page(digest: str, request: Request) -> Response:
    """The shared result of the file with this SHA-256 (``digest``)."""
    from likeness.service.public import render_public_page

    row = shared(request.app.state.services.workspace, digest) if SHA256.fullmatch(digest) else None
    if row is None:
        raise NotFound("no shared result for this file (links expire)")
    return render_public_page(request, shared_result=row)
