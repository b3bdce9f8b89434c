"""The public reports' daily quota on a ledger of N ``case.opened`` events: before and after.

Every report (``POST /api/v1/public/reports``) asks the quota first. Before trial 11 it read every
``case.opened`` event ever as ORM objects and parsed their dates in Python (``before`` below, the
old code inline); now ``check_report_quota`` reads the last day's as an index range on
``(event_type, created_at)`` (migration 0007). Two ledgers: N events of the last day (the
attacker's worst case within a day) and the same N dated two days back (the history every
workspace accumulates). Events are appended through ``Ledger.append`` (about a minute for 20,000
on a 2-core machine); the old ones are back-dated by patching the ledger's clock. Prints the
median and fastest of ``--repeat`` runs.

    PYTHONPATH=src .venv/bin/python benchmarks/report_quota.py --events 20000
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from sqlalchemy import select

import likeness.consent.ledger as ledger_module
from likeness.config import Settings
from likeness.consent.canonical import now_utc, parse_utc
from likeness.consent.tables import LedgerRow
from likeness.service.cases import check_report_quota
from likeness.workspace import Workspace


def before(workspace: Workspace) -> int:
    """The quota's reading before trial 11: every event, ORM objects, dates parsed in Python."""
    since = now_utc() - timedelta(days=1)
    with workspace.ledger._session_factory() as session:
        query = select(LedgerRow).where(LedgerRow.event_type == "case.opened").order_by(LedgerRow.seq)
        events = [(r.created_at, json.loads(r.payload)) for r in session.scalars(query)]
    return sum(int(p.get("size_bytes") or 0) for at, p in events if parse_utc(at) > since)


def filled(home: Path, events: int, *, days_ago: int) -> Workspace:
    workspace = Workspace.init(Settings(home=home))
    moment = now_utc() - timedelta(days=days_ago)
    with mock.patch.object(ledger_module, "now_utc", lambda: moment):
        for i in range(events):
            payload = {"case_id": secrets.token_hex(16), "size_bytes": 10, "sha256": secrets.token_hex(32), "n": i}
            workspace.ledger.append("case.opened", payload)
    return workspace


def timed(call, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"| case.opened events ({args.events}) | before: median (fastest) s | after: median (fastest) s |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for label, days_ago in (("of the last day", 0), ("two days old", 2)):
            workspace = filled(Path(scratch) / label.replace(" ", "-"), args.events, days_ago=days_ago)
            services = SimpleNamespace(
                workspace=workspace, settings=SimpleNamespace(public_report_bytes_per_day=10**15)
            )
            old = timed(lambda: before(workspace), args.repeat)
            new = timed(lambda: check_report_quota(services, 0), args.repeat)
            print(f"| {label} | {old[0]:.4f} ({old[1]:.4f}) | {new[0]:.4f} ({new[1]:.4f}) |")
            workspace.close()


if __name__ == "__main__":
    main()
