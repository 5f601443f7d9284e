"""Analysis/synthesis transforms g_a, g_s and hyper transforms h_a, h_s (spec §2.2–2.4).

Key names follow the official state dict: ``g_a.analysis_transform.K``, ``g_s.synthesis_transform.K``,
``h_a.reduction.K`` and ``h_s.increase.K``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.models.mlicpp.layers import (
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv3x3,
    subpel,
)


#: images above this many pixels run the full-resolution stages of g_a / g_s in row bands
BAND_PIXELS = 1 << 19


def run_in_bands(stage: nn.Module, x: Tensor, num: int, den: int, band_rows: int, halo: int, align: int) -> Tensor:
    """Apply ``stage`` (which scales rows by num/den) to row bands of ``x`` and stitch the rows.

    Each band reads ``halo`` extra input rows on both sides (at least the stage's receptive
    radius), clipped at the image border, where the convs' own zero padding then applies exactly
    as for the whole image; band starts are multiples of ``align`` so strided convs stay on the
    same grid. Only one band's activations are alive at a time. Values equal the whole-image
    computation (checked bit for bit in the tests).
    """
    H = x.shape[-2]
    out_rows = H * num // den
    pieces = []
    for o0 in range(0, out_rows, band_rows):
        o1 = min(out_rows, o0 + band_rows)
        i0 = max(0, (o0 * den // num - halo) // align * align)
        i1 = min(H, -(-(-(-o1 * den // num) + halo) // align) * align)
        y = stage(x[..., i0:i1, :])
        start = i0 * num // den
        pieces.append(y[..., o0 - start:o1 - start, :])
    return torch.cat(pieces, dim=-2) if len(pieces) > 1 else pieces[0]


def band_rows_for(width: int, multiple: int, budget: int = BAND_PIXELS) -> int:
    """Output rows per band so that a band holds about ``budget`` image pixels."""
    return max(multiple, budget // max(width, 1) // multiple * multiple)


class AnalysisTransform(nn.Module):
    """g_a: x [B,3,H,W] → y [B,M,H/16,W/16].

    Above :data:`BAND_PIXELS`, the stages at H/2 (RBS0, RB1, RBS2 → H/4) run in row bands with a
    16-row halo (receptive radius 13 input rows), so the largest maps are never whole.
    """

    band_pixels = BAND_PIXELS

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
        H, W = x.shape[-2:]
        if H * W <= self.band_pixels or H % 4:
            return self.analysis_transform(x)
        head, tail = self.analysis_transform[:3], self.analysis_transform[3:]
        rows = band_rows_for(W, 4, self.band_pixels) // 4  # H/4 rows per band
        return tail(run_in_bands(head, x, 1, 4, rows, halo=16, align=4))


class SynthesisTransform(nn.Module):
    """g_s: ŷ [B,M,h,w] → x̂ [B,3,16h,16w] (no final activation, no clamp).

    Above :data:`BAND_PIXELS` output pixels, the last stage (RBU5, RB6, final sub-pixel conv:
    4h → 16h rows) runs in row bands with a 4-row halo at 4h (receptive radius 3 rows).
    """

    band_pixels = BAND_PIXELS

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
        h, w = y_hat.shape[-2:]
        if 256 * h * w <= self.band_pixels:
            return self.synthesis_transform(y_hat)
        head, tail = self.synthesis_transform[:5], self.synthesis_transform[5:]
        rows = band_rows_for(16 * w, 4, self.band_pixels)  # output rows per band
        return run_in_bands(tail, head(y_hat), 4, 1, rows, halo=4, align=1)


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
