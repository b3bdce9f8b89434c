"""The portal's "everything made with your face" (``/portal/made``): what one page costs to read.

Before, the page read every grant of the holder (``grants_of_holder``), every use of each
(``uses_of_grant``: one ledger query per grant, every row parsed and checked), sorted them all
and kept 50; then read the grants again for their links. Now the database filters the holder's
grants' made events, counts them and returns one page (``HolderPortal.made_for_holder``:
``ORDER BY seq DESC LIMIT/OFFSET`` on the payload's ``grant_id``). Both run here, on the same
SQLite workspace, and their pages are compared.

The workspace: one holder with ``--grants`` grants (signed on the holders' machine, as the tests
sign them), ``--uses`` made events under each (renders, previews, models, in a seeded mix) and
as many other use events (authorizations, reservations) beside them, plus a second holder with
the same; appended with ``Ledger.append_many``. Prints a table of median milliseconds.

    PYTHONPATH=src:. .venv/bin/python benchmarks/portal_made.py --grants 20 --uses 500
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

MADE_MIX = ("render.completed", "render.completed", "preview.written", "model.trained")
OTHER_MIX = ("authorization.issued", "render.reserved", "faceset.created")


def build(workspace: Any, grants: int, uses: int) -> dict[str, list[str]]:
    """Two holders with ``grants`` grants each and ``uses`` made + ``uses`` other events per grant."""
    from likeness.consent.canonical import now_utc
    from tests.conftest import add_subject, issue_grant

    registry = workspace.registry
    registry.add_org("studio")
    until = now_utc() + timedelta(days=365)
    rng = random.Random(29)
    made: dict[str, list[str]] = {}
    for slug in ("haneul", "sora"):
        add_subject(registry, slug, slug.title())
        made[slug] = [issue_grant(registry, slug, "studio", ["music_video"], valid_until=until) for _ in range(grants)]
    everyone = made["haneul"] + made["sora"]
    events = []
    for n in range(2 * uses * len(everyone)):
        kind = rng.choice(MADE_MIX) if n % 2 else rng.choice(OTHER_MIX)
        payload = {
            "grant_id": rng.choice(everyone),
            "use": "music_video",
            "job_id": f"{n:032x}",
            "watermark_payload": f"{(n * 2654435761) % (1 << 64):016x}",
            "output_name": f"shot_{n}.mp4",
            "output_sha256": f"{n:064x}",
        }
        events.append((kind, payload))
    for start in range(0, len(events), 2000):
        workspace.ledger.append_many(events[start : start + 2000])
    return made


def before(portal: Any, holder_id: str, offset: int, limit: int) -> tuple[list[int], int]:
    """The page as the route read it before: every grant's uses, sorted, sliced; grants twice."""
    from likeness.consent.holder_portal import MADE_EVENTS

    made = [e for g in portal.grants_of_holder(holder_id) for e in portal.uses_of_grant(g.id)]
    made = sorted((e for e in made if e.event_type in MADE_EVENTS), key=lambda e: e.seq, reverse=True)
    {g.id: g for g in portal.grants_of_holder(holder_id)}  # the route's links
    return [e.seq for e in made[offset : offset + limit]], len(made)


def after(portal: Any, holder_id: str, offset: int, limit: int) -> tuple[list[int], int]:
    page = portal.made_for_holder(holder_id, offset=offset, limit=limit)
    return [e.seq for e in page.events], page.total


def _median_ms(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = call()  # warm-up, and the answer compared below
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grants", type=int, default=20)
    parser.add_argument("--uses", type=int, default=500, help="made events per grant (and as many others)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from likeness.config import Settings
    from likeness.consent.holder_portal import MADE_PAGE, HolderPortal
    from likeness.workspace import Workspace

    scratch = Path(tempfile.mkdtemp(prefix="portal-made-"))
    try:
        workspace = Workspace.init(Settings(home=scratch / "home"))
        build(workspace, args.grants, args.uses)
        portal = HolderPortal(workspace)
        holder_id = workspace.registry.get_holder("haneul-holder").id
        total = after(portal, holder_id, 0, 1)[1]
        print(f"ledger: {workspace.ledger.count()} events; the holder: {args.grants} grants, {total} made")
        print(f"{'page':>6} | {'before ms':>10} | {'after ms':>9} | same")
        last = max(1, -(-total // MADE_PAGE))
        for number in (1, 2, last // 2, last):
            offset = (number - 1) * MADE_PAGE
            old_ms, old = _median_ms(lambda o=offset: before(portal, holder_id, o, MADE_PAGE), args.repeat)
            new_ms, new = _median_ms(lambda o=offset: after(portal, holder_id, o, MADE_PAGE), args.repeat)
            print(f"{number:>6} | {old_ms:>10.1f} | {new_ms:>9.1f} | {old == new}")
        workspace.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
