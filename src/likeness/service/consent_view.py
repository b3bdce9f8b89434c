"""What an organisation sees of the consent registry: its subjects (owned, granted or
released to it) with their reference counts, its grants and releases with their state as the
policy engine decides it. Read only: consent is given and revoked by rights holders."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any


def consent_overview(workspace: Any, org_id: str, org_slug: str) -> dict[str, list[dict[str, Any]]]:
    registry = workspace.registry
    grants = [asdict(g) for g in registry.list_grants(org=org_slug)]
    releases = [asdict(r) for r in registry.list_releases() if r.org_slug == org_slug]
    references = Counter(subject_id for _, subject_id, _ in registry.reference_rows())
    named = {g["subject_slug"] for g in grants} | {r["performer_slug"] for r in releases}
    subjects = [
        {
            "id": s.id,
            "slug": s.slug,
            "name": s.name,
            "kind": s.kind,
            "holder": s.holder_slug,
            "owned": s.owner_org_id == org_id,
            "references": references.get(s.id, 0),
        }
        for s in registry.list_subjects()
        if s.owner_org_id == org_id or s.slug in named
    ]
    for grant in grants:
        grant["uses"] = list(grant["uses"])
    return {"subjects": subjects, "grants": grants, "releases": releases}
