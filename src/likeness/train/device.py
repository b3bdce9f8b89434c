"""Where and how a training run computes: device, autocast precision, data loading, CPU threads,
batch size, and the hardware line of the model card."""

from __future__ import annotations

import os
import platform

import torch

from likeness.errors import ConfigError
from likeness.models.registry import SwapAutoencoder
from likeness.train.cpu_threads import ThreadChoice, choose_cpu_threads


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


#: Arithmetic of the forward pass (autocast); weights, optimizer state and losses stay float32.
TRAIN_PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def cpu_supports_bfloat16() -> bool:
    """Whether oneDNN has native bfloat16 kernels here (AVX-512 BF16 or AMX); elsewhere they are emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device, *, cpu_bfloat16: bool) -> torch.dtype | None:
    """The autocast dtype of a run (None: plain float32).

    "auto": float16 with a gradient scaler on CUDA; bfloat16 on a CPU with native bfloat16
    kernels, where a training step of ``df`` 64 px ran 1.3-1.6x and at 128 px 3x faster than in
    float32 (docs/training.md); float32 on other CPUs.
    """
    if precision == "float32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_bfloat16 else None
    if precision == "float16" and device.type != "cuda":
        raise ConfigError("precision float16 needs CUDA; on a CPU use bfloat16 or float32")
    if precision == "bfloat16" and device.type == "cpu" and not cpu_bfloat16:
        raise ConfigError("precision bfloat16: this CPU has no native bfloat16 kernels (AVX-512 BF16 or AMX)")
    return torch.float16 if precision == "float16" else torch.bfloat16


#: How training batches are prepared: "auto" is processes on CUDA, threads on CPU (see PairLoader).
DATA_LOADERS = ("auto", "threads", "processes")


def data_loading(loader: str, workers: int | None, *, device: torch.device, cores: int) -> tuple[bool, int]:
    """(use worker processes?, how many workers) for a run.

    Unset ``workers``: 2 threads on CPU, where the step is the bottleneck and workers compete with
    it for cores; on CUDA one process per core left after the training process and the GPU
    feeder, at most 8.
    """
    processes = loader == "processes" or (loader == "auto" and device.type == "cuda")
    if workers is None:
        workers = min(8, max(2, cores - 2)) if processes else 2
    return processes, workers


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def configure_cpu_threads(threads: int | None = None, *, load: float | None = None) -> ThreadChoice:
    """Intra-op threads: ``threads``, else one per core the load average leaves free
    (:func:`likeness.train.cpu_threads.choose_cpu_threads`); OpenCV single-threaded.

    ``load``: the 1-minute load average (default: ``os.getloadavg()`` now). Never more threads
    than cores, and on a loaded machine fewer: OpenMP threads wait for each other at every
    barrier, and a thread that shares a core with another process holds up the whole step (on
    the busy 2-core development machine 2 threads ran 7-20x slower than 1).

    The data workers run OpenCV concurrently, so letting OpenCV spawn its own pool per call would
    oversubscribe a small CPU.
    """
    import cv2

    if load is None and threads is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this system
            load = None
    choice = choose_cpu_threads(threads, cores=available_cores(), load=load)
    torch.set_num_threads(choice.threads)
    cv2.setNumThreads(1)
    return choice


def openmp_wait_policy() -> str | None:
    """The ``OMP_WAIT_POLICY`` OpenMP started with, for display (None: its default, active).

    OpenMP read it when PyTorch loaded; ``likeness train`` sets it before that
    (:func:`likeness.train.cpu_threads.prefer_passive_openmp_wait`).
    """
    return os.environ.get("OMP_WAIT_POLICY")


def cpu_thread_settings() -> tuple[int, int]:
    """The process's (torch intra-op, OpenCV) thread counts, to put back with
    :func:`restore_cpu_thread_settings` after :func:`configure_cpu_threads`."""
    import cv2

    return torch.get_num_threads(), cv2.getNumThreads()


def restore_cpu_thread_settings(settings: tuple[int, int]) -> None:
    import cv2

    torch.set_num_threads(settings[0])
    cv2.setNumThreads(settings[1])


#: CPU batch sizes by resolution: large enough for stable AdamW steps, small enough to keep a step
#: around a second on a laptop-class CPU.
_CPU_BATCH = {16: 16, 32: 16, 48: 16, 64: 16, 96: 8, 128: 8, 256: 4}


def auto_batch_size(model: SwapAutoencoder, device: torch.device) -> int:
    """Batch size for this model on this device.

    CPU: a table by resolution. CUDA: the largest power of two (<= 64) whose forward+backward
    through both reconstructions fits in 80 % of free memory, measured with a trial step.
    """
    res = model.resolution
    if device.type != "cuda":
        return _CPU_BATCH.get(res, max(2, 16 * 64 * 64 // (res * res)))
    free, _ = torch.cuda.mem_get_info(device)
    best = 2
    for batch in (4, 8, 16, 32, 64):
        try:
            torch.cuda.reset_peak_memory_stats(device)
            x = torch.rand(batch, 3, res, res, device=device)
            with torch.autocast("cuda", dtype=torch.float16):
                a, _ = model.reconstruct_source(x)
                b, _ = model.reconstruct_target(x)
                (a.float().mean() + b.float().mean()).backward()
            model.zero_grad(set_to_none=True)
            # AdamW state adds two copies of the weights; peak covers activations.
            if torch.cuda.max_memory_allocated(device) > 0.8 * free:
                break
            best = batch
        except torch.cuda.OutOfMemoryError:
            model.zero_grad(set_to_none=True)
            break
        finally:
            torch.cuda.empty_cache()
    return best


def hardware_description(device: torch.device, dtype: torch.dtype | None = None) -> str:
    arithmetic = "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA, {arithmetic})"
    return (
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads ({platform.processor() or platform.system()}), "
        f"{arithmetic}"
    )
