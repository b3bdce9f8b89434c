"""One executor interface for scans: this process, a local process pool, or Dask distributed.

Every engine runs the same per-file task (``likeness.scan.task.scan_in_worker``) with a verifier
built once per worker process, and yields each file's ``ScanOutcome`` as it completes, in any
order. Engines deliver at least once: a worker that dies mid-file has its files run again
elsewhere (the pool rebuilds itself; Dask's scheduler reschedules), so the caller keys what it
writes by file and writes each key once.

- ``InProcessEngine``: one verifier in this process (``--engine local --workers 1``).
- ``LocalPoolEngine``: spawned processes (``--engine local``, the default).
- ``DaskEngine`` (``likeness.scan.dask_engine``, the only module that imports Dask): Dask
  futures on a ``distributed`` cluster, the scheduler named by ``--scheduler`` or a
  ``LocalCluster`` it starts; ``VerifierPlugin`` builds each worker's verifier once, also on
  workers that join or restart later.

Example::

    with make_engine("dask", settings, workers=2) as engine:
        print(engine.dashboard_link)
        for outcome in engine.run(items, version="v1-…"):
            ...
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from likeness.errors import WorkerStartError
from likeness.scan.sources import ScanItem
from likeness.scan.task import ScanOutcome, result_row, scan_in_worker, scan_item
from likeness.verify.scan import new_worker_pool, stop_workers

if TYPE_CHECKING:
    from likeness.verify.gallery import GallerySnapshot
from likeness.verify.result import VerificationResult

#: attempts per file in the local pool before it gets an error row (a decoder that kills its
#: process every time)
POOL_ATTEMPTS = 3


class ScanEngine(Protocol):
    """Runs the per-file task over items; yields outcomes as they complete."""

    dashboard_link: str | None

    def run(self, items: Sequence[ScanItem], *, version: str) -> Iterator[ScanOutcome]: ...

    def close(self) -> None: ...


class WorkerSetup:
    """What a worker needs to build its verifier: settings, extra trust anchors, the gallery the
    scan synced (a snapshot: every worker recognises with it, not with the folder as it is when
    the worker starts), and where evidence packs go."""

    def __init__(
        self, settings: Any, extra_anchors: Sequence[str], gallery: GallerySnapshot, report_dir: Path | None
    ) -> None:
        self.settings = settings
        self.extra_anchors = tuple(extra_anchors)
        self.gallery = gallery
        self.report_dir = str(report_dir) if report_dir is not None else None

    def args(self) -> tuple:
        return (self.settings, self.extra_anchors, self.gallery, self.report_dir)


def failed_outcome(item: ScanItem, version: str, reason: str) -> ScanOutcome:
    result = VerificationResult.failed(item.location, sha256=item.sha256, size_bytes=None, stage="scan", reason=reason)
    return ScanOutcome(item, result_row(result, item, version=version), result)


class BaseEngine:
    dashboard_link: str | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass


class InProcessEngine(BaseEngine):
    """The parent's own verifier, one file at a time."""

    def __init__(self, verifier: Any, report_dir: Path | None) -> None:
        self.verifier = verifier
        self.report_dir = report_dir

    def run(self, items: Sequence[ScanItem], *, version: str) -> Iterator[ScanOutcome]:
        for item in items:
            yield scan_item(self.verifier, item, version=version, report_dir=self.report_dir)


class LocalPoolEngine(BaseEngine):
    """Spawned worker processes on this machine, each with its own verifier."""

    def __init__(self, setup: WorkerSetup, workers: int) -> None:
        self.setup = setup
        self.workers = max(1, int(workers))

    def _pool(self, size: int) -> ProcessPoolExecutor:
        return new_worker_pool(size, self.setup.args())

    def run(self, items: Sequence[ScanItem], *, version: str) -> Iterator[ScanOutcome]:
        queue: deque[tuple[ScanItem, int]] = deque((item, 1) for item in items)
        if not queue:
            return
        pool = self._pool(min(self.workers, len(queue)))
        in_flight: dict[Future[ScanOutcome], tuple[ScanItem, int]] = {}
        try:
            while queue or in_flight:
                broken = False
                while queue and len(in_flight) < 2 * self.workers:
                    item, attempt = queue.popleft()
                    try:
                        in_flight[pool.submit(scan_in_worker, item, version)] = (item, attempt)
                    except BrokenProcessPool:  # a worker died while the caller held a result
                        queue.appendleft((item, attempt))
                        broken = True
                        break
                if not broken:
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        item, attempt = in_flight.pop(future)
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            broken = True
                            queue.appendleft((item, attempt + 1))
                        except WorkerStartError:
                            raise  # no file's fault: every one would fail alike
                        except Exception as exc:  # noqa: BLE001 - a task's own failure is that file's row
                            yield failed_outcome(item, version, f"{type(exc).__name__}: {exc}")
                if broken:
                    # A worker died: every file in flight is run again (at least once), up to
                    # POOL_ATTEMPTS times each; the pool is rebuilt.
                    for item, attempt in in_flight.values():
                        queue.appendleft((item, attempt + 1))
                    in_flight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    retry: deque[tuple[ScanItem, int]] = deque()
                    while queue:
                        item, attempt = queue.popleft()
                        if attempt > POOL_ATTEMPTS:
                            yield failed_outcome(
                                item,
                                version,
                                "a worker process died on this file "
                                f"{POOL_ATTEMPTS} times (hostile or badly malformed media)",
                            )
                        else:
                            retry.append((item, attempt))
                    queue = retry
                    pool = self._pool(min(self.workers, max(1, len(queue))))
        except BaseException:  # Ctrl-C, a caller that stopped reading (GeneratorExit), a worker that could not start
            stop_workers(pool)
            raise
        pool.shutdown(wait=True, cancel_futures=True)


def make_engine(
    engine: str,
    setup: WorkerSetup,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    verifier: Any = None,
    client: Any = None,
    dashboard_address: str | None = ":8787",
    files_per_task: int = 1,
) -> BaseEngine:
    """The engine named ``local`` (in-process for one worker, else a pool) or ``dask``."""
    if engine == "local":
        if scheduler:
            raise ValueError("--scheduler is for --engine dask")
        if workers <= 1 and verifier is not None:
            return InProcessEngine(verifier, Path(setup.report_dir) if setup.report_dir else None)
        return LocalPoolEngine(setup, workers)
    if engine == "dask":
        from likeness.scan.dask_engine import DaskEngine

        return DaskEngine(
            setup,
            scheduler=scheduler,
            workers=workers,
            client=client,
            dashboard_address=dashboard_address,
            files_per_task=files_per_task,
        )
    raise ValueError(f"unknown engine {engine!r}: use 'local' or 'dask'")
