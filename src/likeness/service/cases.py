"""Cases: a visitor of the public page reports a file to the agency; legal triages it.

A case is a ``verify`` job of the receiving organisation (so the worker writes the evidence
pack exactly as for the console's own verifications) whose upload is kept, because the visitor
asked for it. What the reporter wrote (an optional contact and note) is personal data: it is
kept in a 0600 file beside the job (``service/cases/<job id>.json``), shown only to roles that
may verify (legal), and never written on the ledger. The ledger holds the life cycle:
``case.opened``, ``case.marked`` (each triage step, the latest is the case's state) and
``case.evidence_exported``.

A report goes to the organisations the file concerns, as far as the verifier knows
(:func:`concerned_orgs`), one case each; else to the workspace's default organisation
(``LIKENESS_ORG``), else its first. The reporter is told neither.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from likeness import strict_json
from likeness.durable import write_atomic
from likeness.service.auth import guard, require
from likeness.service.errors import NotFound, RateLimited, ServiceError
from likeness.service.forms import StrictJSONRoute
from likeness.service.roles import Permission
from likeness.service.security import Principal, check_csrf

router = APIRouter(include_in_schema=False, route_class=StrictJSONRoute)  # console pages, not the API
VERIFY = Permission.VERIFY
#: Triage states, in the order a case usually goes through them.
CASE_STATES = ("new", "triaged", "takedown-requested", "police-report", "closed-no-action")
MAX_CONTACT_CHARS = 200
MAX_NOTE_CHARS = 2000
#: One service process per workspace (docs/service.md): the same file reported twice at once
#: still becomes one case.
_REPORTS = threading.Lock()


@dataclass(frozen=True)
class Case:
    job: Any  # JobView
    state: str
    opened_at: str
    contact: str
    note: str
    history: list[dict[str, Any]]
    #: Later reports of the same file: ``{"contact", "note", "at"}`` each.
    further: list[dict[str, Any]] = field(default_factory=list)


def cases_folder(workspace: Any) -> Path:
    return Path(workspace.settings.service_dir) / "cases"


def receiving_org(workspace: Any) -> Any:
    """The organisation public reports go to: the configured default, else the first one."""
    registry = workspace.registry
    slug = workspace.settings.org
    if slug:
        return registry.get_org(slug)
    orgs = registry.list_orgs()
    if not orgs:
        raise ServiceError("this service has no organisation to receive reports")
    return min(orgs, key=lambda org: org.created_at)


def concerned_orgs(workspace: Any, verification: dict[str, Any] | None) -> list[Any]:
    """The organisations a verified file concerns: the one whose grant (known to this registry)
    its watermark or manifest names; else, for each enrolled artist recognised in it, a virtual
    idol's owner or the organisations holding an active grant for an artist. Unknown
    organisations are skipped."""
    from likeness.errors import RegistryError

    registry = workspace.registry
    found: dict[str, Any] = {}

    def add(slug_or_id: Any) -> None:
        if isinstance(slug_or_id, str) and slug_or_id:
            try:
                org = registry.get_org(slug_or_id)
            except RegistryError:
                return
            found.setdefault(org.id, org)

    verification = verification or {}
    for grant in ((verification.get("watermark") or {}).get("grant"), (verification.get("c2pa") or {}).get("consent")):
        if grant and grant.get("state") not in (None, "unknown"):  # a grant of this registry, not a claim
            add(grant.get("org_id") or grant.get("org_slug"))
    if found:
        return list(found.values())
    for face in (verification.get("faces") or {}).get("faces") or ():
        subject_id = (face.get("match") or {}).get("subject_id")
        if not subject_id:
            continue
        try:
            subject = registry.get_subject(subject_id)
        except RegistryError:
            continue
        if subject.owner_org_id:
            add(subject.owner_org_id)
        else:
            for grant in registry.list_grants(subject=subject.id):
                if grant.state == "active":
                    add(grant.org_slug)
    return list(found.values())


def cases_of_file(workspace: Any, sha256: str) -> list[str]:
    """The ids of the cases opened for a file with these bytes, oldest first."""
    opened = workspace.ledger.find("case.opened", sha256=sha256)
    return list(dict.fromkeys(str(e.payload["case_id"]) for e in opened))


def add_report(services: Any, case_ids: list[str], *, contact: str, note: str) -> Any:
    """A further report of a file already reported: its contact and note join each case's
    reporter file and ``case.reported_again`` goes on the ledger; returns the first case's job."""
    contact, note = contact.strip()[:MAX_CONTACT_CHARS], note.strip()[:MAX_NOTE_CHARS]
    for case_id in case_ids:
        path = cases_folder(services.workspace) / f"{case_id}.json"
        reporters: dict[str, Any] = {"contact": "", "note": ""}
        if path.is_file():
            reporters.update(strict_json.loads(path.read_text("utf-8")))
        event = services.workspace.ledger.append(
            "case.reported_again", {"case_id": case_id, "has_contact": bool(contact), "has_note": bool(note)}
        )
        reporters.setdefault("further", []).append({"contact": contact, "note": note, "at": event.created_at})
        _write_private(path, reporters)
    return services.queue.get(case_ids[0])


def check_report_quota(services: Any, size_bytes: int) -> None:
    """``RateLimited`` when keeping ``size_bytes`` more would pass the bytes of reported files
    allowed per rolling 24 hours (``public_report_bytes_per_day``), counted from the
    ``case.opened`` events of the last day: read as an index range, since every report asks and
    the history of cases only grows."""
    from likeness.consent.canonical import now_utc, parse_utc, utc_iso

    now = now_utc()
    opened = services.workspace.ledger.find("case.opened", created_after=utc_iso(now - timedelta(days=1)))
    quota = services.settings.public_report_bytes_per_day
    if sum(int(e.payload.get("size_bytes") or 0) for e in opened) + size_bytes > quota:
        oldest = min((parse_utc(e.created_at) for e in opened), default=now)
        raise RateLimited(
            f"reports are over the {quota} bytes the service keeps per day; try again later",
            retry_after_s=int((oldest + timedelta(days=1) - now).total_seconds()) + 1,
        )


def file_report(
    services: Any,
    folder: Path,
    params: dict[str, Any],
    *,
    contact: str,
    note: str,
    verification: Callable[[], dict[str, Any] | None],
) -> Any:
    """Open a case for a reported upload (``params`` carries its ``sha256``), or add the report
    to the cases already opened for the same bytes: the new copy is deleted, so a file is kept
    once however often it is reported. ``verification`` is called (for routing, outside the
    lock: it may take the public timeout) only for a new file. Over the daily quota the copy is
    deleted and ``RateLimited`` raised."""
    sha256, size = str(params["sha256"]), int(params["size_bytes"])
    routing = None
    if not cases_of_file(services.workspace, sha256):
        _within_quota(services, folder, size)
        routing = verification()
    with _REPORTS:  # the same file may have come in meanwhile; reporter files are rewritten
        earlier = cases_of_file(services.workspace, sha256)
        if not earlier:
            _within_quota(services, folder, size)
            expire_closed_uploads(services)
            return open_case(services, params, contact=contact, note=note, verification=routing)
        shutil.rmtree(folder, ignore_errors=True)
        return add_report(services, earlier, contact=contact, note=note)


def expire_closed_uploads(services: Any) -> list[str]:
    """Delete the kept file of each case whose latest mark is ``closed-no-action`` and is older
    than ``public_report_keep_days`` (its evidence pack, reporter file and history stay), with
    ``case.upload_expired`` on the ledger; returns those cases' ids. Run when a new file is
    kept, the only time reports take more space."""
    from likeness.consent.canonical import now_utc, parse_utc
    from likeness.service.job_kinds import uploads_root

    ledger = services.workspace.ledger
    latest = {str(e.payload.get("case_id")): e for e in ledger.find("case.marked")}  # ledger order: last wins
    cutoff = now_utc() - timedelta(days=services.settings.public_report_keep_days)
    root = uploads_root(services.workspace).resolve()
    expired = []
    for case_id, mark in latest.items():
        if mark.payload.get("state") != "closed-no-action" or parse_utc(mark.created_at) > cutoff:
            continue
        try:
            job = services.queue.get(case_id)
        except NotFound:
            continue
        folder = (root / str(job.params.get("upload", ""))).resolve().parent
        if not job.params.get("case") or not job.terminal or folder.parent != root or not folder.is_dir():
            continue  # not a finished case, or already gone (the parameters may have been edited)
        shutil.rmtree(folder, ignore_errors=True)
        ledger.append("case.upload_expired", {"case_id": case_id})
        expired.append(case_id)
    return expired


def _within_quota(services: Any, folder: Path, size_bytes: int) -> None:
    """``check_report_quota``, deleting the upload's folder when it refuses."""
    try:
        check_report_quota(services, size_bytes)
    except RateLimited:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def open_case(
    services: Any, params: dict[str, Any], *, contact: str, note: str, verification: dict[str, Any] | None = None
) -> Any:
    """Queue the verification of a reported upload for each organisation it concerns (else the
    default one), put ``case.opened`` on the ledger for each, and return the first job."""
    contact, note = contact.strip()[:MAX_CONTACT_CHARS], note.strip()[:MAX_NOTE_CHARS]
    orgs = concerned_orgs(services.workspace, verification) or [receiving_org(services.workspace)]
    jobs = [_open_one(services, params, org, contact=contact, note=note) for org in orgs]
    return jobs[0]


def _open_one(services: Any, params: dict[str, Any], org: Any, *, contact: str, note: str) -> Any:
    job = services.queue.enqueue("verify", {**params, "case": True}, org_id=org.id)
    folder = cases_folder(services.workspace)
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(folder / f"{job.id}.json", {"contact": contact, "note": note})
    services.workspace.ledger.append(
        "case.opened",
        {
            "case_id": job.id,
            "org_id": org.id,
            "name": params.get("name"),
            "size_bytes": params.get("size_bytes"),
            "sha256": params.get("sha256"),
            "has_contact": bool(contact),
            "has_note": bool(note),
        },
    )
    return job


def _write_private(path: Path, reporters: dict[str, Any]) -> None:
    """The reporters' words, replaced atomically in a 0600 file (personal data)."""
    write_atomic(path, json.dumps(reporters, ensure_ascii=False).encode("utf-8"), mode=0o600)


def load_case(services: Any, job_id: str, org_id: str) -> Case:
    job = services.queue.get(job_id, org_id=org_id)
    if job.kind != "verify" or not job.params.get("case"):
        raise NotFound(f"no case {job_id}")
    ledger = services.workspace.ledger
    events = ledger.find(
        ["case.opened", "case.reported_again", "case.marked", "case.evidence_exported", "case.upload_expired"],
        case_id=job_id,
    )
    history = [{"type": e.event_type, "at": e.created_at, **e.payload} for e in events]
    marks = [e for e in events if e.event_type == "case.marked"]
    opened = next((e.created_at for e in events if e.event_type == "case.opened"), job.created_at)
    reporter: dict[str, Any] = {"contact": "", "note": "", "further": []}
    path = cases_folder(services.workspace) / f"{job.id}.json"
    if path.is_file():
        reporter.update(strict_json.loads(path.read_text("utf-8")))
    state = marks[-1].payload.get("state", "new") if marks else "new"
    return Case(job, state, opened, str(reporter["contact"]), str(reporter["note"]), history, list(reporter["further"]))


#: How many of an organisation's newest cases the Cases page lists.
CASES_LISTED = 200


def list_cases(services: Any, org_id: str, *, limit: int = CASES_LISTED) -> list[Case]:
    """The organisation's newest cases, found by their ``case.opened`` events (not among the
    newest verify jobs, where the team's ordinary verifications pushed them off the page)."""
    opened = services.workspace.ledger.find("case.opened", org_id=org_id)
    case_ids = list(dict.fromkeys(str(e.payload["case_id"]) for e in reversed(opened)))
    cases = []
    for case_id in case_ids[:limit]:
        try:
            cases.append(load_case(services, case_id, org_id))
        except NotFound:
            continue  # its job was removed
    return cases


# --- the console's pages ---------------------------------------------------------------------
@router.get("/cases", **guard(VERIFY))
def cases_page(request: Request, principal: Annotated[Principal, Depends(require(VERIFY))]) -> Response:
    from likeness.service.console import render

    cases = list_cases(request.app.state.services, principal.user.org_id)
    return render(request, "cases.html", {"cases": cases, "states": CASE_STATES}, principal=principal)


@router.get("/cases/{job_id}", **guard(VERIFY))
def case_page(job_id: str, request: Request, principal: Annotated[Principal, Depends(require(VERIFY))]) -> Response:
    from likeness.service.console import render

    case = load_case(request.app.state.services, job_id, principal.user.org_id)
    verification = (case.job.result or {}).get("verification")
    return render(
        request,
        "case.html",
        {"case": case, "states": CASE_STATES, "verification": verification},
        principal=principal,
    )


@router.post(
    "/cases/{job_id}/mark",
    **guard(VERIFY, csrf_from_header=False),
)
def mark_case(
    job_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(VERIFY, csrf_from_header=False))],
    state: Annotated[str, Form(max_length=40)],
    comment: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(principal, csrf_token)
    if state not in CASE_STATES:
        raise ServiceError(f"unknown case state {state!r}: one of {', '.join(CASE_STATES)}")
    services = request.app.state.services
    load_case(services, job_id, principal.user.org_id)  # the organisation's own case, or 404
    services.workspace.ledger.append(
        "case.marked",
        {"case_id": job_id, "state": state, "comment": comment.strip(), "by": principal.user.username},
    )
    return RedirectResponse(f"/cases/{job_id}", status_code=303)


@router.get("/cases/{job_id}/evidence.zip", **guard(VERIFY))
def export_case(job_id: str, request: Request, principal: Annotated[Principal, Depends(require(VERIFY))]) -> Response:
    """The evidence zip for a takedown or a police complaint; the export goes on the ledger."""
    from likeness.service.api import evidence_file

    services = request.app.state.services
    case = load_case(services, job_id, principal.user.org_id)
    path = evidence_file(services, principal, case.job.id, "zip")
    services.workspace.ledger.append(
        "case.evidence_exported", {"case_id": job_id, "file": path.name, "by": principal.user.username}
    )
    return FileResponse(path, media_type="application/zip", filename=path.name)


def report_response(job: Any) -> JSONResponse:
    return JSONResponse({"case_id": job.id, "state": "new"}, status_code=201)
