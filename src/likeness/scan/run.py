"""``likeness scan``: verify a large collection on one engine, into a resumable Parquet dataset.

The parent process lists the files and hashes them, decides what is left to do, hands that to
the engine, and is the only writer of the two shared records: the ledger (one
``verification.completed`` event per freshly verified readable file, in batches, since the hash
chain has one writer) and the results dataset (one row per file). Workers only verify.

Idempotent and resumable, keyed by (location, sha256, verifier version):

- a file whose key is already in the results is skipped (a re-run, or a run after an
  interruption, verifies only what is missing);
- bytes already verified under this verifier version at another location are not verified
  again: the new location gets a copy of the row, with ``same_as`` naming the verified one;
- an engine that delivers a file twice (a worker died after finishing it) has the second
  delivery dropped; a worker that dies mid-file has the file run again, so nothing is lost.

Results are written every ``flush_every`` files or ``flush_seconds``, ledger events first, then
the part file: an interruption between the two costs one re-verification of those files at the
next run (and a second ledger event for them), never a row without its verification.

The verifier version changes when anything that decides a verdict changes: the software and
result schema, the artist gallery, the trust anchors, the revocations on the ledger and the
state of every grant (a revoked or expired grant turns an authorized render into a revoked one).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likeness import __version__
from likeness.consent.canonical import canonical_sha256
from likeness.durable import remove_orphaned_temporaries
from likeness.scan.engines import WorkerSetup, make_engine
from likeness.scan.results import ResultsDataset, row_key
from likeness.scan.sources import ScanItem, collect_items
from likeness.scan.task import ScanOutcome, copied_row
from likeness.verify.gallery import open_gallery
from likeness.verify.pipeline import Verifier, verification_payload
from likeness.verify.result import SCHEMA_VERSION

REVOCATION_EVENTS = ("grant.revoked", "release.revoked")


@dataclass
class ScanSummary:
    files: int
    skipped: int  # already in the results under this verifier version
    verified: int  # verified in this run
    copied: int  # identical bytes verified elsewhere: row copied
    verifier_version: str
    dashboard_link: str | None = None
    verified_locations: list[str] = field(default_factory=list)
    errors: int = 0  # rows with verdict ``error`` written in this run


@dataclass(frozen=True)
class ScanStart:
    total: int
    skipped: int
    to_verify: int
    engine: str
    dashboard_link: str | None


def verifier_version(workspace: Any, *, gallery_fingerprint: str, anchors_fingerprint: str) -> str:
    """``likeness VERSION+DIGEST``: changes with the software, schema, gallery, trust anchors,
    the ledger's revocations and every grant's state (an expiry changes verdicts too)."""
    revocations = sorted(e.event_id for t in REVOCATION_EVENTS for e in workspace.ledger.events(t))
    grant_ids = {str(e.payload.get("grant_id")) for e in workspace.ledger.events("grant.issued")}
    grants = sorted([grant_id, workspace.registry.grant_state(grant_id)] for grant_id in grant_ids)
    digest = canonical_sha256(
        {
            "software": __version__,
            "schema": SCHEMA_VERSION,
            "gallery": gallery_fingerprint,
            "anchors": anchors_fingerprint,
            "revocations": revocations,
            "grants": grants,
        }
    )
    return f"{__version__}+{digest[:16]}"


def scan_collection(
    workspace: Any,
    sources: Sequence[str | Path],
    out: Path,
    *,
    engine: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    report_dir: Path | None = None,
    extra_anchors: Sequence[str] = (),
    on_start: Callable[[ScanStart], None] | None = None,
    on_file: Callable[[dict[str, Any]], None] | None = None,
    flush_every: int = 32,
    flush_seconds: float = 2.0,
    dashboard_address: str | None = ":8787",
    files_per_task: int = 1,
) -> ScanSummary:
    """Scan every file of ``sources`` (folders, CSV/Parquet manifests, fsspec URLs) into the
    Parquet dataset ``out``; see the module docstring for what is skipped and written.

    ``engine``: ``local`` (``workers`` processes, 1 = this process) or ``dask`` (``scheduler``
    address, an existing ``client``, or a LocalCluster of ``workers`` processes; ``files_per_task``
    files per Dask future).
    ``report_dir``: evidence packs for files that need review; the temporaries a killed writer
    left there are removed first (:func:`likeness.durable.remove_orphaned_temporaries`: only
    those whose process is gone, so a concurrent scan's stay). ``on_start`` gets the counts
    and the Dask dashboard link before the first file; ``on_file`` each row as it is kept.
    """
    items = collect_items(sources)
    workers = max(1, int(workers or getattr(workspace.settings, "workers", 1) or 1))
    gallery = open_gallery(workspace)  # synced once here; workers get this very gallery
    probe = Verifier(workspace, extra_anchors=extra_anchors, gallery=gallery)
    version = verifier_version(
        workspace, gallery_fingerprint=gallery.fingerprint, anchors_fingerprint=probe.anchors_fingerprint
    )
    dataset = ResultsDataset(out)
    dataset.create()
    if report_dir is not None:
        remove_orphaned_temporaries(report_dir)
    done = dataset.keys()
    verified_before = dataset.by_content(version)

    summary = ScanSummary(files=len(items), skipped=0, verified=0, copied=0, verifier_version=version)
    pending: list[ScanItem] = []
    copies: list[tuple[dict[str, Any], ScanItem]] = []
    waiting: dict[str, list[ScanItem]] = {}  # sha256 -> later locations of bytes being verified now
    for item in items:
        if (item.location, item.sha256 or "", version) in done:
            summary.skipped += 1
        elif item.sha256 and item.sha256 in verified_before:
            copies.append((verified_before[item.sha256], item))
        elif item.sha256 and item.sha256 in waiting:
            waiting[item.sha256].append(item)
        else:
            if item.sha256:
                waiting[item.sha256] = []
            pending.append(item)

    written: set[tuple[str, str, str]] = set()
    buffer: list[ScanOutcome | dict[str, Any]] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        # Taken out first: a write that fails (a full disk) is not flushed again by the
        # ``finally`` below, which put the batch's events on the ledger twice.
        batch = buffer[:]
        buffer.clear()
        fresh = [o.result for o in batch if isinstance(o, ScanOutcome) and o.result.readable and o.result.sha256]
        if fresh:
            workspace.ledger.append_many([("verification.completed", verification_payload(r)) for r in fresh])
        dataset.append(o.row if isinstance(o, ScanOutcome) else o for o in batch)
        last_flush = time.monotonic()

    def keep(entry: ScanOutcome | dict[str, Any]) -> None:
        row = entry.row if isinstance(entry, ScanOutcome) else entry
        key = row_key(row)
        if key in written:
            return  # delivered twice (at least once): one row
        written.add(key)
        buffer.append(entry)
        if isinstance(entry, ScanOutcome):
            summary.verified += 1
            summary.verified_locations.append(row["location"])
        else:
            summary.copied += 1
        summary.errors += row["verdict"] == "error"
        if on_file is not None:
            on_file(row)
        if len(buffer) >= flush_every or time.monotonic() - last_flush >= flush_seconds:
            flush()

    setup = WorkerSetup(workspace.settings, extra_anchors, gallery.snapshot(), report_dir)
    try:
        with make_engine(
            engine,
            setup,
            workers=workers,
            scheduler=scheduler,
            verifier=probe,
            client=client,
            dashboard_address=dashboard_address,
            files_per_task=files_per_task,
        ) as runner:
            summary.dashboard_link = runner.dashboard_link
            if on_start is not None:
                on_start(
                    ScanStart(
                        total=len(items),
                        skipped=summary.skipped,
                        to_verify=len(pending),
                        engine=engine,
                        dashboard_link=runner.dashboard_link,
                    )
                )
            try:
                for row, item in copies:
                    keep(copied_row(row, item))
                # closed on the way out, so that an engine stops its workers when the stop (a
                # Ctrl-C in ``on_file``) comes here, not only when it comes inside the engine
                with contextlib.closing(runner.run(pending, version=version)) as outcomes:
                    for outcome in outcomes:
                        keep(outcome)
                        for later in waiting.pop(outcome.item.sha256 or "", []):
                            keep(copied_row(outcome.row, later))
            finally:
                flush()  # what finished is kept, also on an interruption
    finally:
        probe.close()
    return summary
