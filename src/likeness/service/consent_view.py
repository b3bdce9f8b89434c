"""What an organisation sees of the consent registry: its subjects (owned, granted or
released to it) with their reference counts, its grants and releases with their state as the
policy engine decides it. Read only: consent is given and revoked by rights holders."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from likeness.consent.registry import reference_statuses
from likeness.faceset.reference_faces import reference_faces_dir


def reference_photos(workspace: Any) -> dict[str, list[str]]:
    """subject id -> the SHA-256 of each reference photo bound to the ledger, in enrolment
    order (what ``Registry.reference_rows`` counts)."""
    with workspace.session() as session:
        statuses = [s for s in reference_statuses(session) if s.usable]
    photos: dict[str, list[str]] = {}
    for status in statuses:
        photos.setdefault(status.subject_id, []).append(status.source_sha256)
    return photos


def reference_picture(workspace: Any, subject_id: str, photo_sha256: str) -> Any:
    """The kept head crop of one of ``subject_id``'s reference photos (a PNG path), or None
    when the photo is not one bound to the ledger or the workspace kept no crop of it."""
    if photo_sha256 not in reference_photos(workspace).get(subject_id, []):
        return None
    path = reference_faces_dir(workspace.home, subject_id) / f"{photo_sha256}.png"
    return path if path.is_file() else None


def consent_overview(workspace: Any, org_id: str, org_slug: str) -> dict[str, list[dict[str, Any]]]:
    """The organisation's subjects (``references``: how many reference photos are bound to the
    ledger; ``photos``: their SHA-256s), grants and releases."""
    registry = workspace.registry
    grants = [asdict(g) for g in registry.list_grants(org=org_slug)]
    releases = [asdict(r) for r in registry.list_releases() if r.org_slug == org_slug]
    photos = reference_photos(workspace)
    named = {g["subject_slug"] for g in grants} | {r["performer_slug"] for r in releases}
    subjects = [
        {
            "id": s.id,
            "slug": s.slug,
            "name": s.name,
            "kind": s.kind,
            "holder": s.holder_slug,
            "owned": s.owner_org_id == org_id,
            "references": len(photos.get(s.id, [])),
            "photos": photos.get(s.id, []),
        }
        for s in registry.list_subjects()
        if s.owner_org_id == org_id or s.slug in named
    ]
    for grant in grants:
        grant["uses"] = list(grant["uses"])
    return {"subjects": subjects, "grants": grants, "releases": releases}
