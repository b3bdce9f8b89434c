"""Watermark-payload lookup on a ledger of N events: the full scan before the index, and the index.

Verify turns a watermark read from a file into the render that made it. Before migration 0002
that was ``Ledger.find("render.completed", watermark_payload=...)``: one query over every
event of that type with a substring test on the canonical payload (no index can serve it). Now
it is ``Ledger.find_watermark``: a seek in ``ledger_watermark_index``, then the event it points
to is re-read and its hash recomputed. Both run here, on the same database, in the same run.

The ledger is built quickly but honestly: a fresh SQLite workspace migrated to head, then N
events bulk-inserted (``executemany`` in one transaction) with a real hash chain (``event_hash``
over RFC 8785 payloads, as ``Ledger.append`` writes them) and their index rows from the same
``watermark_index_row`` rule the append path uses. Events repeat in cycles of ten shaped like a
busy workspace: 2 ``render.reserved``, 2 ``render.completed`` (the writer's payload: job id,
output hash and name, watermark payload, frames, size...), 5 ``verification.completed`` (the
verify payload, some carrying a render's watermark payload, so the substring test has decoys of
the right shape) and 1 ``preview.written``. Appending through ``Ledger.append`` one event at a
time would take hours at a million rows; the rows are the same.

Timed, median of ``--repeat`` lookups each (the full scan ``--scan-repeat`` times): a payload
near the start, in the middle, at the end, and one that is on no event. Prints a table.

    PYTHONPATH=src .venv/bin/python benchmarks/ledger_index.py --events 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

CYCLE = (
    "render.reserved",
    "render.completed",
    "verification.completed",
    "verification.completed",
    "render.reserved",
    "render.completed",
    "verification.completed",
    "verification.completed",
    "verification.completed",
    "preview.written",
)


def _payload(event_type: str, i: int, rng, ids: dict) -> dict:
    job = f"{i:032x}"
    wm = f"{(i * 2654435761) % (1 << 64):016x}"  # distinct per event, spread like hashes
    tag = {
        "authorization_id": ids["authz"],
        "grant_id": ids["grant"],
        "subject_id": ids["subject"],
        "org_id": ids["org"],
        "use": "music_video",
    }
    if event_type == "render.reserved":
        return {**tag, "job_id": job}
    if event_type == "render.completed":
        return {
            **tag,
            "job_id": job,
            "output_sha256": uuid.UUID(int=rng.getrandbits(128)).hex * 2,
            "output_name": f"mv_shot_{i}.mp4",
            "watermark_payload": wm,
            "watermark_algorithm": "likeness-dct-v3",
            "c2pa": True,
            "labelled": True,
            "kind": "video",
            "frames": 240 + i % 97,
            "width": 1280,
            "height": 720,
            "source_name": f"take_{i % 500}.mp4",
        }
    if event_type == "preview.written":
        return {
            **tag,
            "use": "training",
            "job_id": job,
            "watermark_payload": wm,
            "watermark_algorithm": "likeness-dct-v3",
            "labelled": True,
            "kind": "training_preview",
            "iteration": i % 10000,
            "output_names": [f"preview_{i}.png"],
        }
    seen = ids["seen"][i % len(ids["seen"])] if ids["seen"] and i % 3 == 0 else None
    return {
        "path": f"/crawl/batch{i // 10000}/{i}.jpg",
        "name": f"{i}.jpg",
        "sha256": uuid.UUID(int=rng.getrandbits(128)).hex * 2,
        "size_bytes": 40000 + i % 90000,
        "media_type": "image",
        "verdict": "authorized_synthetic" if seen else "authentic_or_unknown",
        "verdict_rule": "watermark_on_ledger" if seen else "no_evidence",
        "schema": 3,
        "c2pa_state": None,
        "watermark_payload": seen,
        "render_job_id": None,
        "grant_ids": [],
        "matched_subjects": ["mina"] if seen else [],
        "partial": False,
        "manipulation": None,
        "visible_label": None,
    }


def build(workspace, events: int) -> dict[str, list[str]]:
    """Bulk-insert ``events`` chained events and their index rows; return payloads by position."""
    import random

    from likeness.consent.canonical import canonical_bytes
    from likeness.consent.ledger import GENESIS_HASH, event_hash, watermark_index_row

    rng = random.Random(7)
    ids = {k: uuid.UUID(int=rng.getrandbits(128)).hex for k in ("authz", "grant", "subject", "org")}
    ids["seen"] = []
    payloads: list[str] = []
    prev = GENESIS_HASH
    created = "2026-12-01T09:00:00Z"
    raw = workspace.engine.raw_connection()
    try:
        cursor = raw.cursor()
        ledger_batch, index_batch = [], []
        for i in range(events):
            seq = i + 1
            event_type = CYCLE[i % len(CYCLE)]
            payload = _payload(event_type, i, rng, ids)
            payload_json = canonical_bytes(payload).decode()
            event_id = uuid.UUID(int=rng.getrandbits(128)).hex
            digest = event_hash(
                seq=seq,
                event_id=event_id,
                event_type=event_type,
                created_at=created,
                payload_json=payload_json,
                prev_hash=prev,
            )
            ledger_batch.append((seq, event_id, event_type, created, payload_json, prev, digest))
            row = watermark_index_row(seq=seq, event_id=event_id, event_type=event_type, payload=payload)
            if row is not None:
                index_batch.append((row.seq, row.watermark_payload, row.event_type, row.event_id))
                if event_type == "render.completed":
                    payloads.append(row.watermark_payload)
                    if len(ids["seen"]) < 50:
                        ids["seen"].append(row.watermark_payload)
            prev = digest
            if len(ledger_batch) >= 20000:
                _flush(cursor, ledger_batch, index_batch)
        _flush(cursor, ledger_batch, index_batch)
        raw.commit()
    finally:
        raw.close()
    return {"render_payloads": payloads}


def _flush(cursor, ledger_batch: list, index_batch: list) -> None:
    cursor.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)", ledger_batch)
    cursor.executemany("INSERT INTO ledger_watermark_index VALUES (?, ?, ?, ?)", index_batch)
    ledger_batch.clear()
    index_batch.clear()


def _median_ms(call, repeat: int) -> tuple[float, object]:
    result = call()  # warm-up (and the answer, compared below)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200, help="index lookups per case")
    parser.add_argument("--scan-repeat", type=int, default=5, help="full-scan lookups per case")
    parser.add_argument("--keep", type=Path, default=None, help="build the workspace here and keep it")
    args = parser.parse_args()

    from likeness.config import Settings
    from likeness.workspace import Workspace

    scratch = None if args.keep else Path(tempfile.mkdtemp(prefix="ledger-index-"))
    home = args.keep or scratch / "home"
    workspace = Workspace.init(Settings(home=home))
    start = time.perf_counter()
    built = build(workspace, args.events)
    build_s = time.perf_counter() - start
    rows = workspace.ledger.count()
    size_mb = os.path.getsize(home / "likeness.db") / 1e6
    print(
        f"ledger: {rows} events, {len(built['render_payloads'])} render.completed, "
        f"database {size_mb:.0f} MB, built in {build_s:.0f} s",
        file=sys.stderr,
    )

    render_payloads = built["render_payloads"]
    cases = {
        "first render": render_payloads[0],
        "middle render": render_payloads[len(render_payloads) // 2],
        "last render": render_payloads[-1],
        "payload on no event": "f" * 16,
    }
    print(f"\nwatermark payload lookup, SQLite, {rows:,} ledger events (median ms)\n")
    print("| case | full scan (before) | index (now) | speed-up | same events |")
    print("|---|---:|---:|---:|---|")
    for name, payload in cases.items():
        scan_ms, scan_found = _median_ms(
            lambda p=payload: workspace.ledger.find("render.completed", watermark_payload=p), args.scan_repeat
        )
        index_ms, index_found = _median_ms(
            lambda p=payload: workspace.ledger.find_watermark(p, "render.completed"), args.repeat
        )
        same = [e.seq for e in scan_found] == [e.seq for e in index_found]
        print(f"| {name} | {scan_ms:.1f} | {index_ms:.3f} | {scan_ms / index_ms:,.0f}x | {same} |")
    workspace.close()
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
