"""Quantisers ŷ = Q(y, μ) used when a rate or a reconstruction must be differentiable.

Coding quantises as CompressAI does: symbol = round(y − μ), ŷ = symbol + μ. The quantisers here
return that same ŷ in the forward pass (or a relaxation of it) with a usable gradient:

* :func:`hard_round` — the real thing, no gradient (evaluation).
* :func:`ste_round` — straight-through estimator: forward value of :func:`hard_round`,
  identity gradient.
* :class:`SGARound` — stochastic Gumbel annealing (Yang et al. 2020, "Improving inference for
  neural image compression"): a Gumbel-softmax relaxation between ⌊y−μ⌋ and ⌈y−μ⌉, temperature τ
  annealed towards 0 so the relaxation approaches hard rounding.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class Quantizer(Protocol):
    def __call__(self, y: Tensor, means: Tensor | None) -> Tensor: ...


def hard_round(y: Tensor, means: Tensor | None) -> Tensor:
    """round(y − μ) + μ, exactly as CompressAI's ``quantize(..., "dequantize", means)``."""
    if means is None:
        return torch.round(y)
    return torch.round(y - means) + means


def ste_round(y: Tensor, means: Tensor | None) -> Tensor:
    """:func:`hard_round` in the forward pass (bit-exact), identity in the backward pass."""
    return hard_round(y.detach(), None if means is None else means.detach()) + (y - y.detach())


class SGARound:
    """Annealed stochastic rounding; ``tau`` is the current temperature (set by the caller)."""

    def __init__(self, tau: float = 0.5, eps: float = 1e-5):
        self.tau = tau
        self.eps = eps

    def __call__(self, y: Tensor, means: Tensor | None) -> Tensor:
        v = y if means is None else y - means
        floor = torch.floor(v).detach()
        r = (v - floor).clamp(self.eps, 1 - self.eps)  # distance to ⌊v⌋, in (0, 1)
        # q(⌊v⌋) ∝ exp(−atanh(r)/τ), q(⌈v⌉) ∝ exp(−atanh(1 − r)/τ)
        logits = torch.stack([-torch.atanh(r), -torch.atanh(1 - r)], dim=-1) / self.tau
        weights = F.gumbel_softmax(logits, tau=self.tau, hard=False, dim=-1)
        v_tilde = floor + weights[..., 1]
        return v_tilde if means is None else v_tilde + means
