"""Make randomly initialised compression models code realistic symbol statistics.

Untrained models are only valid for complexity measurements (timing, memory, step counts), but
with PyTorch's default init they are degenerate: the latent is tiny, every σ sits at the 0.11
floor and every symbol is 0, so the entropy coder does almost no work and timings are too
optimistic. We therefore (deterministically, from a fixed seed and a synthetic probe image)

* scale the last convolution of g_a so that about half of the symbols round(y) are non-zero
  (median |y| = ½), and
* set the σ part of the layers that predict the entropy parameters to a near-constant
  σ ≈ 0.74 (the σ of a zero-mean Gaussian with median |y| = ½) and shrink their μ part,

so symbols are spread over several values and coded at a realistic ~1–2 bits each.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: σ of a zero-mean Gaussian whose median |y| is ½: P(|y| ≥ ½) = ½.
SIGMA_HALF_NONZERO = 0.5 / 0.6745


def probe_image(size: tuple[int, int] = (128, 128), seed: int = 0) -> Tensor:
    """A deterministic, smooth pseudo-natural 1×3×H×W image in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 6, generator=g)
    smooth = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    detail = 0.08 * torch.randn(1, 3, *size, generator=g)
    return (smooth + detail).clamp(0, 1)


def last_conv(module: nn.Module) -> nn.Conv2d:
    """The last top-level convolution of a ``nn.Sequential`` (before any final attention block)."""
    for child in reversed(list(module.children())):
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)):
            return child
    raise ValueError(f"no top-level convolution in {type(module).__name__}")


@torch.no_grad()
def calibrate_latent_scale(
    analysis: Callable[[Tensor], Tensor],
    conv: nn.Module,
    probe: Tensor,
    target_median_abs: float = 0.5,
    iterations: int = 4,
) -> float:
    """Rescale ``conv`` (weight and bias) until median |analysis(probe)| ≈ target; returns it."""
    median = float("nan")
    for _ in range(iterations):
        median = float(analysis(probe).abs().median())
        if not median > 0:
            raise RuntimeError("untrained calibration: the latent is identically zero")
        factor = target_median_abs / median
        conv.weight.mul_(factor)
        if conv.bias is not None:
            conv.bias.mul_(factor)
    return float(analysis(probe).abs().median())


@torch.no_grad()
def init_gaussian_head(
    conv: nn.Module,
    sigma: slice,
    mu: slice | None,
    sigma_value: float = SIGMA_HALF_NONZERO,
    gain: float = 0.05,
) -> None:
    """Set the σ outputs of ``conv`` to ≈ ``sigma_value`` and shrink its μ outputs by ``gain``."""
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"expected the nn.Conv2d predicting (μ, σ), got {type(conv).__name__}")
    conv.weight[sigma].mul_(gain)
    conv.bias[sigma].fill_(sigma_value)
    if mu is not None:
        conv.weight[mu].mul_(gain * 4)
        conv.bias[mu].zero_()
