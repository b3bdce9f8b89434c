"""Deterministic batch planning and a bounded batch loader (worker threads or processes).

The faces and augmentation seeds of iteration ``i`` depend only on ``(seed, i)``, so a resumed run
sees exactly the batches an uninterrupted run would, regardless of worker timing or kind. Workers
read and augment faces ahead of the training step; at most ``prefetch`` batches are in memory at once.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from likeness.errors import FacesetError
from likeness.train.augment import AugmentOptions, prepare_training_pair
from likeness.train.samples import FaceSource


@dataclass(frozen=True)
class Split:
    """Face indices of one identity: ``train`` and held-out ``validation`` (int64 arrays)."""

    train: np.ndarray
    validation: np.ndarray


def split_indices(
    count: int, *, seed: int, stream: int, fraction: float, max_validation: int, faces: str = "a faceset"
) -> Split:
    """Deterministic train/validation split of ``count`` faces; at least one face on each side.
    ``faces`` names them in the refusal (``"the target faceset (the performer's, --target)"``)."""
    if count < 2:
        raise FacesetError(
            f"{faces} holds {count} face{'s' * (count != 1)}: training needs at least 2 faces per identity, "
            "to hold some out for validation; extract more (another clip, every frame with --dedup -1)"
        )
    order = np.random.default_rng([seed, 4242, stream]).permutation(count)
    n_val = int(min(max_validation, max(1, round(count * fraction)), count - 1))
    return Split(train=np.sort(order[n_val:]), validation=np.sort(order[:n_val]))


@dataclass(frozen=True)
class Batch:
    """float32 arrays (numpy, or torch tensors from worker processes), each (B, C, R, R): network
    input, target, hull mask, loss priority."""

    warped: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    priority: np.ndarray


def plan_batch(
    iteration: int, *, seed: int, train_indices: np.ndarray, batch_size: int, stream: int
) -> tuple[np.ndarray, np.ndarray]:
    """(face indices (B,), augmentation seeds (B,)) for one identity at ``iteration``."""
    rng = np.random.default_rng([seed, iteration, stream])
    picks = train_indices[rng.integers(0, len(train_indices), size=batch_size)]
    seeds = rng.integers(0, 2**62, size=batch_size)
    return picks, seeds


def build_batch(
    source: FaceSource,
    indices: np.ndarray,
    seeds: np.ndarray,
    *,
    resolution: int,
    options: AugmentOptions,
    priority_weight: float,
    augment: bool = True,
) -> Batch:
    pairs = []
    for index, sample_seed in zip(indices, seeds):
        face, landmarks = source.face(int(index))
        pairs.append(
            prepare_training_pair(
                face,
                landmarks,
                resolution=resolution,
                rng=np.random.default_rng(int(sample_seed)),
                options=options,
                priority_weight=priority_weight,
                augment=augment,
            )
        )
    return Batch(
        warped=np.stack([p.warped for p in pairs]),
        target=np.stack([p.target for p in pairs]),
        mask=np.stack([p.mask for p in pairs]),
        priority=np.stack([p.priority for p in pairs]),
    )


class PairLoader:
    """Yields ``(iteration, source_batch, target_batch)`` from ``start`` on, prepared by workers.

    Threads (the default) suit a CPU run: the training step is the bottleneck, decoding and
    warping release the GIL, and no process start-up or copying of faces is needed. Processes
    (``processes=True``) suit a GPU run, where a step takes milliseconds and the per-face Python
    work of augmentation, serialised by the GIL, starved the GPU: on an H200, 2 threads fed
    9 it/s against 45 it/s for the step alone. Batches then travel as torch tensors in shared
    memory, pinned for asynchronous copies when ``pin_memory`` is set.
    """

    def __init__(
        self,
        source: FaceSource,
        target: FaceSource,
        *,
        source_split: Split,
        target_split: Split,
        seed: int,
        batch_size: int,
        resolution: int,
        options: AugmentOptions,
        priority_weight: float,
        workers: int = 2,
        prefetch: int = 4,
        processes: bool = False,
        pin_memory: bool = False,
    ) -> None:
        self.source, self.target = source, target
        self.source_split, self.target_split = source_split, target_split
        self.seed, self.batch_size, self.resolution = seed, batch_size, resolution
        self.options, self.priority_weight = options, priority_weight
        self.workers, self.prefetch = max(1, workers), max(1, prefetch)
        self.processes, self.pin_memory = processes, pin_memory

    def _make(self, iteration: int) -> tuple[Batch, Batch]:
        batches = []
        options = self.options.at_iteration(iteration)
        for stream, (faces, split) in enumerate(((self.source, self.source_split), (self.target, self.target_split))):
            picks, seeds = plan_batch(
                iteration, seed=self.seed, train_indices=split.train, batch_size=self.batch_size, stream=stream
            )
            batches.append(
                build_batch(
                    faces,
                    picks,
                    seeds,
                    resolution=self.resolution,
                    options=options,
                    priority_weight=self.priority_weight,
                )
            )
        return batches[0], batches[1]

    def iterate(self, start: int) -> Iterator[tuple[int, Batch, Batch]]:
        if self.processes:
            yield from self._iterate_processes(start)
            return
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="likeness-train-data") as pool:
            pending: deque[tuple[int, Future[tuple[Batch, Batch]]]] = deque()
            next_iteration = start
            try:
                while True:
                    while len(pending) < self.prefetch:
                        pending.append((next_iteration, pool.submit(self._make, next_iteration)))
                        next_iteration += 1
                    iteration, future = pending.popleft()
                    source_batch, target_batch = future.result()
                    yield iteration, source_batch, target_batch
            finally:
                for _, future in pending:
                    future.cancel()

    def _iterate_processes(self, start: int) -> Iterator[tuple[int, Batch, Batch]]:
        import torch.utils.data

        # "spawn": the parent may hold CUDA and many threads, which fork would copy half-alive.
        # A map-style dataset (__getitem__, __len__) is all DataLoader needs; its stub asks for
        # a Dataset subclass, which would import torch with this module.
        loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
            _IterationBatches(self),  # type: ignore[arg-type]
            batch_size=None,
            sampler=_CountFrom(start),
            num_workers=self.workers,
            prefetch_factor=max(1, -(-self.prefetch // self.workers)),
            pin_memory=self.pin_memory,
            multiprocessing_context="spawn",
            worker_init_fn=_init_data_worker,
        )
        for iteration, source_parts, target_parts in loader:
            yield int(iteration), Batch(*source_parts), Batch(*target_parts)


def _init_data_worker(_worker_id: int) -> None:
    """One OpenCV and one torch thread per worker process: the workers are the parallelism."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


class _CountFrom:
    """Sampler of iteration numbers ``start, start + 1, ...`` (the loader keeps their order)."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


class _IterationBatches:
    """Map-style dataset for worker processes: item ``i`` is iteration ``i``'s pair of batches."""

    def __init__(self, loader: PairLoader) -> None:
        self.loader = loader

    def __getitem__(self, iteration: int):
        import torch

        source_batch, target_batch = self.loader._make(iteration)
        as_tensors = lambda b: tuple(torch.from_numpy(a) for a in (b.warped, b.target, b.mask, b.priority))  # noqa: E731
        return iteration, as_tensors(source_batch), as_tensors(target_batch)


def validation_batch(source: FaceSource, indices: np.ndarray, *, resolution: int) -> Batch:
    """Clean (un-augmented) validation faces at ``resolution``."""
    zeros = np.zeros(len(indices), np.int64)
    return build_batch(
        source, indices, zeros, resolution=resolution, options=AugmentOptions(), priority_weight=0.0, augment=False
    )
