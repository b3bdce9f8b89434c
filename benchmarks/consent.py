"""What consent decisions cost: authorize, recheck and consume_render against a ledger of N rows.

Every decision now checks the grant, subject and organisation rows against what the ledger
holds (``likeness.consent.integrity``, called from ``likeness.consent.policy``), so a decision
reads ledger events and its cost may grow with the ledger. Renders recheck their authorization
every 25 rendered frames, so ``recheck`` sits on the render path.

Each measurement runs in its own subprocess, once for the current tree and, with
``--baseline-src``, once for another tree's ``src`` (``PYTHONPATH`` takes precedence over the
virtual environment's editable install), in the same run:

    git worktree add /tmp/consent-base e9a47f5
    .venv/bin/python benchmarks/consent.py --baseline-src /tmp/consent-base/src --rows 200 5000
    git worktree remove /tmp/consent-base

Per run: a fresh SQLite workspace in a temporary folder; organisation ``studio``; a virtual idol
``mina`` owned by it; a grant to studio for training and music_video, valid 30 days, no render
limit; then N ``note`` events appended to the ledger (filler). Timed, after warm-up, median of
``--repeat`` calls: ``policy.authorize("mina", "music_video", "studio")``, ``authz.recheck()``
and ``authz.consume_render(job)`` with a fresh job id each call. Some decisions append ledger
events themselves (render reservations, for one), so the ledger grows a little during a run; the
sizes before and after go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ("authorize", "recheck", "consume_render")


def _median_ms(call, repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


def measure(rows: int, repeat: int, warmup: int) -> dict:
    """Build a workspace with ``rows`` filler ledger rows and time the three decisions."""
    from datetime import timedelta

    import likeness
    from likeness.config import Settings
    from likeness.consent.canonical import now_utc
    from likeness.consent.holder import HolderMachine
    from likeness.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        workspace = Workspace.init(Settings(home=Path(tmp) / "home"))
        try:
            registry = workspace.registry
            registry.add_org("studio")
            holders = HolderMachine.beside(workspace.home)  # the rights holder signs on their own machine
            holders.enrol(registry, "mina", "Mina", kind="virtual_idol", owner_org="studio")
            holders.grant(
                registry, "mina", "studio", ["training", "music_video"], valid_until=now_utc() + timedelta(days=30)
            )
            start = time.perf_counter()
            for i in range(rows):
                workspace.ledger.append("note", {"i": i, "text": f"filler row {i}"})
            fill_s = time.perf_counter() - start
            rows_before = workspace.ledger.count()

            policy = workspace.policy
            authz = policy.authorize("mina", "music_video", "studio")
            results = {
                "authorize": _median_ms(lambda: policy.authorize("mina", "music_video", "studio"), repeat, warmup),
                "recheck": _median_ms(authz.recheck, repeat, warmup),
                "consume_render": _median_ms(lambda: authz.consume_render(f"bench-{uuid.uuid4().hex}"), repeat, warmup),
            }
            return {
                "likeness": str(Path(likeness.__file__).resolve().parent),
                "filler_rows": rows,
                "ledger_rows_before": rows_before,
                "ledger_rows_after": workspace.ledger.count(),
                "fill_s": round(fill_s, 2),
                "ms": results,
            }
        finally:
            workspace.close()


def _run_tree(src: Path, rows: int, repeat: int, warmup: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--rows",
            str(rows),
            "--repeat",
            str(repeat),
            "--warmup",
            str(warmup),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        raise SystemExit(f"measurement with PYTHONPATH={src} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = (src / "likeness").resolve()
    if Path(result["likeness"]) != expected:
        raise SystemExit(f"imported likeness from {result['likeness']}, expected {expected}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="the src folder of the baseline tree (e.g. a worktree of e9a47f5)",
    )
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[200, 5000],
        help="filler rows appended to the ledger before timing (default 200 5000)",
    )
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per operation")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(measure(args.rows[0], args.repeat, args.warmup)))
        return

    current_src = ROOT / "src"
    table = []
    for rows in args.rows:
        base = _run_tree(args.baseline_src.resolve(), rows, args.repeat, args.warmup) if args.baseline_src else None
        cur = _run_tree(current_src, rows, args.repeat, args.warmup)
        for label, result in (("baseline", base), ("current", cur)):
            if result:
                print(
                    f"# {label}: {result['likeness']}, {rows} filler rows (ledger {result['ledger_rows_before']}"
                    f" -> {result['ledger_rows_after']} rows during timing, fill {result['fill_s']} s)",
                    file=sys.stderr,
                )
        for op in OPERATIONS:
            table.append((op, rows, base["ms"][op] if base else None, cur["ms"][op]))

    print(
        f"median of {args.repeat} calls after {args.warmup} warm-up; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print()
    print("| operation | rows | baseline ms | current ms | ratio |")
    print("|---|---|---|---|---|")
    for op, rows, base_ms, cur_ms in table:
        base_txt = f"{base_ms:.2f}" if base_ms is not None else "-"
        ratio = f"{cur_ms / base_ms:.2f}x" if base_ms else "-"
        print(f"| {op} | {rows} | {base_txt} | {cur_ms:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
