"""``liae`` family: shared encoder, identity-separating intermediate layers, one shared decoder.

``inter_shared`` (SAEHD's inter_AB) sees both identities; ``inter_target`` (inter_B) sees only
target faces. A source face is decoded from ``[shared, shared]``, a target face from
``[target, shared]``; the swap feeds a target face's ``[shared, shared]`` code to the decoder, so
``inter_target`` absorbs what is specific to the target identity and the swap keeps the target's
pose, expression and lighting while rendering the source identity.
"""

from __future__ import annotations

import torch

from likeness.models.blocks import Decoder, Encoder, Inter
from likeness.models.registry import SwapAutoencoder, SwapModelConfig, register_model


class LIAEModel(SwapAutoencoder):
    def __init__(self, config: SwapModelConfig) -> None:
        super().__init__()
        self.config = config
        res = config.resolution
        low = config.low_res
        self.encoder = Encoder(e_dims=config.e_dims)
        features = self.encoder.out_ch * (res // 16) ** 2
        self.inter_shared = Inter(in_features=features, ae_dims=config.ae_dims, low_res=low, out_ch=config.ae_dims)
        self.inter_target = Inter(in_features=features, ae_dims=config.ae_dims, low_res=low, out_ch=config.ae_dims)
        self.decoder = Decoder(
            in_ch=config.ae_dims * 2, d_dims=config.d_dims, d_mask_dims=config.d_mask_dims, double_res=config.double_res
        )

    def reconstruct_source(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self.inter_shared(self.encoder(face))
        return self.decoder(torch.cat([shared, shared], dim=1))

    def reconstruct_target(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(face)
        return self.decoder(torch.cat([self.inter_target(features), self.inter_shared(features)], dim=1))

    def swap(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.reconstruct_source(face)


def _liae(config: SwapModelConfig) -> LIAEModel:
    return LIAEModel(config)


register_model(
    "liae",
    default=SwapModelConfig(
        name="liae", family="liae", resolution=128, e_dims=64, ae_dims=256, d_dims=64, d_mask_dims=22
    ),
    description="LIAE: shared encoder, shared + target-only intermediates, one shared decoder; 64/96/128/256",
)(_liae)
register_model(
    "liae_tiny",
    default=SwapModelConfig(
        name="liae_tiny", family="liae", resolution=32, e_dims=8, ae_dims=32, d_dims=8, d_mask_dims=4
    ),
    description="LIAE tiny test variant (32 px default, any multiple of 16)",
    resolutions=None,
)(_liae)
