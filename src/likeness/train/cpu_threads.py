"""How many CPU threads a training step gets, and how idle OpenMP threads wait. Torch-free.

PyTorch's CPU kernels run on an OpenMP team. Every parallel region ends at a barrier, so a step is
as slow as its slowest thread: when another process holds one of the cores, the thread that
shares that core is descheduled and the others wait for it. With OpenMP's default (active) wait
policy the waiting threads spin, taking the CPU from the very thread they wait for. On the shared
2-core development machine the issue measured 0.22-0.42 it/s with 2 threads against 2.8-9.2 it/s
with 1 thread (docs/training.md, "Threads on a busy machine").

Two levers, both used by ``likeness train``:

* :func:`choose_cpu_threads`: one thread per core that the load average says is free.
* :func:`prefer_passive_openmp_wait`: ``OMP_WAIT_POLICY=PASSIVE`` so a waiting thread sleeps
  instead of spinning. OpenMP reads it once, when its runtime starts (at ``import torch``), so
  it must be set before that: the CLI calls it before it imports anything that imports torch.

Example:
    >>> choose_cpu_threads(None, cores=2, load=2.3).threads
    1
    >>> choose_cpu_threads(None, cores=2, load=0.2).threads
    2
    >>> choose_cpu_threads(2, cores=2, load=5.0).reason
    'set by --threads'
"""

from __future__ import annotations

import math
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass

#: The OpenMP wait policy ``likeness train`` asks for (``OMP_WAIT_POLICY``).
PASSIVE_WAIT = "PASSIVE"


@dataclass(frozen=True)
class ThreadChoice:
    """``threads``: intra-op threads for PyTorch; ``reason``: why, in words, for the progress line;
    ``load``/``cores``: the 1-minute load average and the cores this process may use when chosen."""

    threads: int
    reason: str
    load: float | None
    cores: int

    def describe(self, wait_policy: str | None) -> str:
        """``"1 thread (load 2.3 on 2 cores; OpenMP wait passive)"``, for the progress line."""
        noun = "thread" if self.threads == 1 else "threads"
        policy = (wait_policy or "default (active)").lower()
        return f"{self.threads} {noun} ({self.reason}; OpenMP wait {policy})"


def busy_cores(load: float) -> int:
    """Cores the load average says are taken: each whole core of load, with a half rounded down
    (load 0.5 -> 0, 0.6 -> 1, 1.4 -> 1, 2.3 -> 2)."""
    return max(0, math.ceil(load - 0.5))


def choose_cpu_threads(requested: int | None, *, cores: int, load: float | None) -> ThreadChoice:
    """Threads for a training step on ``cores`` available cores under a 1-minute ``load`` average.

    ``requested`` (``--threads``) wins, capped at ``cores`` (more threads than cores only adds
    waiting). Otherwise one thread per core not taken by other work (:func:`busy_cores`), at least
    one: an OpenMP team that shares a core with another busy process waits at every barrier for
    its descheduled thread. ``load`` None (no load average on this system) uses every core.
    """
    cores = max(1, int(cores))
    if requested is not None:
        threads = max(1, min(cores, int(requested)))
        reason = "set by --threads" if threads == requested else f"--threads {requested}, capped at {cores} cores"
        return ThreadChoice(threads, reason, load, cores)
    if load is None or not math.isfinite(load):
        return ThreadChoice(cores, f"all {cores} cores; no load average here", None, cores)
    threads = max(1, cores - busy_cores(load))
    return ThreadChoice(threads, f"load {load:.1f} on {cores} cores", load, cores)


def prefer_passive_openmp_wait(environ: MutableMapping[str, str]) -> str | None:
    """Ask OpenMP to let idle threads sleep (``OMP_WAIT_POLICY=PASSIVE``) unless the user chose a
    policy; returns the policy OpenMP will use (None: its default, active).

    Only effective before PyTorch is imported (its OpenMP runtime reads the variable once, when
    it loads); after that the variable is left alone and the policy in force is reported as it
    was then, i.e. whatever ``environ`` held.
    """
    if "torch" not in sys.modules:
        environ.setdefault("OMP_WAIT_POLICY", PASSIVE_WAIT)
    return environ.get("OMP_WAIT_POLICY")


__all__ = ["PASSIVE_WAIT", "ThreadChoice", "busy_cores", "choose_cpu_threads", "prefer_passive_openmp_wait"]
