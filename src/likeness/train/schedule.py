"""The optimiser and what changes along a run: the learning-rate schedule and the moving average
of the weights (both depend only on the iteration, so a resumed run follows the same course)."""

from __future__ import annotations

import math

import torch


def make_optimizer(
    model: torch.nn.Module, *, learning_rate: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW with the fused kernel: on CPU the per-tensor update loop was about a tenth of a step,
    and on CUDA one kernel replaces a launch per tensor.

    Fused and unfused AdamW keep the same state, so checkpoints move between them.
    """
    return torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=weight_decay, fused=device.type in ("cpu", "cuda")
    )


def learning_rate_at(base: float, iteration: int, decay_iters: int | None, floor: float) -> float:
    """Learning rate of step ``iteration`` (0-based): ``base`` without a schedule, else a half
    cosine from ``base`` down to ``base * floor`` at ``decay_iters``, held after that."""
    if decay_iters is None:
        return base
    progress = min(iteration, decay_iters) / decay_iters
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def ema_decay_at(decay: float, updates: int) -> float:
    """Averaging rate after ``updates`` steps: ramps up so the first steps are not averaged with the init."""
    return min(decay, (1 + updates) / (10 + updates))


@torch.no_grad()
def update_ema(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model`` for parameters; buffers are copied."""
    ema_params: list[torch.Tensor] = list(average.parameters())
    params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for ema_buffer, buffer in zip(average.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)
