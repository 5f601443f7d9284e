"""Entropy parameters and latent residual prediction (spec §4.5, §4.6).

* :class:`EntropyParameters` (key prefix ``fusion``): four 1×1 convs, contexts + hyper_params →
  (σ, μ) of one 32-channel slice. Output channels 0..31 are σ, 32..63 are μ.
* :class:`LatentResidualPrediction` (key prefix ``lrp_transform``): three 3×3 convs,
  [hyper_means, ŷ₀..ŷ_{i−1}, current] → 0.5·tanh(·), the correction added to ŷ.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.models.mlicpp.layers import conv1x1, conv3x3


class EntropyParameters(nn.Module):
    """in → 320 → 256 → 128 → 64 with GELU between (all 1×1, so position-wise)."""

    def __init__(self, in_ch: int, out_ch: int = 64):
        super().__init__()
        self.fusion = nn.Sequential(
            conv1x1(in_ch, 320), nn.GELU(), conv1x1(320, 256), nn.GELU(), conv1x1(256, 128), nn.GELU(),
            conv1x1(128, out_ch),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (σ, μ), scales first."""
        scales, means = self.fusion(x).chunk(2, dim=1)
        return scales, means


class LatentResidualPrediction(nn.Module):
    """LRP: [hm, ŷ₀..ŷ_{i−1}, current] (320+32(i+1) ch) → 0.5·tanh(conv stack) [B,32,h,w]."""

    def __init__(self, in_ch: int, out_ch: int = 32):
        super().__init__()
        self.lrp_transform = nn.Sequential(
            conv3x3(in_ch, 224), nn.GELU(), conv3x3(224, 128), nn.GELU(), conv3x3(128, out_ch)
        )

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * torch.tanh(self.lrp_transform(x))
