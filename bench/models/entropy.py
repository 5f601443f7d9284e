"""Differentiable likelihoods from CompressAI's entropy models, for rates the optimiser can use.

CompressAI's ``forward`` either adds noise (training) or rounds with ``torch.round`` (eval), which
has zero gradient; latent overfitting needs the likelihood of an already-quantised ŷ whose
gradient passes straight through. These helpers evaluate the same densities as CompressAI's
``EntropyBottleneck`` / ``GaussianConditional`` (including their likelihood lower bound) on a
given tensor without re-quantising it. They use the models' ``_likelihood`` methods, stable in
the pinned compressai 1.2.8.
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from torch import Tensor, nn

from bench.errors import CodecError

#: Largest |value| handed to CompressAI's rANS coder. Its escape ("bypass") path counts the 4-bit
#: chunks of a value with a shift loop that never ends once the value overflows int32 (NaN, ±inf,
#: 3e9: measured to hang), so a latent beyond this is refused instead of coded.
MAX_CODABLE = 2.0**24


#: CompressAI's likelihood lower bound (``EntropyModel(likelihood_bound=1e-9)``), which every entropy
#: model of this suite is built with.
LIKELIHOOD_BOUND = 1e-9


def restore_likelihood_bounds(net: nn.Module) -> int:
    """Put the likelihood lower bound back where loading weights zeroed it; returns how many.

    The bound is a fixed constant saved as a buffer, not a learned weight, and a float16 weights
    file (``bench.training`` ``--half``) rounds 1e-9 to 0. A model built with a bound
    (``use_likelihood_bound``) whose buffer reads 0 lets a likelihood reach 0: an infinite rate,
    so LOF's and training's gradients turn NaN. The real coder's CDF tables never use the bound.
    """
    restored = 0
    for module in net.modules():
        if isinstance(module, EntropyModel) and module.use_likelihood_bound:
            bound = module.likelihood_lower_bound.bound
            if not bool((bound > 0).all()):
                bound.fill_(LIKELIHOOD_BOUND)
                restored += 1
    return restored


def codable(v: Tensor) -> bool:
    """True if every value of ``v`` is finite and within ±:data:`MAX_CODABLE` (safe to entropy-code)."""
    return bool(torch.isfinite(v).all()) and (v.numel() == 0 or float(v.abs().max()) <= MAX_CODABLE)


def check_codable(v: Tensor, what: str) -> None:
    """Raise :class:`CodecError` naming ``what`` unless :func:`codable` (a diverged or corrupt latent
    would otherwise hang the entropy coder)."""
    if not codable(v):
        bad = int((~torch.isfinite(v)).sum())
        peak = float(v[torch.isfinite(v)].abs().max()) if v.numel() > bad else float("nan")
        raise CodecError(f"{what}: cannot be entropy-coded ({bad} non-finite value(s), largest finite "
                         f"|value| {peak:.3g}, limit {MAX_CODABLE:.3g})")


def eb_medians(eb: EntropyBottleneck) -> Tensor:
    """Per-channel medians of a factorised prior, shaped 1×C×1×1 (symbol = round(v − median))."""
    return eb.quantiles[:, 0, 1].detach().reshape(1, -1, 1, 1)


def factorized_likelihood(eb: EntropyBottleneck, v: Tensor) -> Tensor:
    """p(v) per element under ``eb`` for a B×C×H×W tensor ``v`` (no re-quantisation)."""
    b, c = v.shape[:2]
    values = v.transpose(0, 1).reshape(c, 1, -1)
    likelihood, _, _ = eb._likelihood(values)
    if eb.use_likelihood_bound:
        likelihood = eb.likelihood_lower_bound(likelihood)
    return likelihood.reshape(c, b, *v.shape[2:]).transpose(0, 1)


def gaussian_likelihood(gc: GaussianConditional, v: Tensor, scales: Tensor, means: Tensor | None) -> Tensor:
    """p(v | μ, σ) per element under ``gc`` (σ lower-bounded as CompressAI does)."""
    likelihood = gc._likelihood(v, scales, means)
    if gc.use_likelihood_bound:
        likelihood = gc.likelihood_lower_bound(likelihood)
    return likelihood


def total_bits(likelihoods: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """Σ −log₂ p over all tensors (a differentiable scalar)."""
    out = torch.zeros(())
    for lik in likelihoods:
        if lik.numel():
            out = out.to(lik.device) + (-torch.log(lik).sum() / math.log(2.0))
    return out
