"""Which organisation a ledger event belongs to, so that a reader of a multi-organisation
workspace sees another organisation's events only as redacted rows (sequence, type, time and
hashes: the chain can still be followed, the payload cannot be read).

One pure function decides (``event_organisation``) from the event's payload and the owners of
the ids it names; the ids a page needs are read in one pass at the edge (``page_owners``).
An event that names no organisation, directly or through anything it refers to (the
workspace's anchors, detector registrations of an unowned subject), belongs to the whole
workspace and stays visible to every reader, except a failed sign-in under a name no user has
(``ADMIN_ONLY_UNOWNED``), which only the workspace's admins read whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from likeness import strict_json
from likeness.consent.ledger import LedgerEvent, UnreadableEvent
from likeness.consent.tables import (
    AuthorizationRow,
    Grant,
    GrantRequestRow,
    HolderInvitation,
    Organisation,
    Release,
    Subject,
)
from likeness.service.tables import Job, ServiceUser

#: (payload member, what its value names), in the order they decide: an event that names its
#: organisation directly is decided by that, else by the first reference whose owner is known.
#: Every event type the product appends is decided by one of these (``org_id`` for consent
#: records, authorizations and what is made under them; ``user_id``/``username`` for service
#: accounts; ``case_id`` for cases; ``org`` for a refused draft, which names slugs; ``path``
#: for a verification a service job ran on its upload).
REFERENCES: tuple[tuple[str, str], ...] = (
    ("org_id", "org"),
    ("owner_org_id", "org"),
    ("org", "org_slug"),
    ("user_id", "user"),
    ("username", "username"),
    ("case_id", "job"),
    ("job_id", "job"),
    ("grant_id", "grant"),
    ("request_id", "grant"),
    ("release_id", "release"),
    ("authorization_id", "authorization"),
    ("subject_id", "subject"),
    ("performer_id", "subject"),
    ("subject", "subject_slug"),
    ("holder_id", "holder"),
    ("path", "upload"),
)

#: How a job's parameters (``json.dumps``) name its upload, and the upload's folder.
UPLOAD_MEMBER = '"upload"'
UPLOAD_FOLDER = re.compile(r'"upload"\s*:\s*"([^"/\\]+)/')

#: (kind, id) -> the owning organisation's id (``None``: known to belong to none, or to several)
Owners = Mapping[tuple[str, str], str | None]

#: Event types that can belong to no organisation and still are not every reader's: a failed
#: sign-in under a name no user has carries the address of whoever typed it, who may be another
#: organisation's staff mistyping their own name. Only a workspace admin reads it whole.
ADMIN_ONLY_UNOWNED = frozenset({"service.login_failed"})


@dataclass(frozen=True)
class LedgerReader:
    """Who reads the ledger: their organisation, and whether they administer the whole
    workspace (``workspace_admin``: the user-managing role of its only organisation; with
    several organisations no service user does, and the workspace's holder reads those
    events with ``likeness audit log``)."""

    org_id: str
    workspace_admin: bool = False


def _upload_key(path: str) -> str | None:
    """``FOLDER/NAME`` of a service upload (``<service>/uploads/FOLDER/NAME``), as a job's
    ``upload`` parameter names it; ``None`` for any other path (a command-line verification)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if len(parts) >= 3 and parts[-3] == "uploads":
        return f"{parts[-2]}/{parts[-1]}"
    return None


def event_references(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (kind, id) references ``payload`` makes, in deciding order; a request event's terms
    nested under ``payload`` count too (the older ``{kind}.requested`` shape)."""
    found: list[tuple[str, str]] = []
    for member, kind in REFERENCES:
        value = payload.get(member)
        if not isinstance(value, str) or not value:
            continue
        if kind == "upload":
            key = _upload_key(value)
            if key is not None:
                found.append((kind, key))
        else:
            found.append((kind, value))
    nested = payload.get("payload")
    if isinstance(nested, Mapping):
        found.extend(ref for ref in event_references(nested) if ref not in found)
    return found


def event_organisation(payload: Mapping[str, Any], owners: Owners) -> str | None:
    """The id of the organisation an event with ``payload`` belongs to, or ``None`` when it
    belongs to the whole workspace. ``owners`` maps each reference ``event_references`` names
    to its organisation (``org`` references are the organisation itself).

    >>> event_organisation({"user_id": "u1", "client": "10.0.0.9"}, {("user", "u1"): "orgB"})
    'orgB'
    >>> event_organisation({"anchored": "head"}, {}) is None
    True
    """
    for kind, value in event_references(payload):
        if kind == "org":
            return value
        owner = owners.get((kind, value))
        if owner is not None:
            return owner
    return None


def visible_to(event_type: str, payload: Mapping[str, Any], reader: LedgerReader, owners: Owners) -> bool:
    """Whether ``reader`` may read the payload of an event of ``event_type``.

    >>> ghost = {"username": "ghost", "client": "10.0.0.9"}
    >>> visible_to("service.login_failed", ghost, LedgerReader("orgA"), {})
    False
    >>> visible_to("service.login_failed", ghost, LedgerReader("orgA", workspace_admin=True), {})
    True
    """
    owner = event_organisation(payload, owners)
    if owner is None:
        return reader.workspace_admin or event_type not in ADMIN_ONLY_UNOWNED
    return owner == reader.org_id


def _single(orgs: Iterable[str | None]) -> str | None:
    """The one organisation of ``orgs``, or ``None`` for none or several (shared, so both see it)."""
    distinct = {o for o in orgs if o is not None}
    return next(iter(distinct)) if len(distinct) == 1 else None


def page_owners(session: Session, events: Iterable[LedgerEvent | UnreadableEvent]) -> dict[tuple[str, str], str | None]:
    """The owners of every reference ``events`` make, read through ``session`` (one query per
    kind of reference, over only the ids the page names)."""
    wanted: dict[str, set[str]] = {}
    for event in events:
        if isinstance(event, UnreadableEvent):
            continue
        for kind, value in event_references(event.payload):
            wanted.setdefault(kind, set()).add(value)
    owners: dict[tuple[str, str], str | None] = {}

    def keyed(kind: str, pairs: Iterable[Any]) -> None:
        for key, org in pairs:
            owners[(kind, key)] = org

    def ids(kind: str) -> list[str]:
        return sorted(wanted.get(kind, ()))

    # (kind, the column its ids are in, the owning organisation's column); a grant id may name a
    # request or the grant issued for it (the grant id is the request id).
    for kind, key, org in (
        ("org_slug", Organisation.slug, Organisation.id),
        ("user", ServiceUser.id, ServiceUser.org_id),
        ("username", ServiceUser.username, ServiceUser.org_id),
        ("job", Job.id, Job.org_id),
        ("grant", GrantRequestRow.id, GrantRequestRow.org_id),
        ("grant", Grant.id, Grant.org_id),
        ("release", Release.id, Release.org_id),
        ("authorization", AuthorizationRow.id, AuthorizationRow.org_id),
    ):
        if ids(kind):
            keyed(kind, session.execute(select(key, org).where(key.in_(ids(kind)))))
    for kind, column in (("subject", Subject.id), ("subject_slug", Subject.slug)):
        for subject in session.scalars(select(Subject).where(column.in_(ids(kind)))) if ids(kind) else ():
            owners[(kind, getattr(subject, "id" if kind == "subject" else "slug"))] = _subject_org(session, subject)
    for holder_id in ids("holder"):
        owners[("holder", holder_id)] = _holder_org(session, holder_id)
    uploads = set(ids("upload"))
    if uploads:
        # One pass over the jobs that name an upload (a page of 500 verifications was 500 scans of
        # the table: 2.2 s with 20,000 jobs); the folder, a random hex name, picks the rows and the
        # parsed parameter decides (json.dumps escapes a non-ASCII file name)
        folders = {upload.split("/", 1)[0] for upload in uploads}
        job_orgs: dict[str, list[str]] = {upload: [] for upload in uploads}
        for owner, params in session.execute(select(Job.org_id, Job.params).where(Job.params.contains(UPLOAD_MEMBER))):
            named = UPLOAD_FOLDER.search(params)
            if named is not None and named.group(1) in folders and (upload := _job_upload(params)) in job_orgs:
                job_orgs[upload].append(owner)
        owners.update({("upload", upload): _single(orgs) for upload, orgs in job_orgs.items()})
    return owners


def _job_upload(params: str) -> str | None:
    """A job's ``upload`` parameter (``None`` for a row whose parameters do not parse)."""
    try:
        parsed = strict_json.loads(params)
    except ValueError:
        return None
    upload = parsed.get("upload") if isinstance(parsed, dict) else None
    return upload if isinstance(upload, str) else None


def _subject_org(session: Session, subject: Subject) -> str | None:
    """The organisation that owns ``subject``, else the one organisation holding its grants,
    requests or releases (a subject several organisations work with belongs to none of them)."""
    if subject.owner_org_id is not None:
        return subject.owner_org_id
    orgs = [
        *session.scalars(select(Grant.org_id).where(Grant.subject_id == subject.id)),
        *session.scalars(select(GrantRequestRow.org_id).where(GrantRequestRow.subject_id == subject.id)),
        *session.scalars(select(Release.org_id).where(Release.performer_id == subject.id)),
    ]
    return _single(orgs)


def _holder_org(session: Session, holder_id: str) -> str | None:
    """The one organisation a rights holder deals with (its subjects' owners, its grants,
    releases and invitations); a holder of several organisations belongs to none of them."""
    orgs = [
        *session.scalars(select(Subject.owner_org_id).where(Subject.holder_id == holder_id)),
        *session.scalars(select(Grant.org_id).where(Grant.holder_id == holder_id)),
        *session.scalars(select(Release.org_id).where(Release.holder_id == holder_id)),
        *session.scalars(select(HolderInvitation.org_id).where(HolderInvitation.holder_id == holder_id)),
    ]
    return _single(orgs)


def redacted(event: LedgerEvent) -> dict[str, Any]:
    """An event as another organisation's reader gets it: what the chain needs, no payload."""
    return {**event.as_dict(), "payload": None, "other_organisation": True, "unreadable": None}


def scoped_events(
    workspace: Any, events: list[LedgerEvent | UnreadableEvent], org_id: str, *, manages_users: bool
) -> list[dict[str, Any]]:
    """``events`` (``LedgerEvent.as_dict`` plus ``other_organisation``) as a reader of
    ``org_id`` (``manages_users``: whether their role in force holds that permission) may see
    them: whole, or ``redacted``; a row whose payload cannot be read shows where it is and why
    (``unreadable``) to every reader, as ``ledger/verify`` would."""
    with Session(workspace.engine) as session:
        owners = page_owners(session, events)
        single = session.scalar(select(func.count()).select_from(Organisation)) == 1
    reader = LedgerReader(org_id, workspace_admin=manages_users and single)
    return [_scoped(e, reader, owners) for e in events]


def _scoped(event: LedgerEvent | UnreadableEvent, reader: LedgerReader, owners: Owners) -> dict[str, Any]:
    if isinstance(event, UnreadableEvent):
        return {**event.as_dict(), "other_organisation": False}
    if visible_to(event.event_type, event.payload, reader, owners):
        return {**event.as_dict(), "other_organisation": False, "unreadable": None}
    return redacted(event)
