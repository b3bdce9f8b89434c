"""Code discriminator for "true face" training (DeepFaceLab SAEHD's ``true_face_power``).

In ``df`` the swap decodes a target face's code with the source decoder, which was trained only
on source codes. The discriminator learns to tell target codes from source codes; the model gets a
small loss when its source codes are told apart, so both identities' codes come to share one
distribution and the source decoder meets target codes as familiar input at swap time.
"""

from __future__ import annotations

import torch
from torch import nn


class CodeDiscriminator(nn.Module):
    """``(N, C, H, W)`` code -> ``(N, 1)`` logit that the code came from a target face.

    3x3 convolutions, stride 2 until the map is at most 4x4, then one dense layer.
    """

    def __init__(self, code_shape: tuple[int, int, int], *, width: int = 256) -> None:
        super().__init__()
        channels, side, _ = code_shape
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.1)]
        while side > 4:
            layers += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.1)]
            side = (side + 1) // 2
        self.body = nn.Sequential(*layers)
        self.logit = nn.Linear(width * side * side, 1)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.logit(torch.flatten(self.body(code), 1))
