"""What the studio page shows before anything is submitted: for each subject, whether its
consent lets this organisation work with it (a performer: a release in force; an artist or a
virtual idol: a grant in force that names training), and why not; and the finished jobs the
train and export forms pick from.

Advisory only: every job asks the policy engine itself when it runs (``job_kinds``), so a grant
revoked after the page was drawn still stops it. The states are the registry's, which decides
them as the policy engine does (``Registry.grant_state``) without writing to the ledger, so
opening the page leaves no ``authorization.*`` events behind.
"""

from __future__ import annotations

from typing import Any

#: The grant use every studio step asks the policy engine for (extract, train, export).
TRAINING_USE = "training"


def consent_standing(subject: dict[str, Any], grants: list[dict[str, Any]], releases: list[dict[str, Any]]) -> dict:
    """``{"ok", "basis", "reason", "date"}`` for ``subject`` given the organisation's grants and
    releases (``consent_overview``'s). ``basis``: ``release`` or ``grant``; ``reason`` when not
    ok: ``no_release``, ``no_grant``, ``use_not_granted``, ``revoked``, ``expired``,
    ``not_yet_valid`` or ``altered``; ``date``: until when it holds, or the date of the reason.

    >>> consent_standing({"slug": "jun", "kind": "performer"}, [], [])
    {'ok': False, 'basis': 'release', 'reason': 'no_release', 'date': None}
    """
    slug = subject["slug"]
    if subject["kind"] == "performer":
        return _standing([r for r in releases if r["performer_slug"] == slug], "release", "no_release")
    mine = [g for g in grants if g["subject_slug"] == slug]
    naming = [g for g in mine if TRAINING_USE in g["uses"]]
    if mine and not naming:
        return {"ok": False, "basis": "grant", "reason": "use_not_granted", "date": None}
    return _standing(naming, "grant", "no_grant")


def _standing(records: list[dict[str, Any]], basis: str, missing: str) -> dict:
    active = [r for r in records if r["state"] == "active"]
    if active:
        return {"ok": True, "basis": basis, "reason": None, "date": max(r["valid_until"] for r in active)[:10]}
    if not records:
        return {"ok": False, "basis": basis, "reason": missing, "date": None}
    latest = max(records, key=lambda r: r["issued_at"])  # the newest says most about why not
    state = latest["state"]
    when = {
        "revoked": latest.get("revoked_at"),
        "expired": latest["valid_until"],
        "not_yet_valid": latest["valid_from"],
    }.get(state)
    reason = state if state in ("revoked", "expired", "not_yet_valid") else "altered"
    return {"ok": False, "basis": basis, "reason": reason, "date": (when or "")[:10] or None}


def studio_subjects(overview: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The overview's subjects, each with its ``standing`` (``consent_standing``)."""
    return [
        {**subject, "standing": consent_standing(subject, overview["grants"], overview["releases"])}
        for subject in overview["subjects"]
    ]


def faceset_choices(extract_jobs: list[Any], subjects: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished extract jobs as the train form lists them: subject, faces, file, date, the
    subject's standing; ``performer``: a target (the performer's side) rather than a source."""
    out = []
    for job in extract_jobs:
        result = job.result or {}
        slug = result.get("subject") or job.params.get("subject")
        subject = subjects.get(str(slug), {"slug": slug, "name": slug, "kind": "?", "photos": []})
        out.append(
            {
                "id": job.id,
                "subject": subject,
                "performer": subject["kind"] == "performer",
                "faces": result.get("faces", 0),
                "name": job.params.get("name", ""),
                "created_at": job.created_at,
                "standing": subject.get("standing") or {"ok": False, "reason": "no_grant", "date": None},
            }
        )
    return out


def model_choices(
    train_jobs: list[Any], facesets: dict[str, dict[str, Any]], exported: dict[str, str]
) -> list[dict[str, Any]]:
    """Finished train jobs as the export form lists them: source and performer (from the
    facesets they trained on), iterations, date, both sides' standings (``ok``: both allow
    it, as the export job's authorization needs), and the exported model's id
    when it was exported already (``exported``: train job id -> model id)."""
    out = []
    for job in train_jobs:
        source = facesets.get(str(job.params.get("source")))
        target = facesets.get(str(job.params.get("target")))
        unknown = {"ok": False, "basis": "grant", "reason": "no_grant", "date": None}  # a faceset gone from the list
        standings = [side["standing"] if side else unknown for side in (source, target)]
        out.append(
            {
                "id": job.id,
                "source": source["subject"] if source else None,
                "performer": target["subject"] if target else None,
                "iterations": (job.result or {}).get("iterations"),
                "created_at": job.created_at,
                "standings": standings,
                "ok": all(standing["ok"] for standing in standings),
                "exported": exported.get(job.id),
            }
        )
    return out
