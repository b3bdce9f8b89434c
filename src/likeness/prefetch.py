"""Bounded hand-offs between the caller's thread and one helper thread.

Two directions, one set of rules (bounded memory, errors delivered in order, no thread left
blocked on a full queue):

* :class:`Prefetch` iterates ``items`` on a helper thread, at most ``depth`` items ahead of the
  consumer. Decoding (PyAV and MediaPipe release the GIL) then overlaps the work done on the
  item before. An error raised while producing is raised by ``next()``, after the items
  produced before it.
* :class:`WriteBehind` hands items to ``consume`` on a helper thread (encoding, muxing). After
  a failure it keeps taking items and drops them, so a caller blocked on a full queue is always
  released; the failure waits in :attr:`WriteBehind.failure` for the caller to raise.

Example::

    >>> with Prefetch(iter(range(3)), depth=1) as ahead:
    ...     list(ahead)
    [0, 1, 2]
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_END = object()


def _check_depth(depth: int) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    return depth


class Prefetch(Generic[T]):
    """Iterate ``items`` with up to ``depth`` of them produced ahead on a helper thread.

    ``close()`` (also on ``with`` exit, and after the last item or an error) stops the producer
    at its next hand-off and waits for it; the producer closes ``items`` (when it has ``close``)
    on its own thread, so a decoder is never closed under a running read.
    """

    def __init__(self, items: Iterator[T], *, depth: int = 1, name: str = "likeness-prefetch") -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_check_depth(depth))
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, args=(items,), daemon=True, name=name)
        self._thread.start()

    def _put(self, kind: str, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put((kind, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put("item", item):
                    return
            self._put("end", None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put("error", exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        kind, item = self._queue.get()
        if kind == "item":
            return item
        self._finished = True
        self.close()
        if kind == "error":
            raise item
        raise StopIteration

    @property
    def running(self) -> bool:
        """Whether the producer thread is still running."""
        return self._thread.is_alive()

    def close(self, *, timeout_s: float | None = None) -> bool:
        """Stop the producer and wait for it (at most ``timeout_s`` seconds; None: until it ends),
        emptying the queue so a blocked hand-off can finish. Returns True once it has ended."""
        self._stop.set()
        self._finished = True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._thread.is_alive() and (deadline is None or time.monotonic() < deadline):
            self._drain()
            self._thread.join(timeout=0.05)
        self._drain()
        return not self._thread.is_alive()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            return

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class WriteBehind(Generic[T]):
    """Hand items to ``consume`` on a helper thread, at most ``depth`` waiting.

    ``put`` blocks while ``depth`` items wait. The first exception ``consume`` raises is kept in
    :attr:`failure` (``consume`` maps its own errors to the product's); from then on, and after
    :meth:`cancel`, items are taken and dropped. :meth:`close` waits until every item put before
    it is consumed or dropped.
    """

    def __init__(self, consume: Callable[[T], None], *, depth: int = 4, name: str = "likeness-write-behind") -> None:
        self._consume = consume
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_check_depth(depth))
        self._cancelled = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self.failure is not None or self._cancelled.is_set():
                continue
            try:
                self._consume(item)
            except BaseException as exc:  # noqa: BLE001 - kept for the caller's thread to raise
                self.failure = exc

    def put(self, item: T) -> None:
        """Queue ``item`` for ``consume`` (dropped once a failure is kept or after ``cancel``)."""
        if not self._thread.is_alive():
            raise RuntimeError("WriteBehind is closed")
        self._queue.put(item)

    def cancel(self) -> None:
        """Drop the items still waiting and any put later; ``close`` still waits for the thread."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def close(self) -> None:
        """Wait until every item put so far is consumed or dropped, then end the thread. Called
        from ``consume`` itself it only cancels what waits (the thread cannot wait for itself)."""
        if self._thread is threading.current_thread():
            self._cancelled.set()
            return
        if not self._thread.is_alive():
            return
        self._queue.put(_END)
        self._thread.join()

    def raise_failure(self) -> None:
        """Raise the kept failure, if any."""
        if self.failure is not None:
            raise self.failure
