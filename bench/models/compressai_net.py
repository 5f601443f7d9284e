"""What every network that follows CompressAI's protocol shares, whoever wrote it.

The protocol: ``forward(x) -> {"x_hat", "likelihoods"}``, ``update(force=True)``,
``compress(x) -> {"strings", "shape"}`` and ``decompress(strings, shape) -> {"x_hat"}``, usually
with the analysis/synthesis transforms as top-level ``g_a``/``g_s``. The CompressAI zoo
(:mod:`bench.models.zoo`) and models a configuration names by import path
(:mod:`bench.models.user_model`) both wrap their network in :class:`CompressAINet`, which gives:

* **padding**: the image padded at the right and bottom edges to a multiple of ``pad`` (64 by
  default: four stride-2 layers in g_a and two more in h_a), by edge replication unless another
  mode is chosen; the decoder crops;
* **a decode-time split**: synthesis ``g_s`` timed by hooks inside the model's own
  ``decompress()``, the rest (entropy decoding, hyper-synthesis, context) beside it;
* **the portable path** (:mod:`bench.models.portable`): everything but ``g_a`` in float64;
* **LOF** (:mod:`bench.models.lof`) for the four CompressAI entropy structures whose rate this
  module can write differentiably (:data:`FAMILIES`), when a network keeps that family's own
  ``forward``/``compress``/``decompress``; any other network says why LOF is unavailable;
* **complexity**: :meth:`CompressAINet.complexity_target`, the public hook
  :mod:`bench.models.macs` counts through (the network's forward on the padded input).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from compressai.models import (
    FactorizedPrior,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    ScaleHyperprior,
)
from torch import Tensor, nn

from bench.errors import CodecError
from bench.models.decodeparts import DecodeParts
from bench.models.entropy import eb_medians, factorized_likelihood, gaussian_likelihood, total_bits
from bench.models.lof import latent_as_analysis
from bench.models.portable import PORTABLE_DTYPE, default_dtype, make_portable
from bench.models.quantizers import Quantizer

#: Default padding multiple and the padding modes a configuration may name (→ ``F.pad`` mode).
PAD = 64
PAD_MODES = {"replicate": "replicate", "reflect": "reflect", "zeros": "constant"}
#: CompressAI entropy structures whose rate :func:`family_rate_bits` writes (most specific first).
FAMILIES = (JointAutoregressiveHierarchicalPriors, MeanScaleHyperprior, ScaleHyperprior, FactorizedPrior)
_PROTOCOL = ("forward", "compress", "decompress")


def pad_to(x: Tensor, multiple: int = PAD, mode: str = "replicate") -> Tensor:
    """``x`` padded at the right and bottom to a multiple of ``multiple`` (a :data:`PAD_MODES` key)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        raise CodecError(f"reflect padding needs an image larger than the padding: {h}×{w} image, "
                         f"padding {ph}×{pw} to a multiple of {multiple}")
    return F.pad(x, (0, pw, 0, ph), mode=PAD_MODES[mode])


def family(net: nn.Module | type) -> type | None:
    """The CompressAI family whose entropy structure ``net`` (a network or its class) has: a
    :data:`FAMILIES` class it derives from without replacing that class's ``forward``,
    ``compress`` or ``decompress``."""
    kind = net if isinstance(net, type) else type(net)
    for base in FAMILIES:
        if issubclass(kind, base):
            same = all(getattr(kind, m) is getattr(base, m) for m in _PROTOCOL)
            return base if same else None
    return None


def lof_unavailable(net: nn.Module | type) -> str | None:
    """Why LOF cannot run on ``net`` (None: it can). Given a class, only its entropy structure is
    judged (the transforms g_a/g_s exist once it is constructed)."""
    name = (net if isinstance(net, type) else type(net)).__qualname__
    if not isinstance(net, type) and not all(isinstance(getattr(net, m, None), nn.Module) for m in ("g_a", "g_s")):
        return f"LOF needs the analysis and synthesis transforms as modules g_a and g_s; {name} has not both"
    if family(net) is None:
        known = ", ".join(f.__name__ for f in FAMILIES)
        return (f"LOF needs a differentiable rate of the model's entropy structure, which lic-bench knows for "
                f"CompressAI's {known}; {name} is not one of them (or replaces its forward/compress/decompress)")
    return None


def sequential_steps(net: nn.Module, padded_height: int, padded_width: int) -> int | None:
    """Sequential entropy-decoding steps of a known family (None: unknown): 1 for a factorised
    prior, 2 for a hyperprior, and z then one step per latent position for the serial context."""
    kind = family(net)
    if kind is FactorizedPrior:
        return 1
    if kind is JointAutoregressiveHierarchicalPriors:
        return 1 + (padded_height // 16) * (padded_width // 16)
    return 2 if kind is not None else None


def family_rate_bits(net: nn.Module, y: Tensor, quantize: Quantizer) -> tuple[Tensor, Tensor]:
    """Σ −log₂ p(ŷ, ẑ) of a :data:`FAMILIES` network with every rounding done by ``quantize``;
    z = h_a(y) as in compress().

    For the serial context model (mbt2018, cheng2020) the context is computed in parallel from
    quantize(y) without means (as CompressAI's forward does); the real cost of LOF's candidates
    comes from real coding, not from this approximation.
    """
    eb = net.entropy_bottleneck
    if isinstance(net, FactorizedPrior):
        y_hat = quantize(y, eb_medians(eb).to(y))
        return total_bits([factorized_likelihood(eb, y_hat)]), y_hat
    z = net.h_a(y) if isinstance(net, MeanScaleHyperprior) else net.h_a(torch.abs(y))
    z_hat = quantize(z, eb_medians(eb).to(z))
    z_lik = factorized_likelihood(eb, z_hat)
    params = net.h_s(z_hat)
    gc = net.gaussian_conditional
    if isinstance(net, JointAutoregressiveHierarchicalPriors):
        ctx = net.context_prediction(quantize(y, None))
        scales, means = net.entropy_parameters(torch.cat([params, ctx], dim=1)).chunk(2, 1)
    elif isinstance(net, MeanScaleHyperprior):
        scales, means = params.chunk(2, 1)
    else:  # ScaleHyperprior
        scales, means = params, None
    y_hat = quantize(y, means)
    return total_bits([gaussian_likelihood(gc, y_hat, scales, means), z_lik]), y_hat


class CompressAINet:
    """A CompressAI-protocol network in eval mode, with padding, a timed decode and LOF hooks."""

    def __init__(self, net: nn.Module, pad: int = PAD, padding: str = "replicate", portable: bool = False,
                 parts: dict[str, str] | None = None):
        self.net = net.eval()
        self.pad, self.padding, self.portable = pad, padding, portable
        #: top-level module name → complexity part, beside :data:`bench.models.macs.PARTS`
        self.parts = dict(parts or {})
        if portable:
            make_portable(net, encoder_only=(net.g_a,))
        #: Split of the last decode: g_s time (hooks inside the model's decompress()) and the rest.
        self.last_decode_times: dict[str, float] = {}
        self._gs_start = 0.0
        self._gs_seconds = 0.0
        self._timed = isinstance(getattr(net, "g_s", None), nn.Module)
        if self._timed:
            net.g_s.register_forward_pre_hook(self._gs_pre)
            net.g_s.register_forward_hook(self._gs_post)

    # --- device and dtype ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the decoder's path (float64 when portable)."""
        return PORTABLE_DTYPE if self.portable else next(self.net.parameters()).dtype

    def parameters(self):
        """The network's parameters (model bytes, device)."""
        return self.net.parameters()

    def buffers(self):
        return self.net.buffers()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _gs_pre(self, module: nn.Module, args: Any) -> None:
        self._sync()
        self._gs_start = time.perf_counter()

    def _gs_post(self, module: nn.Module, args: Any, output: Any) -> None:
        self._sync()
        self._gs_seconds += time.perf_counter() - self._gs_start

    # --- transforms (LOF) ------------------------------------------------------------------------
    def padded(self, x: Tensor) -> Tensor:
        return pad_to(x, self.pad, self.padding)

    def analysis(self, x: Tensor) -> Tensor:
        g_a = self.net.g_a
        return g_a(self.padded(x).to(next(g_a.parameters()).dtype)).to(self.dtype)

    def synthesis(self, y_hat: Tensor, size: tuple[int, int]) -> Tensor:
        return self.net.g_s(y_hat)[..., : size[0], : size[1]]

    def rate_bits(self, y: Tensor, quantize: Quantizer) -> tuple[Tensor, Tensor]:
        """The differentiable rate of ``y`` (:func:`family_rate_bits`; LOF)."""
        return family_rate_bits(self.net, y, quantize)

    # --- the model's own coding ------------------------------------------------------------------
    def compress_latent(self, y: Tensor, dummy: Tensor | None = None) -> dict[str, Any]:
        """The model's own ``compress()`` with g_a replaced by the fixed latent ``y``, so the strings
        are exactly what its ``decompress()`` expects (``dummy``: the input it is called with)."""
        x = dummy if dummy is not None else torch.zeros(1, 3, 1, 1, device=y.device)
        with torch.no_grad(), latent_as_analysis(self.net, y.to(self.dtype)), \
                default_dtype(self.dtype if self.portable else None):
            return self.net.compress(x)

    def decompress_timed(self, strings: Any, shape: Any) -> Tensor:
        """The model's own ``decompress(strings, shape)["x_hat"]``, timing g_s apart."""
        self._gs_seconds = 0.0
        t0 = time.perf_counter()
        with torch.no_grad(), default_dtype(self.dtype if self.portable else None):
            x_hat = self.net.decompress(strings, shape)["x_hat"]
        self._sync()
        total = time.perf_counter() - t0
        self.last_decode_times = ({"entropy_decoding_s": total - self._gs_seconds, "synthesis_s": self._gs_seconds}
                                  if self._timed else {})
        return x_hat

    def decode_parts(self) -> DecodeParts:
        """Which modules and calls form which part of the network's own ``decompress()``
        (:mod:`bench.models.decodeparts`): g_s, h_s, the context / entropy-parameter nets (a serial
        model runs its masked convolution as ``F.conv2d``, outside any module: that time is in
        ``rest``), and entropy coding (CDF-index search, rANS, dequantisation)."""
        from compressai.ans import RansDecoder

        net = self.net
        named = {"g_s": ["g_s"], "h_s": ["h_s"],
                 "context": ["context_prediction", "entropy_parameters",
                             *(name for name, part in self.parts.items() if part == "context")]}
        modules = {part: [getattr(net, n) for n in names if isinstance(getattr(net, n, None), nn.Module)]
                   for part, names in named.items()}
        coding: list[tuple[Any, str]] = [(RansDecoder, "decode_stream")]
        for name, calls in (("entropy_bottleneck", ("decompress",)),
                            ("gaussian_conditional", ("build_indexes", "decompress", "dequantize"))):
            owner = getattr(net, name, None)
            coding += [(owner, call) for call in calls if owner is not None and callable(getattr(owner, call, None))]
        return DecodeParts({p: m for p, m in modules.items() if m}, coding, str(self.dtype).removeprefix("torch."))

    # --- complexity ------------------------------------------------------------------------------
    def complexity_target(self, height: int, width: int) -> tuple[nn.Module, Tensor, dict[str, str]]:
        """What :func:`bench.models.macs.model_complexity` counts: the network, the padded input its
        forward runs on, and extra top-level module names → parts."""
        x = torch.full((1, 3, height, width), 0.5, device=self.device)
        return self.net, self.padded(x), self.parts
