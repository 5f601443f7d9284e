"""Portable decoding: streams that decode to the same image on any thread count and device.

Why: float32 convolutions and reductions are summed in an order that depends on the thread count
(oneDNN/BLAS blocking), the kernel (channels-last or not) and the device. Measured in fresh
processes, 1 vs 2 threads, 128×192 image (``scripts/portable_probe.py``): MLIC++'s hyper-decoder
and entropy-parameter nets differ in up to 90 % of their float32 outputs (|Δ| ≤ 6e-8), the
zoo's mbt2018 entropy parameters by up to 1.3e-6, and the synthesis transforms of mbt2018 and
MSP by up to 9e-7 — enough to flip a rounded uint8 pixel (1–2 per 74k values there) and, at
larger sizes, a scale index, which desynchronises the range decoder.

Design (the portable path, default of every learned codec except MLIC++ ``reference``): every
module the *decoder* runs — hyper-decoder, context and entropy-parameter nets, LRP, synthesis —
runs in float64; the encoder-only analysis transforms stay float32 and their output is cast
(exactly) to float64. The decoder's discrete decisions (scale index = comparison of σ with the
scale table, ŷ = symbol + μ, the final uint8 rounding) are then taken on float64 values. Measured
with the same probe: on CPU every float64 stage output was bit-identical at 1 and 2 threads
(torch's float64 convolutions split work over outputs, not over the summed dimension), and the
closest any value came to a decision boundary was 1.8e-3 (σ to a scale-table entry) and 3.5e-6
(x̂·255 to a rounding point) — ~1e10 times a float64 rounding error, against float32 deltas of
up to 1.8e-4 in x̂·255 that do cross such boundaries. A device or library that does reorder
float64 sums (GPU) moves values by ~1e-16 relative, so a decision flips with a probability of
~1e-13 per decision (no TF32 in float64). Weights keep
their float32 values (float64 holds them exactly); the rate changes only through μ and σ now
being computed more precisely (measured: see README, "Decode anywhere").

Streams record the path in one header flag (:data:`FLAG_PORTABLE`); a decoder refuses a stream
whose flag differs from its configuration, since the symbols' parameters would not match.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch
from torch import nn

#: header flag bit: the stream was coded on the float64 (portable) path
FLAG_PORTABLE = 0x01
#: dtype of the decoder's path in portable mode
PORTABLE_DTYPE = torch.float64

T = TypeVar("T")


def make_portable(model: nn.Module, encoder_only: Iterable[nn.Module] = ()) -> nn.Module:
    """Convert ``model``'s floating-point parameters and buffers to float64, except the modules
    in ``encoder_only`` (analysis transforms), which stay float32. Returns ``model``."""
    model.to(PORTABLE_DTYPE)
    for module in encoder_only:
        module.to(torch.float32)
    return model


@contextlib.contextmanager
def scoped(get: Callable[[], T], put: Callable[[T], object], value: T | None) -> Iterator[None]:
    """Run with ``put(value)`` and restore ``get()``'s value afterwards; None: unchanged (torch's
    process-wide settings — default dtype, thread count — scoped to one call)."""
    if value is None:
        yield
        return
    before = get()
    put(value)
    try:
        yield
    finally:
        put(before)


def default_dtype(dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Run with ``torch.set_default_dtype(dtype)`` (tensors that library code creates without a
    dtype — CompressAI's ŷ buffers, attention masks — then match the model); None: unchanged."""
    return scoped(torch.get_default_dtype, torch.set_default_dtype, dtype)


def flags_byte(portable: bool) -> int:
    """The header's flags byte."""
    return FLAG_PORTABLE if portable else 0


def check_flags(flags: int, portable: bool, codec: str) -> None:
    """Refuse a stream coded on the other path (its symbols' parameters would not match)."""
    from bench.errors import CodecError

    if flags & ~FLAG_PORTABLE:
        raise CodecError(f"{codec}: unknown header flags 0x{flags:02X} (a newer format?)")
    if bool(flags & FLAG_PORTABLE) != portable:
        made, want = ("portable (float64)", "float32") if flags & FLAG_PORTABLE else ("float32", "portable (float64)")
        raise CodecError(
            f"{codec}: stream was coded on the {made} path but this codec decodes on the {want} path; "
            f"set params.portable = {str(bool(flags & FLAG_PORTABLE)).lower()} to decode it"
        )
