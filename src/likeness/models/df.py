"""``df`` family: shared encoder and bottleneck, one decoder per identity (SAEHD "DF").

Training reconstructs source faces through ``decoder_source`` and target faces through
``decoder_target``; because the encoder and bottleneck are shared, the code captures pose,
expression and lighting, and ``decoder_source`` applied to a target's code renders the swap.
"""

from __future__ import annotations

from typing import Any

import torch

from likeness.models.blocks import Decoder, Encoder, Inter
from likeness.models.registry import SwapAutoencoder, SwapModelConfig, register_model


class DFModel(SwapAutoencoder):
    def __init__(self, config: SwapModelConfig) -> None:
        super().__init__()
        self.config = config
        res = config.resolution
        self.encoder = Encoder(e_dims=config.e_dims)
        low = config.low_res
        self.inter = Inter(
            in_features=self.encoder.out_ch * (res // 16) ** 2,
            ae_dims=config.ae_dims,
            low_res=low,
            out_ch=config.ae_dims,
        )
        kwargs: dict[str, Any] = dict(
            in_ch=config.ae_dims, d_dims=config.d_dims, d_mask_dims=config.d_mask_dims, double_res=config.double_res
        )
        self.decoder_source = Decoder(**kwargs)
        self.decoder_target = Decoder(**kwargs)

    def _code(self, face: torch.Tensor) -> torch.Tensor:
        return self.inter(self.encoder(face))

    def reconstruct_source(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder_source(self._code(face))

    def reconstruct_target(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder_target(self._code(face))

    def swap(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder_source(self._code(face))

    def reconstruct_pair(self, source_face: torch.Tensor, target_face: torch.Tensor):
        source_out, target_out, _ = self.reconstruct_pair_with_codes(source_face, target_face)
        return source_out, target_out

    def reconstruct_pair_with_codes(self, source_face: torch.Tensor, target_face: torch.Tensor):
        # Encoder and inter are shared: one pass over both batches instead of two.
        codes = self._code(torch.cat([source_face, target_face]))
        source_code, target_code = codes.split([len(source_face), len(target_face)])
        return self.decoder_source(source_code), self.decoder_target(target_code), (source_code, target_code)

    @property
    def code_shape(self) -> tuple[int, int, int]:
        side = 2 * self.config.low_res  # the bottleneck's map after its upscale
        return (self.config.ae_dims, side, side)


def _df(config: SwapModelConfig) -> DFModel:
    return DFModel(config)


register_model(
    "df",
    default=SwapModelConfig(name="df", family="df", resolution=128, e_dims=64, ae_dims=256, d_dims=64, d_mask_dims=22),
    description="DF: shared encoder + bottleneck, one decoder per identity; resolutions 64/96/128/256",
)(_df)
register_model(
    "df_tiny",
    default=SwapModelConfig(name="df_tiny", family="df", resolution=32, e_dims=8, ae_dims=32, d_dims=8, d_mask_dims=4),
    description="DF tiny test variant (32 px default, any multiple of 16)",
    resolutions=None,
)(_df)
