"""Scan many files and folders: parallel across processes, resumable, with evidence packs.

Workers are spawned processes, each building its detector, embedder and a read-only copy of
the artist gallery once. The parent alone writes the ledger (the hash chain needs one writer) and
the resume state. A worker that dies on a hostile file (a crash in native decoding code) breaks
the pool; the parent rebuilds it and retries the in-flight files one at a time, so only the
culprit gets an ``error`` verdict.

Resume: a file is skipped when the same bytes (SHA-256) were verified before *and* nothing that
could change the verdict has changed since: the gallery, the trust anchors, and the state of
every grant the old verdict relied on (a revocation or expiry re-verifies). The previous
result lives in ``HOME/verify/state/SHA256.json`` and the ledger holds its
``verification.completed`` event.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

from likeness import strict_json
from likeness.digests import sha256_file
from likeness.durable import remove_orphaned_temporaries, write_atomic
from likeness.errors import LikenessError, WorkerStartError
from likeness.verify.gallery import ArtistGallery, GallerySnapshot, open_gallery
from likeness.verify.pipeline import MEDIA_SUFFIXES, Verifier, record_verification
from likeness.verify.result import SCHEMA_VERSION, VerificationResult

logger = logging.getLogger(__name__)

#: ``progress(done, total, result)`` after each file.
ProgressCallback = Callable[[int, int, VerificationResult], None]


class VerificationInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`verify_many`: ``done`` of ``total`` files have their results kept
    (ledger event and resume state: a rerun does not analyse them again); ``summary`` is the
    ``results.json`` written before the stop, or None (no report folder, or stopped before it).

    A ``KeyboardInterrupt`` still (callers that know nothing of it stop as before); the CLI says
    how far it got from it.
    """

    def __init__(self, done: int, total: int, summary: Path | None) -> None:
        super().__init__(f"verification interrupted after {done} of {total} file(s)")
        self.done = done
        self.total = total
        self.summary = summary


def iter_media_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly (any type, so a mislabelled file still gets a verdict) and, inside
    folders, files with an image or video extension, sorted, hidden entries skipped; symlinked
    folders are not followed (no loops)."""
    seen: set[Path] = set()
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root) / name
                    if name.startswith(".") or candidate.suffix.lower() not in MEDIA_SUFFIXES:
                        continue
                    if candidate not in seen:
                        seen.add(candidate)
                        yield candidate
        elif path not in seen:
            seen.add(path)
            yield path


def state_folder(home: Path) -> Path:
    return Path(home) / "verify" / "state"


class ResumeState:
    """Previous results by SHA-256, valid only while their verdict's inputs are unchanged."""

    def __init__(self, workspace: Any, *, gallery_fingerprint: str, anchors_fingerprint: str) -> None:
        self.workspace = workspace
        self.folder = state_folder(workspace.home)
        from likeness.detector.registered import detectors_fingerprint

        self.context = {
            "gallery": gallery_fingerprint,
            "anchors": anchors_fingerprint,
            "schema": SCHEMA_VERSION,
            "detectors": detectors_fingerprint(workspace),
        }
        # One ledger read for the whole scan, not one per file.
        self.verified = {e.payload.get("sha256") for e in workspace.ledger.events("verification.completed")}

    def lookup(self, sha256: str) -> VerificationResult | None:
        if sha256 not in self.verified:
            return None
        try:
            saved = strict_json.loads((self.folder / f"{sha256}.json").read_text(encoding="utf-8"))
            if saved.get("context") != self.context:
                return None
            result = VerificationResult.from_dict(saved["result"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        for grant_id, state in saved.get("grants", {}).items():
            try:
                if self.workspace.registry.grant_state(grant_id) != state:
                    return None
            except LikenessError:
                return None
        return result

    def save(self, result: VerificationResult) -> None:
        if not result.readable or result.sha256 is None:
            return
        body = {
            "context": self.context,
            "grants": {g.grant_id: g.state for g in result.referenced_grants()},
            "result": result.to_dict(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        # The owner's alone, like the evidence packs the results stand for.
        write_atomic(self.folder / f"{result.sha256}.json", json.dumps(body).encode("utf-8"), mode=0o600)


# ------------------------------------------------------------------------------------------
# worker side

_WORKER: dict[str, Any] = {}


def _init_worker(
    settings: Any, extra_anchors: tuple[str, ...], gallery: GallerySnapshot, report_dir: str | None
) -> None:
    """Build this worker's verifier. A failure is kept, not raised: an initializer that raises
    only ends its process, the pool reports "terminated abruptly" with no reason, and each file
    was then blamed in turn ("the decoder crashed on this file"). ``worker_verifier`` raises it
    with the first task, which brings it back to the caller."""
    try:
        _start_worker(settings, extra_anchors, gallery, report_dir)
    except Exception as exc:  # noqa: BLE001 - any reason goes back to the caller, named
        _WORKER["start_error"] = f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches every process of the command: the parent says what was
        # kept; a worker still starting printed a traceback of its imports under that line.
        _WORKER["start_error"] = "interrupted (Ctrl-C) while it started"


def _init_pool_worker(
    settings: Any, extra_anchors: tuple[str, ...], gallery: GallerySnapshot, report_dir: str | None
) -> None:
    """A pool process's initializer: SIGINT is ignored, then the verifier built. A terminal's
    Ctrl-C reaches every process of the command; the parent alone answers it, ending its
    workers (``stop_workers``), so a worker waiting for a file no longer dies printing a
    traceback under the parent's line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker(settings, extra_anchors, gallery, report_dir)


def new_worker_pool(size: int, initargs: tuple[Any, ...]) -> ProcessPoolExecutor:
    """``size`` spawned worker processes, each building its verifier from ``initargs`` once."""
    context = multiprocessing.get_context("spawn")  # fork + MediaPipe/OpenMP threads can deadlock
    return ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_init_pool_worker, initargs=initargs)


#: How long ended workers get to exit on SIGTERM before they are killed.
STOP_WAIT_S = 2.0


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """End ``pool`` at once: files not started are cancelled, and workers in the middle of one
    are ended (SIGTERM, SIGKILL after ``STOP_WAIT_S``). Workers only verify: the parent keeps
    each result as it comes, so a file left half done is verified again by the next run.
    Waiting for the files in flight instead (``shutdown(wait=True)``) kept a scan stopped by
    Ctrl-C running for as long as its slowest file (4 to 10 s for 8 s clips)."""
    # The executor has no public way to end its workers before Python 3.14
    # (``terminate_workers``); its process table is what that method reads too.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_WAIT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _start_worker(
    settings: Any, extra_anchors: tuple[str, ...], gallery: GallerySnapshot, report_dir: str | None
) -> None:
    import faiss

    from likeness.workspace import Workspace

    # Two cores are shared by the pool: one thread per worker avoids oversubscription.
    faiss.omp_set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass
    workspace = Workspace.open(settings)
    _WORKER["verifier"] = Verifier(workspace, extra_anchors=extra_anchors, gallery=ArtistGallery.from_snapshot(gallery))
    _WORKER["report_dir"] = Path(report_dir) if report_dir else None


def worker_verifier() -> Verifier:
    """This worker process's verifier; ``WorkerStartError`` with the reason it could not be built."""
    if "start_error" in _WORKER:
        raise WorkerStartError(
            f"a verification worker process could not start ({_WORKER['start_error']}); "
            "--workers 1 verifies in this process"
        )
    if "verifier" not in _WORKER:
        raise RuntimeError("this worker has no verifier: the pool initializer or VerifierPlugin did not run")
    return _WORKER["verifier"]


def _verify_in_worker(path: str) -> VerificationResult:
    return _verify_and_report(worker_verifier(), Path(path), _WORKER["report_dir"])


def _verify_and_report(
    verifier: Verifier, path: Path, report_dir: Path | None, interrupt: Callable[[], None] | None = None
) -> VerificationResult:
    result, media = verifier.verify(path, evidence=report_dir is not None, interrupt=interrupt)
    if report_dir is not None:
        from likeness.verify.report import write_evidence

        try:
            write_evidence(result, media, report_dir)
        except (OSError, LikenessError) as exc:
            from likeness.verify.result import StageError

            logger.info("%s: evidence pack not written: %s", path, exc)
            result = replace(result, errors=(*result.errors, StageError("report", str(exc))))
    return result


# ------------------------------------------------------------------------------------------
# parent side


def verify_many(
    workspace: Any,
    paths: Sequence[str | Path],
    *,
    workers: int | None = None,
    report_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    extra_anchors: Sequence[str] = (),
    force: bool = False,
    interrupt: Callable[[], None] | None = None,
) -> list[VerificationResult]:
    """Verify every file in ``paths`` (files and folders), in input order.

    ``workers``: processes (default ``workspace.settings.workers``; 1 = in this process).
    ``report_dir``: write an evidence pack per file and ``results.json``, after removing the
    temporaries killed writers left there (:func:`likeness.durable.remove_orphaned_temporaries`:
    only those whose process is gone, so a concurrent scan's stay). ``force``: verify
    again even when an unchanged earlier result exists. ``interrupt`` stops the scan by raising:
    it is called after each file, and in this process also inside each video's decode loop.
    Each readable file gets one ``verification.completed`` ledger event; unreadable files get an
    ``error`` result and none. A stop (``KeyboardInterrupt``) comes out as
    :class:`VerificationInterrupted`, saying how far it got.
    """
    files = list(iter_media_files(paths))
    done = 0
    summary: Path | None = None
    report = Path(report_dir) if report_dir is not None else None
    summary_file = report / "results.json" if report is not None else None
    summary_before = _file_identity(summary_file)
    try:
        workers = max(1, int(workers or getattr(workspace.settings, "workers", 1) or 1))
        gallery = open_gallery(workspace)  # synced once here; workers get this very gallery
        probe = Verifier(workspace, extra_anchors=extra_anchors, gallery=gallery)
        state = ResumeState(
            workspace, gallery_fingerprint=gallery.fingerprint, anchors_fingerprint=probe.anchors_fingerprint
        )
        results: list[VerificationResult | None] = [None] * len(files)
        if report is not None:
            remove_orphaned_temporaries(report)

        def finish(index: int, result: VerificationResult, *, fresh: bool) -> None:
            nonlocal done
            if fresh and result.readable:
                record_verification(workspace, result)
                state.save(result)
            results[index] = result
            done += 1
            if progress is not None:
                progress(done, len(files), result)
            if interrupt is not None:
                interrupt()  # after the file's result is kept: a stop between files loses none

        pending: list[int] = []
        for index, path in enumerate(files):
            previous = None
            if not force:
                try:
                    previous = state.lookup(sha256_file(path)) if path.is_file() else None
                except OSError:
                    previous = None
            if previous is not None:
                resumed = replace(previous, path=str(path), resumed=True)
                if report is not None and not _evidence_written(resumed, report):
                    # The state keeps no pixels: a pack with pictures needs a fresh pass.
                    pending.append(index)
                    continue
                finish(index, resumed, fresh=False)
            else:
                pending.append(index)

        try:
            if workers == 1 or len(pending) <= 1:
                for index in pending:
                    finish(index, _verify_and_report(probe, files[index], report, interrupt), fresh=True)
            else:
                _run_pool(files, pending, workers, workspace, extra_anchors, gallery.snapshot(), report, finish)
        finally:
            probe.close()

        final = [r for r in results if r is not None]
        if report is not None:
            from likeness.verify.report import write_index

            summary = write_index(final, report)
        return final
    except KeyboardInterrupt as stop:
        if summary is None and summary_file is not None and _file_identity(summary_file) != summary_before:
            summary = summary_file  # the stop landed after write_index replaced it, before it returned
        raise VerificationInterrupted(done, len(files), summary) from stop


def _file_identity(path: Path | None) -> tuple[int, int] | None:
    """(inode, mtime) of ``path``, None when absent: an atomic replace changes it."""
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns) if stat is not None else None


def _evidence_written(result: VerificationResult, report_dir: Path) -> bool:
    """Whether ``report_dir`` already holds the evidence pack of this file's result (an earlier
    scan into the same folder), which a resumed result then keeps as it is."""
    from likeness.verify.report import evidence_paths

    pack = evidence_paths(result, report_dir)
    try:
        written = strict_json.loads(pack.json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(written, dict)
        and written.get("sha256") == result.sha256
        and pack.html.is_file()
        and pack.zip.is_file()
    )


def _run_pool(
    files: list[Path],
    pending: list[int],
    workers: int,
    workspace: Any,
    extra_anchors: Sequence[str],
    gallery: GallerySnapshot,
    report: Path | None,
    finish: Callable[..., None],
) -> None:
    initargs = (workspace.settings, tuple(extra_anchors), gallery, str(report) if report else None)
    queue = list(pending)
    suspects: list[int] = []

    def new_pool(size: int) -> ProcessPoolExecutor:
        return new_worker_pool(size, initargs)

    pool = new_pool(min(workers, len(queue)))
    in_flight: dict[Future[VerificationResult], int] = {}
    try:
        while queue or in_flight:
            # Keep a small window in flight: bounded memory, and a crash implicates few files.
            while queue and len(in_flight) < 2 * workers:
                index = queue.pop(0)
                in_flight[pool.submit(_verify_in_worker, str(files[index]))] = index
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                index = in_flight.pop(future)
                try:
                    finish(index, future.result(), fresh=True)
                except BrokenProcessPool:
                    broken = True
                    suspects.append(index)
            if broken:
                suspects.extend(in_flight.values())
                in_flight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                for index in suspects:
                    finish(index, _isolated(files[index], new_pool), fresh=True)
                suspects.clear()
                pool = new_pool(min(workers, max(1, len(queue))))
    except BaseException:  # Ctrl-C, or a failure keeping a result: the files in flight are not waited for
        stop_workers(pool)
        raise
    pool.shutdown(wait=True, cancel_futures=True)


def _isolated(path: Path, new_pool: Callable[[int], ProcessPoolExecutor]) -> VerificationResult:
    """Verify one file in a fresh one-process pool; a crash there blames this file alone."""
    pool = new_pool(1)
    try:
        result = pool.submit(_verify_in_worker, str(path)).result()
    except BrokenProcessPool:
        result = VerificationResult.failed(
            str(path),
            sha256=_safe_sha256(path),
            size_bytes=_safe_size(path),
            stage="read",
            reason="the decoder crashed on this file (hostile or badly malformed media)",
        )
    except BaseException:
        stop_workers(pool)
        raise
    pool.shutdown(wait=True, cancel_futures=True)
    return result


def _safe_sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _safe_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
