"""Convolutional building blocks shared by the face-swap families (SAEHD-style).

Every block keeps tensors in NCHW float32 layout. Upscaling uses pixel shuffle (ONNX
``DepthToSpace``), which exports cleanly and avoids the checkerboard of transposed convolutions.
"""

from __future__ import annotations

import torch
from torch import nn


class Downscale(nn.Module):
    """Stride-2 convolution + leaky ReLU: ``(N, C_in, H, W) -> (N, C_out, H/2, W/2)``."""

    def __init__(self, in_ch: int, out_ch: int, *, kernel_size: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=2, padding=kernel_size // 2)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class Upscale(nn.Module):
    """3x3 convolution to ``4 * C_out`` channels then pixel shuffle: ``(N, C_in, H, W) -> (N, C_out, 2H, 2W)``."""

    def __init__(self, in_ch: int, out_ch: int, *, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, kernel_size, padding=kernel_size // 2)
        self.act = nn.LeakyReLU(0.1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.act(self.conv(x)))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection; shape preserving."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(x))
        return self.act(x + self.conv2(y))


class Encoder(nn.Module):
    """Four downscales: ``(N, 3, R, R) -> (N, 8*e_dims * (R/16)^2)`` flattened features."""

    def __init__(self, *, e_dims: int) -> None:
        super().__init__()
        widths = [e_dims, e_dims * 2, e_dims * 4, e_dims * 8]
        layers: list[nn.Module] = []
        in_ch = 3
        for width in widths:
            layers.append(Downscale(in_ch, width))
            in_ch = width
        self.body = nn.Sequential(*layers)
        self.out_ch = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)


class Inter(nn.Module):
    """Dense bottleneck: flat features -> ``ae_dims`` code -> ``(N, out_ch, 2*low_res, 2*low_res)`` feature map.

    The narrow ``ae_dims`` code is what forces the encoder to keep pose/expression and drop
    pixel detail, which the identity decoders then re-synthesise. ``low_res`` is R/16, or R/32 for
    double-resolution models (DeepFaceLab's ``-d``).
    """

    def __init__(self, *, in_features: int, ae_dims: int, low_res: int, out_ch: int) -> None:
        super().__init__()
        self.low_res = low_res
        self.out_ch = out_ch
        self.dense1 = nn.Linear(in_features, ae_dims)
        self.dense2 = nn.Linear(ae_dims, low_res * low_res * out_ch)
        self.upscale = Upscale(out_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense2(self.dense1(x))
        x = x.reshape(-1, self.out_ch, self.low_res, self.low_res)
        return self.upscale(x)


class Decoder(nn.Module):
    """Three upscales with residual blocks: ``(N, in_ch, r, r) -> rgb (N,3,R,R), mask (N,1,R,R)``.

    ``r`` is R/8, or R/16 with ``double_res``: then the stack ends at R/2 and a last convolution
    predicts a 2x2 block of pixels per position, rearranged by pixel shuffle (DeepFaceLab SAEHD's
    ``-d`` decoder). The full-resolution residual block is what dominates the cost of a step; the
    ``-d`` form does the same work at a quarter of the pixels, so a step is about 4x cheaper.

    Both outputs pass through a sigmoid so they lie in ``[0, 1]``. The mask branch is a separate,
    narrower stack (DeepFaceLab's learned mask) so mask quality does not compete for RGB capacity.
    """

    def __init__(self, *, in_ch: int, d_dims: int, d_mask_dims: int, double_res: bool = False) -> None:
        super().__init__()
        self.double_res = double_res
        self.up1 = Upscale(in_ch, d_dims * 8)
        self.res1 = ResidualBlock(d_dims * 8)
        self.up2 = Upscale(d_dims * 8, d_dims * 4)
        self.res2 = ResidualBlock(d_dims * 4)
        self.up3 = Upscale(d_dims * 4, d_dims * 2)
        self.res3 = ResidualBlock(d_dims * 2)
        self.mask_body = nn.Sequential(
            Upscale(in_ch, d_mask_dims * 8),
            Upscale(d_mask_dims * 8, d_mask_dims * 4),
            Upscale(d_mask_dims * 4, d_mask_dims * 2),
        )
        if double_res:
            self.to_rgb: nn.Module = nn.Sequential(nn.Conv2d(d_dims * 2, 3 * 4, 3, padding=1), nn.PixelShuffle(2))
            self.to_mask: nn.Module = nn.Sequential(nn.Conv2d(d_mask_dims * 2, 4, 3, padding=1), nn.PixelShuffle(2))
        else:
            self.to_rgb = nn.Conv2d(d_dims * 2, 3, 1)
            self.to_mask = nn.Conv2d(d_mask_dims * 2, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.res1(self.up1(x))
        y = self.res2(self.up2(y))
        y = self.res3(self.up3(y))
        rgb = torch.sigmoid(self.to_rgb(y))
        mask = torch.sigmoid(self.to_mask(self.mask_body(x)))
        return rgb, mask
