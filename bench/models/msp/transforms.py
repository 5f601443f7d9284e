"""ELIC-style analysis/synthesis transforms g_a, g_s (He et al. 2022, as in CompressAI).

Four stride-2 stages (the latent is M × H/16 × W/16), residual bottleneck blocks and attention
blocks; the layers are CompressAI's. Same layout as ``compressai.models.Elic2022Official`` with
the width N and latent channels M left to the profile.
"""

from __future__ import annotations

from compressai.layers import AttentionBlock
from compressai.models.utils import conv, deconv
from compressai.models.sensetime import ResidualBottleneckBlock
from torch import nn

#: Total down-sampling factor of g_a; images are padded to a multiple of this.
STRIDE = 16


def _rbb(n: int) -> list[nn.Module]:
    return [ResidualBottleneckBlock(n, n) for _ in range(3)]


def analysis_transform(N: int, M: int) -> nn.Sequential:
    """g_a: x (3 × H × W) → y (M × H/16 × W/16)."""
    return nn.Sequential(
        conv(3, N, kernel_size=5, stride=2),
        *_rbb(N),
        conv(N, N, kernel_size=5, stride=2),
        *_rbb(N),
        AttentionBlock(N),
        conv(N, N, kernel_size=5, stride=2),
        *_rbb(N),
        conv(N, M, kernel_size=5, stride=2),  # last conv: scaled in untrained mode
        AttentionBlock(M),
    )


def synthesis_transform(N: int, M: int) -> nn.Sequential:
    """g_s: ŷ (M × h × w) → x̂ (3 × 16h × 16w)."""
    return nn.Sequential(
        AttentionBlock(M),
        deconv(M, N, kernel_size=5, stride=2),
        *_rbb(N),
        deconv(N, N, kernel_size=5, stride=2),
        AttentionBlock(N),
        *_rbb(N),
        deconv(N, N, kernel_size=5, stride=2),
        *_rbb(N),
        deconv(N, 3, kernel_size=5, stride=2),
    )
