"""LOF for MLIC++: the five methods of :class:`bench.models.lof.LatentOptimizable` on the model.

:class:`MLICLatent` wraps one :class:`~bench.models.mlicpp.model.MLICPlusPlus` (and the rate
index its streams carry) without changing it:

* ``analysis`` / ``synthesis``: g_a on the zero-padded image (as ``compress``), g_s cropped;
* ``rate_bits``: Σ −log₂ p(ẑ) − Σ log₂ p(ŷ), differentiable. It runs the model's own per-slice
  recursion (:meth:`MLICPlusPlus._recursion`) with a part coder that quantises with the given
  quantiser (STE / SGA) instead of rounding, so every context (channel, global, local, LRP) sees
  the same quantised values, in the same coding order, as the real coder; z = h_a(y) inside;
* ``encode_latent``: the model's unchanged ``compress()`` with g_a replaced by the given latent
  (:func:`bench.models.lof.latent_as_analysis`), so the stream is exactly what ``decompress``
  reads, in the same container and header;
* ``decode_image``: the model's unchanged ``decompress()``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bench.models.entropy import eb_medians, factorized_likelihood, gaussian_likelihood, total_bits
from bench.models.lof import latent_as_analysis
from bench.models.mlicpp.checkerboard import squeeze
from bench.models.mlicpp.model import MLICPlusPlus
from bench.models.quantizers import Quantizer, hard_round


class MLICLatent:
    """One MLIC++ model (rate point ``model_id``) as a :class:`~bench.models.lof.LatentOptimizable`."""

    def __init__(self, model: MLICPlusPlus, model_id: int = 0):
        self.model = model
        self.model_id = model_id

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def analysis(self, x: Tensor) -> Tensor:
        """y = g_a(x zero-padded to a multiple of 64), as :meth:`MLICPlusPlus.compress` computes it."""
        m = self.model
        return m.g_a(m._fmt(m.pad(x.to(self.device, torch.float32))))

    def synthesis(self, y_hat: Tensor, size: tuple[int, int]) -> Tensor:
        """x̂ = g_s(ŷ) cropped to ``size`` (not clamped)."""
        return self.model.g_s(self.model._fmt(y_hat.to(self.model.dtype)))[..., : size[0], : size[1]]

    def rate_bits(self, y: Tensor, quantize: Quantizer) -> tuple[Tensor, Tensor]:
        """(Σ −log₂ p(ŷ, ẑ), ŷ): the real coder's recursion with ``quantize`` for every rounding."""
        m = self.model
        z = m.h_a(y).to(m.dtype)  # portable: the decoder's path is float64 (as compress() casts)
        y = y.to(m.dtype)
        eb = m.entropy_bottleneck
        z_hat = quantize(z, eb_medians(eb).to(z))
        likelihoods = [factorized_likelihood(eb, z_hat)]
        hp = m.h_s(m._fmt(z_hat))

        def code_part(i: int, parity: str, scales: Tensor, means: Tensor) -> Tensor:
            y_part = squeeze(parity, m._slice(y, i))
            q = quantize(y_part, means)
            likelihoods.append(gaussian_likelihood(m.gaussian_conditional, q, scales, means))
            return q

        with m.dtype_scope():
            y_hat = m._recursion(hp, code_part)
        return total_bits(likelihoods), y_hat

    def estimate_bits(self, y: Tensor) -> float:
        """Ideal code length of the hard-quantised latent under the model (no entropy coding)."""
        with torch.no_grad():
            return float(self.rate_bits(y, hard_round)[0])

    def encode_latent(self, y: Tensor, size: tuple[int, int]) -> bytes:
        """The complete MLIC++ stream for latent ``y`` of an image of ``size``."""
        m = self.model
        m.stream_key()  # fingerprint the real weights before g_a is swapped out
        with latent_as_analysis(m, y.detach()):
            return m.compress(torch.zeros(1, 3, *size, device=self.device), model_id=self.model_id).data

    def decode_image(self, data: bytes) -> Tensor:
        """The real decoder: the stream → x̂ [1,3,H,W] (cropped, not clamped)."""
        return self.model.decompress(data)
