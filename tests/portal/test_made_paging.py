"""The holder's one list read a page at a time by the database (``made_for_holder``) is, page
for page, what reading every grant's ``uses_of_grant`` and sorting gives (the list before
paging moved into the query), on a seeded ledger with two holders, decoys and other events;
and only the holder's own grants, on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import text

from likeness.config import Settings
from likeness.consent.canonical import now_utc
from likeness.consent.holder_portal import MADE_EVENTS, USE_EVENTS, HolderPortal
from likeness.errors import LedgerRowUnreadable
from likeness.workspace import Workspace
from tests.conftest import add_subject, issue_grant


def _seed(workspace: Workspace) -> dict[str, list[str]]:
    """Haneul (3 grants) and Sora (2 grants), 400 seeded events of every use kind under them, a
    refusal, and decoys: one of Sora's renders whose nested member names Haneul's grant."""
    registry = workspace.registry
    registry.add_org("studio")
    until = now_utc() + timedelta(days=30)
    grants: dict[str, list[str]] = {}
    for slug, count in (("haneul", 3), ("sora", 2)):
        add_subject(registry, slug, slug.title())
        grants[slug] = [issue_grant(registry, slug, "studio", ["training", "music_video"], valid_until=until)]
        grants[slug] += [issue_grant(registry, slug, "studio", ["fan_message"], valid_until=until)]
        grants[slug] += [
            issue_grant(registry, slug, "studio", ["training"], valid_until=until) for _ in range(count - 2)
        ]
    rng = random.Random(29)
    everyone = grants["haneul"] + grants["sora"]
    workspace.ledger.append_many(
        [
            (rng.choice(USE_EVENTS), {"grant_id": rng.choice(everyone), "use": "music_video", "job_id": f"{n:032x}"})
            for n in range(400)
        ]
    )
    decoy = {
        "grant_id": grants["sora"][0],
        "use": "training",
        "job_id": "d" * 32,
        "of": {"grant_id": grants["haneul"][0]},
    }
    workspace.ledger.append("render.completed", decoy)
    workspace.ledger.append("authorization.refused", {"subject": "haneul", "org": "studio", "reason": "no_grant"})
    workspace.ledger.append("verification.completed", {"grant_id": grants["haneul"][0], "sha256": "e" * 64})
    return grants


def _every_grant_sorted(portal: HolderPortal, grant_ids: list[str]) -> list[int]:
    """The list as it was read before: each grant's uses, sorted newest first."""
    made = [e for g in grant_ids for e in portal.uses_of_grant(g) if e.event_type in MADE_EVENTS]
    return [e.seq for e in sorted(made, key=lambda e: e.seq, reverse=True)]


def _paged(portal: HolderPortal, holder_id: str, size: int) -> tuple[list[int], set[int]]:
    seqs, totals, offset = [], set(), 0
    while True:
        page = portal.made_for_holder(holder_id, offset=offset, limit=size)
        totals.add(page.total)
        if not page.events:
            return seqs, totals
        seqs += [e.seq for e in page.events]
        offset += size


def _agree(workspace: Workspace, grants: dict[str, list[str]]) -> None:
    portal = HolderPortal(workspace)
    for slug in ("haneul", "sora"):
        holder_id = workspace.registry.get_holder(f"{slug}-holder").id
        before = _every_grant_sorted(portal, grants[slug])
        assert len(before) > 30
        for size in (7, 50):
            seqs, totals = _paged(portal, holder_id, size)
            assert seqs == before and totals == {len(before)}
        page = portal.made_for_holder(holder_id, offset=10, limit=5)
        assert [e.seq for e in page.events] == before[10:15]
        assert {e.payload["grant_id"] for e in page.events} <= set(grants[slug])
    haneul = workspace.registry.get_holder("haneul-holder").id
    assert "d" * 32 not in {e.payload["job_id"] for e in portal.made_for_holder(haneul, limit=1000).events}
    assert portal.made_for_holder("no-such-holder").total == 0


def test_the_paged_list_is_every_grants_list_on_sqlite(workspace) -> None:
    _agree(workspace, _seed(workspace))


def test_the_paged_list_is_every_grants_list_on_postgresql(postgres_url, tmp_path) -> None:
    workspace = Workspace.init(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        _agree(workspace, _seed(workspace))
    finally:
        workspace.close()


def test_a_payload_the_database_cannot_parse_is_named(workspace) -> None:
    """A made row edited into text that is not JSON: the page names the row (as each grant's
    list does), where the database's JSON reader would only fail."""
    grants = _seed(workspace)
    portal = HolderPortal(workspace)
    haneul = workspace.registry.get_holder("haneul-holder").id
    sora = workspace.registry.get_holder("sora-holder").id
    before = _every_grant_sorted(portal, grants["sora"])
    broken = workspace.ledger.append("render.completed", {"grant_id": grants["haneul"][0], "use": "training"})
    with workspace.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        conn.execute(
            text("UPDATE ledger SET payload = :p WHERE seq = :s"),
            {"p": '{"grant_id":"' + grants["haneul"][0] + '",', "s": broken.seq},
        )
    with pytest.raises(LedgerRowUnreadable) as unreadable:
        portal.made_for_holder(haneul)
    assert unreadable.value.seq == broken.seq
    assert [e.seq for e in portal.made_for_holder(sora, limit=1000).events] == before  # not Sora's row
