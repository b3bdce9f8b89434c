"""The worker: claims jobs from the database, runs them, keeps their lease alive.

``likeness worker`` runs one of these per process; run several processes (or machines) for
more throughput. Each job runs in the worker's main thread while a heartbeat thread extends its
lease and notices a cancellation; the job's own progress reports are where it stops, and
``JobContext.stop_if_cancelled`` (a decode loop's interrupt hook) asks the database itself, at
most once a second, so that a cancelled job stops within about a second even between reports.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likeness.errors import LikenessError
from likeness.service.jobs import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    JobCancelled,
    JobQueue,
    JobView,
    LeaseLost,
    WorkerStopping,
)
from likeness.service.roles import Permission

log = logging.getLogger("likeness.worker")
#: Progress reports are written to the job row at most this often (and at every heartbeat).
REPORT_EVERY_S = 0.5
#: ``stop_if_cancelled`` reads the job's cancel flag from the database at most this often.
CANCEL_POLL_S = 1.0


@dataclass
class JobContext:
    """What a running job gets: its row, the workspace, its own folder, and ``report``."""

    job: JobView
    workspace: Any
    job_dir: Path
    _report: Callable[[float, str], None] = field(repr=False)
    _check: Callable[[], None] = field(repr=False, default=lambda: None)

    def report(self, progress: float, message: str) -> None:
        """Record progress (0..1); raises ``JobCancelled`` / ``LeaseLost`` /
        ``WorkerStopping`` when the job must stop."""
        self._report(progress, message)

    def stop_if_cancelled(self) -> None:
        """Raise ``JobCancelled`` / ``LeaseLost`` / ``WorkerStopping`` when the job must stop, else return: the
        ``interrupt`` hook a decode loop calls between packets (cheap, and safe from any thread)."""
        self._check()


@dataclass(frozen=True)
class JobKind:
    name: str
    #: what a user's role must allow to create or cancel this kind of job
    permission: Permission
    run: Callable[[JobContext], dict[str, Any]]


JOB_KINDS: dict[str, JobKind] = {}


def register_kind(kind: JobKind) -> JobKind:
    JOB_KINDS[kind.name] = kind
    return kind


def job_folder(workspace: Any, job_id: str) -> Path:
    return Path(workspace.settings.service_dir) / "jobs" / job_id


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Heartbeat(threading.Thread):
    def __init__(self, queue: JobQueue, job_id: str, worker_id: str, worker_stopping: threading.Event) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job_id[:8]}")
        self.queue, self.job_id, self.worker_id = queue, job_id, worker_id
        self.worker_stopping = worker_stopping
        self.stop_event = threading.Event()
        self.cancel_requested = False
        self.lease_lost = False
        self.lock = threading.Lock()
        self.latest: tuple[float, str] | None = None
        self.last_write = 0.0
        self.last_poll = time.monotonic()

    def run(self) -> None:
        interval = max(0.05, self.queue.lease_s / 3)
        while not self.stop_event.wait(interval):
            self.beat()

    def beat(self) -> None:
        with self.lock:
            latest, self.latest = self.latest, None
        try:
            progress, message = latest if latest else (None, None)
            self.cancel_requested = (
                self.queue.heartbeat(self.job_id, self.worker_id, progress=progress, message=message)
                or self.cancel_requested
            )
        except LeaseLost:
            self.lease_lost = True
        except Exception:  # a database hiccup: the next beat tries again within the lease
            log.warning("heartbeat for job %s failed", self.job_id, exc_info=True)

    def report(self, progress: float, message: str) -> None:
        with self.lock:
            self.latest = (progress, message)
            due = time.monotonic() - self.last_write >= REPORT_EVERY_S
            if due:
                self.last_write = time.monotonic()
        if due:  # a render reports every frame: write at most twice a second, the heartbeat does the rest
            self.beat()
        self.raise_if_stopping()

    def check(self) -> None:
        """``stop_if_cancelled``: reads the cancel flag (a read, not a lease write) at most every
        ``CANCEL_POLL_S``; the heartbeat alone would notice only every third of the lease."""
        with self.lock:
            due = time.monotonic() - self.last_poll >= CANCEL_POLL_S
            if due:
                self.last_poll = time.monotonic()
        if due:
            try:
                self.cancel_requested = self.queue.get(self.job_id).cancel_requested or self.cancel_requested
            except Exception:  # a database hiccup: the heartbeat still asks within its interval
                log.warning("cancel check for job %s failed", self.job_id, exc_info=True)
        self.raise_if_stopping()

    def raise_if_stopping(self) -> None:
        if self.lease_lost:
            raise LeaseLost(f"job {self.job_id} was taken over by another worker")
        if self.cancel_requested:
            raise JobCancelled(f"job {self.job_id} was cancelled")
        if self.worker_stopping.is_set():
            raise WorkerStopping(f"job {self.job_id}: its worker is shutting down")


class Worker:
    """Claims and runs jobs of the kinds in ``JOB_KINDS`` (or ``kinds``)."""

    def __init__(
        self,
        workspace: Any,
        *,
        queue: JobQueue | None = None,
        worker_id: str | None = None,
        kinds: tuple[str, ...] | None = None,
    ) -> None:
        self.workspace = workspace
        self.queue = queue or JobQueue.for_workspace(workspace)
        self.worker_id = worker_id or new_worker_id()
        self.kinds = kinds
        self.stopping = threading.Event()

    def run_one(self) -> JobView | None:
        """Claim one job and run it to its end; ``None`` when there was nothing to claim."""
        kinds = self.kinds or tuple(JOB_KINDS)
        job = self.queue.claim(self.worker_id, kinds=kinds)
        if job is None:
            return None
        self._run(job)
        return self.queue.get(job.id)

    def run_forever(self, *, poll_s: float = 1.0, max_jobs: int | None = None) -> int:
        """Run jobs until ``stop()`` (or ``max_jobs`` were run); returns how many ran."""
        done = 0
        while not self.stopping.is_set() and (max_jobs is None or done < max_jobs):
            try:
                ran = self.run_one()
            except Exception:  # the database went away for a moment: wait and try again
                log.exception("worker %s could not claim a job", self.worker_id)
                ran = None
            if ran is None:
                self.stopping.wait(poll_s)
            else:
                done += 1
        return done

    def stop(self) -> None:
        self.stopping.set()

    def _run(self, job: JobView) -> None:
        kind = JOB_KINDS.get(job.kind)
        if kind is None:
            self.queue.finish(job.id, self.worker_id, state=FAILED, error=f"unknown job kind {job.kind!r}")
            return
        heartbeat = _Heartbeat(self.queue, job.id, self.worker_id, self.stopping)
        heartbeat.start()
        folder = job_folder(self.workspace, job.id)
        folder.mkdir(parents=True, exist_ok=True)
        context = JobContext(
            job=job, workspace=self.workspace, job_dir=folder, _report=heartbeat.report, _check=heartbeat.check
        )
        try:
            if job.cancel_requested:
                raise JobCancelled(f"job {job.id} was cancelled")
            result = kind.run(context)
        except JobCancelled:
            self.queue.finish(job.id, self.worker_id, state=CANCELLED, message="cancelled")
        except LeaseLost:
            log.warning("job %s: lease lost, leaving it to the worker that took it over", job.id)
        except WorkerStopping:
            self.queue.release(job.id, self.worker_id)
            after = self.queue.get(job.id)  # back in the queue, or failed: its attempts spent
            log.info("job %s (its worker is shutting down): %s", job.id, after.error or after.message)
        except LikenessError as exc:
            self.queue.finish(job.id, self.worker_id, state=FAILED, error=str(exc), message="failed")
        except Exception as exc:  # a bug: the job fails with a plain reason, the log has the traceback
            log.exception("job %s (%s) crashed", job.id, job.kind)
            self.queue.finish(
                job.id,
                self.worker_id,
                state=FAILED,
                error=f"internal error ({type(exc).__name__}); see the worker's log",
                message="failed",
            )
        else:
            self.queue.finish(job.id, self.worker_id, state=SUCCEEDED, result=result, message="done")
        finally:
            heartbeat.stop_event.set()
            heartbeat.join(timeout=5)


def run_worker(
    workspace: Any, *, poll_s: float = 1.0, max_jobs: int | None = None, install_signals: bool = True
) -> int:
    """Run jobs until SIGTERM/SIGINT (``likeness worker``)."""
    import signal

    from likeness.service import job_kinds  # noqa: F401  (registers the kinds)

    worker = Worker(workspace)
    if install_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
    log.info("worker %s started", worker.worker_id)
    started = time.monotonic()
    count = worker.run_forever(poll_s=poll_s, max_jobs=max_jobs)
    log.info("worker %s ran %d job(s) in %.0f s", worker.worker_id, count, time.monotonic() - started)
    return count
