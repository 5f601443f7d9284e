"""What MLIC++'s real coding needs beside the network: padded geometry, the rANS inputs of the
Gaussian conditional, the weights' fingerprint that seeds the container CRC, the thread pinning of
float32 streams and the result :meth:`~bench.models.mlicpp.model.MLICPlusPlus.compress` returns.

Kept apart from :mod:`.model` so that the network file holds the network and its recursion.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from compressai.entropy_models import GaussianConditional
from torch import Tensor, nn

from bench.models.portable import scoped

#: padded image sides are multiples of this (y is H/16, z is H/64)
PAD_MULTIPLE = 64

# (part index, parity, σ_sq, μ_sq) → quantized squeezed part q = round(y − μ) + μ
PartCoder = Callable[[int, str, Tensor, Tensor], Tensor]


@dataclass
class CompressResult:
    """What :meth:`MLICPlusPlus.compress` returns."""

    data: bytes  # the complete container
    y_bits_estimated: float  # −Σ log2 p(ŷ) under the model (what an ideal coder would spend)
    z_bits_estimated: float
    y_symbols: Tensor  # int32, all 20 parts in coding order (for statistics)
    x_hat: Tensor | None = None  # encoder-side reconstruction [1,3,H,W] (cropped), if asked
    stats: dict = field(default_factory=dict)

    @property
    def estimated_bits(self) -> float:
        return self.y_bits_estimated + self.z_bits_estimated


def pinned_threads(n: int | None) -> contextlib.AbstractContextManager:
    """Run with ``torch.set_num_threads(n)`` and restore the previous count afterwards; None: unchanged."""
    return scoped(torch.get_num_threads, torch.set_num_threads, n)


def pad(x: Tensor) -> Tensor:
    """Zero-pad bottom/right to multiples of 64 (as the official test)."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % PAD_MULTIPLE, (-W) % PAD_MULTIPLE
    return F.pad(x, (0, pw, 0, ph), mode="constant", value=0.0) if ph or pw else x


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The sides :func:`pad` gives an image of ``height``×``width``."""
    return height + (-height) % PAD_MULTIPLE, width + (-width) % PAD_MULTIPLE


def coder_tables(gc: GaussianConditional) -> tuple[list[list[int]], list[int], list[int]]:
    """rANS inputs; CDF rows trimmed to their length (the coder never reads further)."""
    if gc._offset.numel() == 0:
        raise RuntimeError("Gaussian CDF tables are empty: load a checkpoint or call update() first")
    lengths = gc._cdf_length.reshape(-1).int().tolist()
    cdf = [row[:n] for row, n in zip(gc._quantized_cdf.tolist(), lengths)]
    return cdf, lengths, gc._offset.reshape(-1).int().tolist()


def escaped_count(gc: GaussianConditional, symbols: Tensor, indexes: Tensor) -> int:
    """How many symbols fall outside their CDF table and are bypass-coded (4-bit chunks)."""
    idx = indexes.long()
    value = symbols - gc._offset.cpu()[idx]
    return int(((value < 0) | (value >= gc._cdf_length.cpu()[idx] - 2)).sum())


def weights_fingerprint(model: nn.Module) -> int:
    """CRC-32 of every parameter and buffer (name, shape, bytes)."""
    crc = 0
    for name, tensor in sorted(model.state_dict().items()):
        crc = zlib.crc32(f"{name}{tuple(tensor.shape)}".encode(), crc)
        t = tensor.detach().to("cpu").contiguous()
        crc = zlib.crc32(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"", crc)
    return crc


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())
