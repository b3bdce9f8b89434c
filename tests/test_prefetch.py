"""``likeness.prefetch``: order, bounded look-ahead, errors in order, no thread left blocked."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from likeness.errors import MediaError
from likeness.prefetch import Prefetch, WriteBehind


class _Source:
    """An iterator that counts what was produced and whether it was closed, and on which thread."""

    def __init__(self, n: int, *, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.produced = 0
        self.closed_on: str | None = None

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if self.produced == self.fail_at:
            raise ValueError(f"broken at {self.produced}")
        if self.produced >= self.n:
            raise StopIteration
        self.produced += 1
        return self.produced - 1

    def close(self) -> None:
        self.closed_on = threading.current_thread().name


def _wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_prefetch_yields_every_item_in_order_and_closes_the_source_on_its_thread() -> None:
    source = _Source(50)
    with Prefetch(source, depth=3, name="test-prefetch") as ahead:
        assert list(ahead) == list(range(50))
    assert source.closed_on == "test-prefetch"
    assert not ahead.running
    assert next(ahead, None) is None  # exhausted stays exhausted, never blocks


def test_prefetch_produces_at_most_depth_items_ahead() -> None:
    source = _Source(100)
    ahead = Prefetch(source, depth=2)
    assert next(ahead) == 0
    time.sleep(0.2)
    # One taken, two waiting in the queue, one held by the producer waiting to hand it over.
    assert source.produced <= 1 + 2 + 1
    assert ahead.close()
    assert source.closed_on is not None


def test_prefetch_raises_a_producer_error_after_the_items_before_it() -> None:
    ahead = Prefetch(_Source(10, fail_at=4), depth=8)
    assert [next(ahead) for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="broken at 4"):
        next(ahead)
    assert not ahead.running
    assert next(ahead, None) is None


def test_closing_early_releases_a_producer_blocked_on_a_full_queue() -> None:
    source = _Source(10_000)
    ahead = Prefetch(source, depth=1)
    assert next(ahead) == 0
    _wait_for(lambda: source.produced >= 3)
    assert ahead.close(timeout_s=5.0)
    assert source.produced < 10_000


def test_close_with_a_timeout_reports_a_producer_that_has_not_ended() -> None:
    release = threading.Event()

    def slow() -> Iterator[int]:
        yield 0
        release.wait(5.0)
        yield 1

    ahead = Prefetch(slow(), depth=1)
    assert next(ahead) == 0
    assert ahead.close(timeout_s=0.1) is False
    release.set()
    assert ahead.close(timeout_s=5.0) is True


def test_prefetch_of_frames_keeps_order_then_raises_the_decoding_error():
    def frames():
        yield from range(5)
        raise MediaError("clip.mp4", "decoding stopped after t=4.000s")

    got = []
    with pytest.raises(MediaError, match="decoding stopped"):
        for item in Prefetch(frames()):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_of_frames_stops_the_decoder_when_the_consumer_stops():
    closed = []

    def frames():
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    ahead = Prefetch(frames(), depth=1)
    assert next(ahead) == 0
    ahead.close()
    assert closed == [True] and not ahead.running


@pytest.mark.parametrize("depth", [0, -1, 1.5, True])
def test_depth_must_be_a_positive_integer(depth) -> None:
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        Prefetch(iter(()), depth=depth)
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        WriteBehind(print, depth=depth)


def test_write_behind_consumes_every_item_in_order_before_close_returns() -> None:
    seen: list[int] = []
    behind = WriteBehind(seen.append, depth=2, name="test-write-behind")
    for n in range(100):
        behind.put(n)
    behind.close()
    assert seen == list(range(100))
    assert behind.failure is None
    behind.raise_failure()
    with pytest.raises(RuntimeError, match="closed"):
        behind.put(1)


def test_write_behind_keeps_the_first_failure_and_drops_the_rest_without_blocking() -> None:
    seen: list[int] = []

    def consume(n: int) -> None:
        if n == 3:
            raise OSError("disk full")
        if n == 5:
            raise AssertionError("never reached: items after a failure are dropped")
        seen.append(n)

    behind = WriteBehind(consume, depth=1)
    for n in range(50):  # more than depth: the puts after the failure must not block
        behind.put(n)
    behind.close()
    assert seen == [0, 1, 2]
    assert isinstance(behind.failure, OSError)
    with pytest.raises(OSError, match="disk full"):
        behind.raise_failure()


def test_write_behind_cancel_drops_what_waits() -> None:
    gate = threading.Event()
    seen: list[int] = []

    def consume(n: int) -> None:
        gate.wait(5.0)
        seen.append(n)

    behind = WriteBehind(consume, depth=4)
    for n in range(4):
        behind.put(n)
    behind.cancel()
    gate.set()
    behind.close()
    assert behind.cancelled
    assert len(seen) <= 1  # at most the item already being consumed


def test_write_behind_close_from_its_own_thread_does_not_wait_for_itself() -> None:
    box: list[WriteBehind[int]] = []
    seen: list[int] = []

    def consume(n: int) -> None:
        seen.append(n)
        box[0].close()

    behind = WriteBehind(consume, depth=2)
    box.append(behind)
    behind.put(1)
    behind.put(2)
    behind.close()
    assert seen[0] == 1 and behind.cancelled
