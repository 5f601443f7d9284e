"""Analysis/synthesis transforms g_a, g_s of the MSP model, chosen by the profile's ``transform``.

* ``"elic"`` — ELIC-style (He et al. 2022, as in CompressAI): four stride-2 stages, residual
  bottleneck blocks and attention blocks; same layout as ``compressai.models.Elic2022Official``
  with the width N and latent channels M left to the profile.
* ``"gdn"`` — the four-layer conv + GDN transforms of Ballé et al. 2018 / Minnen et al. 2018
  (CompressAI's ``mbt2018`` g_a/g_s). Compact profiles use it so that MSP and the serial
  ``mbt2018`` baseline differ only in their probability models.

Either way the latent is M × H/16 × W/16.
"""

from __future__ import annotations

from compressai.layers import GDN, AttentionBlock
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


def gdn_analysis_transform(N: int, M: int) -> nn.Sequential:
    """g_a of Ballé/Minnen: three conv5×5/2 + GDN stages, then conv5×5/2 to M channels."""
    return nn.Sequential(
        conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M),  # last conv: scaled untrained
    )


def gdn_synthesis_transform(N: int, M: int) -> nn.Sequential:
    """g_s of Ballé/Minnen: three deconv5×5/2 + inverse GDN stages, then deconv to 3 channels."""
    return nn.Sequential(
        deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
        deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
    )


#: g_a, g_s builders by the profile's ``transform`` name.
TRANSFORMS = {
    "elic": (analysis_transform, synthesis_transform),
    "gdn": (gdn_analysis_transform, gdn_synthesis_transform),
}
