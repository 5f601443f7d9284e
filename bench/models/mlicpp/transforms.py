"""Analysis/synthesis transforms g_a, g_s and hyper transforms h_a, h_s (spec §2.2–2.4).

Key names follow the official state dict: ``g_a.analysis_transform.K``, ``g_s.synthesis_transform.K``,
``h_a.reduction.K`` and ``h_s.increase.K``.
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.models.mlicpp.layers import (
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv3x3,
    subpel,
)


class AnalysisTransform(nn.Module):
    """g_a: x [B,3,H,W] → y [B,M,H/16,W/16]."""

    def __init__(self, N: int = 192, M: int = 320):
        super().__init__()
        self.analysis_transform = nn.Sequential(
            ResidualBlockWithStride(3, N),
            ResidualBlock(N, N),
            ResidualBlockWithStride(N, N),
            ResidualBlock(N, N),
            ResidualBlockWithStride(N, N),
            ResidualBlock(N, N),
            conv3x3(N, M, stride=2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.analysis_transform(x)


class SynthesisTransform(nn.Module):
    """g_s: ŷ [B,M,h,w] → x̂ [B,3,16h,16w] (no final activation, no clamp)."""

    def __init__(self, N: int = 192, M: int = 320):
        super().__init__()
        self.synthesis_transform = nn.Sequential(
            ResidualBlock(M, M),
            ResidualBlockUpsample(M, N),
            ResidualBlock(N, N),
            ResidualBlockUpsample(N, N),
            ResidualBlock(N, N),
            ResidualBlockUpsample(N, N),
            ResidualBlock(N, N),
            subpel(N, 3),
        )

    def forward(self, y_hat: Tensor) -> Tensor:
        return self.synthesis_transform(y_hat)


class HyperAnalysis(nn.Module):
    """h_a: y [B,M,h,w] → z [B,N,h/4,w/4]."""

    def __init__(self, N: int = 192, M: int = 320):
        super().__init__()
        self.reduction = nn.Sequential(
            conv3x3(M, N),
            nn.GELU(),
            conv3x3(N, N),
            nn.GELU(),
            conv3x3(N, N, stride=2),
            nn.GELU(),
            conv3x3(N, N),
            nn.GELU(),
            conv3x3(N, N, stride=2),
        )

    def forward(self, y: Tensor) -> Tensor:
        return self.reduction(y)


class HyperSynthesis(nn.Module):
    """h_s: ẑ → hyper_params [B,2M,h,w]; channels M..2M are hyper_means, 0..M (scales) unused."""

    def __init__(self, N: int = 192, M: int = 320):
        super().__init__()
        self.increase = nn.Sequential(
            conv3x3(N, M),
            nn.GELU(),
            subpel(M, M),
            nn.GELU(),
            conv3x3(M, M * 3 // 2),
            nn.GELU(),
            subpel(M * 3 // 2, M * 3 // 2),
            nn.GELU(),
            conv3x3(M * 3 // 2, M * 2),
        )

    def forward(self, z_hat: Tensor) -> Tensor:
        return self.increase(z_hat)
