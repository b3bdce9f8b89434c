"""The Dask distributed engine: the scan's per-file task as Dask futures.

To the scheduler named by ``--scheduler tcp://HOST:8786`` (``dask scheduler`` / ``dask worker``,
or dask-kubernetes, see docs/scale.md), to an existing ``Client``, or to a
``LocalCluster(n_workers, processes=True)`` started here. ``VerifierPlugin`` builds each worker
process's verifier once (also on a worker that joins late or restarts after a crash); a worker
that dies mid-file has its tasks rescheduled by the scheduler, and the parent writes each file's
row once. Workers open the workspace read-only (``Settings``: database URL and home), so on a
real cluster they need the same PostgreSQL database and the workspace folder on shared storage.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from likeness.errors import WorkerStartError
from likeness.scan.engines import BaseEngine, WorkerSetup, failed_outcome
from likeness.scan.sources import ScanItem
from likeness.scan.task import ScanOutcome, scan_batch_in_worker

PLUGIN_NAME = "likeness-verifier"


class VerifierPlugin(WorkerPlugin):
    """Dask ``WorkerPlugin``: builds the worker's verifier once, when the worker starts (or
    joins, or restarts after a crash)."""

    name = PLUGIN_NAME

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup_args = setup.args()

    def setup(self, worker: Any) -> None:
        from likeness.verify.scan import _init_worker

        _init_worker(*self.setup_args)

    def teardown(self, worker: Any) -> None:
        from likeness.verify.scan import _WORKER

        verifier = _WORKER.pop("verifier", None)
        if verifier is not None:
            verifier.close()


class DaskEngine(BaseEngine):
    """Dask futures: to ``scheduler`` (``tcp://HOST:8786``), to an existing ``client``, or to a
    ``LocalCluster(n_workers=workers, processes=True)`` started here; ``files_per_task`` files
    per future."""

    def __init__(
        self,
        setup: WorkerSetup,
        *,
        scheduler: str | None = None,
        workers: int = 2,
        client: Any = None,
        dashboard_address: str | None = ":8787",
        files_per_task: int = 1,
    ) -> None:
        # Several files per task divide the scheduler's per-task cost (docs/scale.md); a worker
        # that dies then costs a retry of its whole batch.
        self.files_per_task = max(1, int(files_per_task))
        self._own_client = client is None
        self.cluster = None
        if client is None:
            if scheduler:
                client = Client(scheduler)
            else:
                self.cluster = LocalCluster(
                    n_workers=max(1, int(workers)),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=dashboard_address,
                )
                client = Client(self.cluster)
        self.client = client
        self.client.register_plugin(VerifierPlugin(setup), name=PLUGIN_NAME)
        self.dashboard_link = getattr(self.client, "dashboard_link", None)

    def _threads(self) -> int:
        info = self.client.scheduler_info()
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def run(self, items: Sequence[ScanItem], *, version: str) -> Iterator[ScanOutcome]:
        batches = deque(tuple(items[i : i + self.files_per_task]) for i in range(0, len(items), self.files_per_task))
        if not batches:
            return
        # A bounded window of futures: memory stays flat on millions of files, and an
        # interruption leaves little work in flight (cancelled below).
        window = 2 * self._threads()
        in_flight: dict[str, tuple[Any, tuple[ScanItem, ...]]] = {}
        completed = as_completed(with_results=False)

        def submit_next() -> None:
            batch = batches.popleft()
            future = self.client.submit(scan_batch_in_worker, batch, version, pure=False)
            in_flight[future.key] = (future, batch)
            completed.add(future)

        try:
            while batches and len(in_flight) < window:
                submit_next()
            for future in completed:
                _, batch = in_flight.pop(future.key)
                try:
                    outcomes = future.result()
                except WorkerStartError:
                    raise  # no file's fault: every one would fail alike
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated worker deaths
                    outcomes = [failed_outcome(item, version, f"{type(exc).__name__}: {exc}") for item in batch]
                finally:
                    future.release()
                if batches:
                    submit_next()
                yield from outcomes
        finally:
            for future, _ in in_flight.values():
                future.cancel()
            in_flight.clear()

    def close(self) -> None:
        if self._own_client:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
