"""Multiply-adds of a learned model per part: the counter below the codecs (a codec's public
``complexity()`` calls it; the measure layer stores what it returns, :mod:`bench.complexity`).

Counting runs the model's likelihood forward (every network the encoder or the decoder runs, once,
on the cell's real input padded as the codec pads it) under ``torch.no_grad()`` and PyTorch's own
:class:`torch.utils.flop_counter.FlopCounterMode`, and attributes the counts to parts through the
model's top-level submodules (:data:`PARTS`): analysis ``g_a``, synthesis ``g_s``, hyper-analysis
``h_a``, hyper-synthesis ``h_s`` and the context / entropy-parameter networks. The encoder is
analysis + hyperprior (h_a and h_s) + context; the decoder is h_s + context + synthesis. One MAC is
two FLOPs; kMAC/pixel divides by the real (unpadded) image pixels, as JPEG AI states complexity.

Not ``inference_mode``: the counter's module tracker raises inside it, and a dispatch-level count
there sees composite ops (``aten.conv2d``, ``aten.linear``, ``aten.matmul``) that the FLOP registry
does not map — a near-zero count for a conv net is that bug. Checked against a hand count of
``bmshj2018-factorized`` (tests/test_complexity.py).

Convolutions that run by Winograd (:mod:`bench.models.winograd`) are counted as the direct
convolutions they compute, so the count states the model's work, not one algorithm's.

What the counter cannot see: entropy coding (rANS, CDF look-ups), Python loops and indexing,
element-wise ops (activations, GDN's square root, additions, rounding), softmax and normalisation;
a serial context model (mbt2018) is counted as the same convolutions its per-position decoder
runs, masked-out kernel taps included. LOF's encoder-side iterations are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: top-level submodule name → part (CompressAI zoo, MLIC++, MSP); a model may add its own names
PARTS: dict[str, str] = {
    "g_a": "analysis", "g_s": "synthesis", "h_a": "hyper_analysis", "h_s": "hyper_synthesis",
    "context_prediction": "context", "entropy_parameters": "context",  # zoo (mbt2018, cheng2020)
    "local_context": "context", "channel_context": "context", "global_inter_context": "context",  # MLIC++
    "global_intra_context": "context", "entropy_parameters_anchor": "context",
    "entropy_parameters_nonanchor": "context", "lrp_anchor": "context", "lrp_nonanchor": "context",
    "context": "context", "features": "context",  # MSP
    # likelihood computations of the forward; real coding uses CDF tables and rANS instead
    "entropy_bottleneck": "entropy_model", "gaussian_conditional": "entropy_model",
}
#: every part a count is attributed to (a model's own names, e.g. a codec's ``complexity_parts``, must use these)
PART_NAMES = ("analysis", "synthesis", "hyper_analysis", "hyper_synthesis", "context", "entropy_model", "other")
ENCODER_PARTS = ("analysis", "hyper_analysis", "hyper_synthesis", "context", "other")
DECODER_PARTS = ("hyper_synthesis", "context", "synthesis", "other")
COUNTER = "torch.utils.flop_counter.FlopCounterMode under no_grad (conv, matmul, bmm, addmm, sdpa)"
UNSEEN = "entropy coding, Python loops, element-wise ops, softmax/normalisation; LOF iterations"


@dataclass(frozen=True)
class Complexity:
    """Counted multiply-adds of one model on one input size, per part."""

    height: int  # the real image
    width: int
    counted_height: int  # the padded input the model ran on
    counted_width: int
    part_macs: dict[str, int]
    part_params: dict[str, int] = field(default_factory=dict)

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def params(self) -> int:
        return sum(self.part_params.values())

    def macs(self, parts: tuple[str, ...]) -> int:
        return sum(self.part_macs.get(p, 0) for p in parts)

    @property
    def encoder_macs(self) -> int:
        return self.macs(ENCODER_PARTS)

    @property
    def decoder_macs(self) -> int:
        return self.macs(DECODER_PARTS)

    def kmac_per_px(self, macs: int) -> float:
        return macs / self.pixels / 1e3

    def columns(self) -> dict[str, Any]:
        """The stored per-cell columns: encoder/decoder kMAC/pixel, parameters, the per-part split."""
        return {
            "enc_kmac_per_px": self.kmac_per_px(self.encoder_macs),
            "dec_kmac_per_px": self.kmac_per_px(self.decoder_macs),
            "params": self.params,
            "complexity": {
                "kmac_per_px": {p: self.kmac_per_px(m) for p, m in sorted(self.part_macs.items())},
                "params": dict(sorted(self.part_params.items())),
                "encoder_parts": [p for p in ENCODER_PARTS if p in self.part_macs],
                "decoder_parts": [p for p in DECODER_PARTS if p in self.part_macs],
                "counted_size": [self.counted_height, self.counted_width],
                "counter": COUNTER, "not_counted": UNSEEN,
            },
        }


def part_of(module_name: str, extra: dict[str, str] | None = None) -> str:
    """Part of a top-level submodule name: ``extra`` (a model's own names) first, then
    :data:`PARTS`; ``"other"`` if unknown."""
    return (extra or {}).get(module_name) or PARTS.get(module_name, "other")


def count_macs(net: Any, x: Any, call: Any = None) -> dict[str, int]:
    """MACs per top-level submodule of ``net`` while ``call(x)`` (default ``net(x)``) runs.

    Work done outside any submodule lands under ``""``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.models.winograd import direct_convolutions

    counter = FlopCounterMode(display=False)
    handles = _inputs_follow_weights(net)
    try:
        # inference_mode(False): a caller inside inference_mode would otherwise break the count;
        # Winograd convolutions are counted as the direct convolutions they compute
        with torch.inference_mode(False), torch.no_grad(), direct_convolutions(), counter:
            (call or net)(x)
    finally:
        for handle in handles:
            handle.remove()
    counts = counter.get_flop_counts()
    root = type(net).__name__
    total = sum(counts.get("Global", {}).values())
    out: dict[str, int] = {}
    # the outermost called module under each top-level child (a ModuleList/ModuleDict is never called itself)
    for name, ops in counts.items():
        parts = name.split(".")
        if parts[0] != root or len(parts) < 2:
            continue
        if any(".".join(parts[:k]) in counts for k in range(2, len(parts))):
            continue  # counted with an ancestor
        out[parts[1]] = out.get(parts[1], 0) + sum(ops.values()) // 2
    rest = total // 2 - sum(out.values())
    if rest:
        out[""] = rest
    return out


def _inputs_follow_weights(net: Any) -> list[Any]:
    """Cast each module's floating inputs to its own weights' dtype while counting.

    A portable model (:mod:`bench.models.portable`) keeps its analysis transforms in float32 and
    the rest in float64; its codec path casts between them, but a plain ``forward`` does not.
    Casts add no multiply-adds, so the count is that of the codec's own computation.
    """
    import torch

    handles = []
    for module in net.modules():
        weight = next(module.parameters(recurse=False), None)
        if weight is None or not weight.is_floating_point():
            continue

        def cast(_module: Any, args: tuple, dtype: Any = weight.dtype) -> tuple:
            return tuple(a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

        handles.append(module.register_forward_pre_hook(cast))
    return handles


def _target(model: Any, height: int, width: int) -> tuple[Any, Any, dict[str, str]]:
    """The nn.Module to count, the padded input its forward takes, and extra module name → part,
    as the model says itself through its public ``complexity_target(height, width)`` (every
    CompressAI-protocol network, MLIC++, MSP): this module knows no particular model."""
    own = getattr(model, "complexity_target", None)
    if not callable(own):
        raise TypeError(f"no complexity counting for {type(model).__name__}: it has no complexity_target(height, width)")
    return own(height, width)


def model_complexity(model: Any, height: int, width: int) -> Complexity:
    """Count ``model`` (MLIC++, MSP or any CompressAI-protocol network) on a ``height``×``width`` image."""
    net, x, extra = _target(model, height, width)
    macs = count_macs(net, x)
    parts: dict[str, int] = {}
    for name, m in macs.items():
        part = part_of(name, extra)
        parts[part] = parts.get(part, 0) + m
    params: dict[str, int] = {}
    for name, module in net.named_children():
        n = sum(p.numel() for p in module.parameters())
        if n:
            part = part_of(name, extra)
            params[part] = params.get(part, 0) + n
    return Complexity(height, width, int(x.shape[-2]), int(x.shape[-1]), parts, params)
