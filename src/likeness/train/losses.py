"""Losses: masked DSSIM + L1 for pixels, MSE for the learned mask (SAEHD's recipe, in PyTorch).

Tensors are float32 NCHW in ``[0, 1]``; every function returns a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from likeness.errors import ModelError


def _gaussian_taps(kernel_size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(kernel_size, dtype=like.dtype, device=like.device) - (kernel_size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _gaussian_blur_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian over each channel, 'valid' borders: (N,C,H,W) -> (N,C,H-k+1,W-k+1).

    Two 1-D passes (2k multiply-adds per pixel instead of k^2); the five statistics of SSIM are
    blurred in one call by stacking them on the channel axis.
    """
    channels, k = x.shape[1], taps.numel()
    rows = F.conv2d(x, taps.view(1, 1, 1, k).expand(channels, 1, 1, k), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, k, 1).expand(channels, 1, k, 1), groups=channels)


def dssim_kernel_size(resolution: int) -> int:
    """DFL's choice: a window of about R/11.6 pixels, odd, at least 3."""
    k = max(3, int(resolution / 11.6))
    return k if k % 2 else k + 1


def dssim(pred: torch.Tensor, target: torch.Tensor, *, kernel_size: int | None = None) -> torch.Tensor:
    """Structural dissimilarity ``(1 - SSIM) / 2`` averaged over pixels, channels and batch."""
    if pred.shape != target.shape or pred.ndim != 4:
        raise ModelError(
            f"dssim: expected two equal (N,C,H,W) tensors, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    k = kernel_size or dssim_kernel_size(pred.shape[-1])
    taps = _gaussian_taps(k, 1.5, pred)
    c1, c2 = 0.01**2, 0.03**2
    stats = _gaussian_blur_valid(torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1), taps)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.chunk(5, dim=1)
    sigma_x = e_xx - mu_x**2
    sigma_y = e_yy - mu_y**2
    sigma_xy = e_xy - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    return ((1.0 - ssim) / 2.0).mean()


def per_face_dssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DSSIM of each face: float (N,)."""
    return torch.stack([dssim(p[None], t[None]) for p, t in zip(pred, target)])


def reconstruction_loss(
    pred_rgb: torch.Tensor,
    pred_mask: torch.Tensor,
    target_rgb: torch.Tensor,
    target_mask: torch.Tensor,
    priority: torch.Tensor,
    *,
    dssim_weight: float = 10.0,
    l1_weight: float = 10.0,
    mask_weight: float = 10.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked DSSIM + priority-weighted masked L1 + mask MSE; returns ``(total, parts)``.

    Pixels outside the face hull do not count (the background is the target's, pasted back at
    render time); ``priority`` (N,1,H,W) >= 1 raises the weight of eyes and mouth.
    """
    masked_pred = pred_rgb * target_mask
    masked_target = target_rgb * target_mask
    d = dssim(masked_pred, masked_target)
    l1 = ((pred_rgb - target_rgb).abs() * target_mask * priority).mean()
    m = F.mse_loss(pred_mask, target_mask)
    total = dssim_weight * d + l1_weight * l1 + mask_weight * m
    return total, {"dssim": float(d.detach()), "l1": float(l1.detach()), "mask": float(m.detach())}


def code_discriminator_loss(target_logits: torch.Tensor, source_logits: torch.Tensor) -> torch.Tensor:
    """The code discriminator's loss: target codes labelled 1, source codes 0 (mean of the two)."""
    ones, zeros = torch.ones_like(target_logits), torch.zeros_like(source_logits)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(target_logits, ones)
        + F.binary_cross_entropy_with_logits(source_logits, zeros)
    )


def true_face_loss(source_logits: torch.Tensor) -> torch.Tensor:
    """The model's side: low when the discriminator takes its source codes for target codes."""
    return F.binary_cross_entropy_with_logits(source_logits, torch.ones_like(source_logits))
