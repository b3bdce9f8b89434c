"""The per-file function every engine runs: fetch, verify, hash, and a result row.

It never raises for anything about the file (a bad file gets an ``error`` verdict row) and it
writes nothing shared: no ledger, no results. Only the scan's parent writes those, so an engine
that runs a task twice (a worker died after finishing it, at-least-once delivery) costs time,
never a duplicate row or ledger event.

The verifier lives in the worker process (``likeness.verify.scan._WORKER``), built once by the
pool's initializer or by the Dask ``VerifierPlugin``.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from likeness.scan.sources import ScanItem, fetch
from likeness.verify.result import StageError, VerificationResult, utc_now

#: verdicts a person should look at: an evidence pack is written for these only
REVIEW_VERDICTS = frozenset(
    {
        "tampered",
        "enrolled-artist-unlabelled",
        "enrolled-artist-suspected-manipulation",
        "suspected-manipulation",
        "synthetic-consent-revoked",
        "synthetic-other-issuer",
    }
)


@dataclass(frozen=True)
class ScanOutcome:
    item: ScanItem
    row: dict[str, Any]
    result: VerificationResult
    fresh: bool = True  # verified now (False: a row copied from identical bytes)


def scan_item(verifier: Any, item: ScanItem, *, version: str, report_dir: Path | None) -> ScanOutcome:
    """Verify one file with ``verifier`` and build its result row."""
    from likeness.scan.perceptual import file_hashes

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="likeness-scan-") as scratch:
        try:
            path, _copied = fetch(item, Path(scratch))
        except (OSError, ValueError) as exc:
            result = VerificationResult.failed(
                item.location, sha256=item.sha256, size_bytes=None, stage="read", reason=f"cannot fetch: {exc}"
            )
            return ScanOutcome(
                item, result_row(result, item, version=version, fetch_s=time.perf_counter() - started), result
            )
        fetched = time.perf_counter()
        result, media = verifier.verify(path, evidence=report_dir is not None)
        verified = time.perf_counter()
        hashes = file_hashes(path, result.media_type, verifier.decode_limits) if result.readable else []
        hashed = time.perf_counter()
        result = replace(result, path=item.location)
        evidence = None
        if report_dir is not None and result.verdict.code in REVIEW_VERDICTS:
            from likeness.errors import LikenessError
            from likeness.verify.report import write_evidence

            try:
                evidence = str(write_evidence(result, media, report_dir).zip)
            except (OSError, LikenessError) as exc:
                result = replace(result, errors=(*result.errors, StageError("report", str(exc))))
    row = result_row(
        result,
        item,
        version=version,
        fetch_s=fetched - started,
        verify_s=verified - fetched,
        hash_s=hashed - verified,
        hashes=hashes,
        evidence=evidence,
    )
    return ScanOutcome(item, row, result)


def result_row(
    result: VerificationResult,
    item: ScanItem,
    *,
    version: str,
    fetch_s: float | None = None,
    verify_s: float | None = None,
    hash_s: float | None = None,
    hashes: list | None = None,
    evidence: str | None = None,
) -> dict[str, Any]:
    """The Parquet row (``likeness.scan.results.SCHEMA``) of one verified file."""
    watermark = result.watermark
    faces = result.faces.faces if result.faces else ()
    return {
        "location": item.location,
        "sha256": item.sha256 or result.sha256,
        "verifier_version": version,
        "size_bytes": result.size_bytes,
        "media_type": result.media_type,
        "verdict": result.verdict.code,
        "rule": result.verdict.rule,
        "watermark_payload": watermark.payload if watermark is not None and watermark.found else None,
        "render_job_id": watermark.render.job_id if watermark is not None and watermark.render else None,
        "c2pa_state": result.c2pa.state if result.c2pa is not None else None,
        "matched_subjects": sorted({f.match.slug for f in faces if f.match}),
        "manipulation": result.manipulation.summary,
        "visible_label": None if result.visible_label is None else bool(result.visible_label.present),
        "errors": [f"{e.stage}: {e.reason}" for e in result.errors],
        "phashes": [h.phash for h in hashes or ()],
        "phashes_mirror": [h.mirror for h in hashes or ()],
        "evidence": evidence,
        "same_as": None,
        "fetch_s": fetch_s,
        "verify_s": verify_s,
        "hash_s": hash_s,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "scanned_at": utc_now(),
    }


def copied_row(row: dict[str, Any], item: ScanItem) -> dict[str, Any]:
    """The row for ``item`` whose bytes are those of an already verified ``row``."""
    return {
        **row,
        "location": item.location,
        "same_as": row["location"],
        "fetch_s": None,
        "verify_s": None,
        "hash_s": None,
        "scanned_at": utc_now(),
    }


def scan_in_worker(item: ScanItem, version: str) -> ScanOutcome:
    """The task both engines submit: ``scan_item`` with this worker process's verifier."""
    from likeness.verify.scan import _WORKER, worker_verifier

    return scan_item(worker_verifier(), item, version=version, report_dir=_WORKER.get("report_dir"))


def scan_batch_in_worker(items: tuple[ScanItem, ...], version: str) -> list[ScanOutcome]:
    """``scan_in_worker`` over several files in one task (fewer tasks for the scheduler)."""
    return [scan_in_worker(item, version) for item in items]
