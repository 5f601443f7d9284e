"""Winograd F(4×4, 3×3) convolutions: the same 3×3 convolution with 4× fewer multiplications.

Why: MLIC++'s synthesis transform, LRP and channel context are 3×3 stride-1 convolutions, and on
CPU a direct convolution at best runs at the matmul rate (oneDNN float32), or well below it
(float64, which the portable path uses: torch has no fast float64 convolution). Winograd's
minimal filtering algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
CVPR 2016) computes each 4×4 output tile from a 6×6 input tile with 36 instead of 144
multiplications per (input, output) channel pair:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A          (g: 3×3 kernel, d: 6×6 tile, ⊙ summed over Cin)

Here the element-wise product summed over input channels is one batched matmul (36 GEMMs of
[tiles × Cin] · [Cin × Cout]); the tile transforms are matmuls with the 36×36 and 16×36
Kronecker products of Bᵀ and Aᵀ. Rows of tiles run in bands so the buffers stay in cache.

Numerics: the result equals the direct convolution up to rounding, but rounds differently:
measured against a float64 direct convolution, max |Δ| ≈ 1e-13 in float64 (direct: ~1e-15) and
≈ 3e-5 in float32 (direct: ~1.5e-6), on unit-scale data. Callers that promise bit-exactness
(MLIC++ ``reference``) must not use it; streams record whether it ran (see MLIC++'s header mode).
The kernel transform G g Gᵀ is recomputed per call (one memory-bound GEMM; caching it would
hold 4× the weights in memory).

:func:`use_winograd` also runs float64 depthwise convolutions as shifted multiply-adds
(:class:`ShiftedDepthwiseConv2d`), for the same reason: torch's float64 grouped convolution is a
loop of per-channel GEMMs. Measured speed: ``python -m bench.tools.decode_parts`` (README).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TILE = 4  # output tile side m of F(m×m, 3×3)
_A = TILE + 2  # input tile side
#: elements per band buffer (tiles × channels × 36); ~16 MB in float64
BAND_ELEMENTS = 1 << 21

# Lavin & Gray's F(4,3) matrices with interpolation points 0, ±1, ±2, ∞
_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G = ((Fraction(1, 4), 0, 0), (Fraction(-1, 6), Fraction(-1, 6), Fraction(-1, 6)),
      (Fraction(-1, 6), Fraction(1, 6), Fraction(-1, 6)), (Fraction(1, 24), Fraction(1, 12), Fraction(1, 6)),
      (Fraction(1, 24), Fraction(-1, 12), Fraction(1, 6)), (0, 0, 1))
_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


def _matrix(rows) -> Tensor:
    return torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)


@lru_cache(maxsize=8)
def _transforms(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """(G⊗G [36,9], Bᵀ⊗Bᵀ [36,36], Aᵀ⊗Aᵀ [16,36]) in ``dtype`` on ``device``."""
    G, BT, AT = _matrix(_G), _matrix(_BT), _matrix(_AT)
    with torch.inference_mode(False):
        return tuple(torch.kron(m, m).to(dtype=dtype, device=device) for m in (G, BT, AT))


def transform_weights(weight: Tensor) -> Tensor:
    """3×3 kernels [Cout,Cin,3,3] → U = G g Gᵀ as [36, Cin, Cout].

    One GEMM with G⊗G: U[ab, c, o] = Σ_jk G[a,j] G[b,k] g[o,c,j,k].
    """
    O, C = weight.shape[:2]
    GG = _transforms(weight.dtype, weight.device)[0]
    return (GG @ weight.detach().permute(2, 3, 1, 0).reshape(9, C * O)).view(_A * _A, C, O)


def conv3x3(x: Tensor, U: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.conv2d(x, w, bias, padding=1)`` by Winograd F(4,3); ``U = transform_weights(w)``.

    x [B,C,H,W] in any memory layout; the result is a channels-last [B,Cout,H,W].
    """
    B, C, H, W = x.shape
    O = U.shape[-1]
    th, tw = -(-H // TILE), -(-W // TILE)
    _, Kin, Kout = _transforms(x.dtype, x.device)
    padded = F.pad(x, (1, TILE * tw - W + 1, 1, TILE * th - H + 1)).permute(0, 2, 3, 1).contiguous()
    sB, sH, sW, sC = padded.stride()
    out = torch.empty(B, TILE * th, TILE * tw, O, dtype=x.dtype, device=x.device)
    rows = max(1, BAND_ELEMENTS // (_A * _A * tw * max(C, O) * B))
    for r0 in range(0, th, rows):
        n = min(th, r0 + rows) - r0
        # d: the overlapping 6×6 input tiles of this band, [6,6,B,n,tw,C] (a strided view)
        d = padded.as_strided((_A, _A, B, n, tw, C), (sH, sW, sB, TILE * sH, TILE * sW, sC),
                              padded.storage_offset() + r0 * TILE * sH)
        V = (Kin @ d.reshape(_A * _A, -1)).view(_A * _A, B * n * tw, C)  # Bᵀ d B
        M = torch.bmm(V, U)  # Σ over Cin of U ⊙ V: [36, tiles, Cout]
        Y = (Kout @ M.view(_A * _A, -1)).view(TILE, TILE, B, n, tw, O)  # Aᵀ M A
        out[:, r0 * TILE:(r0 + n) * TILE].view(B, n, TILE, tw, TILE, O).copy_(Y.permute(2, 3, 0, 4, 1, 5))
    if bias is not None:
        out.add_(bias)  # in place: no second output-sized tensor
    return out[:, :H, :W].permute(0, 3, 1, 2)


def _same_padded(conv: nn.Module, k: int) -> bool:
    """A k×k, stride-1, dilation-1, zero-padded 2-D convolution whose output keeps the input size."""
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (k, k) and k % 2 == 1
            and conv.stride == (1, 1) and conv.padding == (k // 2, k // 2) and conv.dilation == (1, 1)
            and conv.padding_mode == "zeros")


def eligible(conv: nn.Module) -> bool:
    """A plain 3×3, stride-1, padding-1, ungrouped, zero-padded 2-D convolution."""
    return _same_padded(conv, 3) and conv.groups == 1


def depthwise(conv: nn.Module) -> bool:
    """A depthwise (one filter per channel), stride-1, 'same'-padded, zero-padded 2-D convolution."""
    return (isinstance(conv, nn.Conv2d) and _same_padded(conv, conv.kernel_size[0])
            and conv.groups == conv.in_channels == conv.out_channels)


#: False inside :func:`direct_convolutions`
_ACTIVE = True


def _direct(conv: nn.Conv2d, x: Tensor) -> bool:
    """Whether this call must run the direct convolution: inside :func:`direct_convolutions`, or
    when autograd must reach the input or the weights (LOF)."""
    return not _ACTIVE or (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad))


class WinogradConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state-dict keys) that runs by Winograd F(4,3).

    Falls back to the direct convolution where Winograd does not pay or cannot serve: when
    autograd must reach the weights or the input (LOF), on maps of fewer than :attr:`MIN_TILES`
    output tiles (the kernel transform and thin GEMMs dominate: MLIC++'s hyper-decoder at 768×512
    ran 1.5× slower), and in float32 for fewer than :attr:`MIN_OUT_FLOAT32` output channels
    (measured slower than oneDNN there).
    """

    MIN_OUT_FLOAT32 = 64
    MIN_TILES = 64

    def forward(self, x: Tensor) -> Tensor:
        tiles = -(-x.shape[-2] // TILE) * -(-x.shape[-1] // TILE)
        if (_direct(self, x) or tiles < self.MIN_TILES
                or (x.dtype == torch.float32 and self.out_channels < self.MIN_OUT_FLOAT32)):
            return super().forward(x)
        return conv3x3(x, transform_weights(self.weight), self.bias)


class ShiftedDepthwiseConv2d(nn.Conv2d):
    """A depthwise ``nn.Conv2d`` that runs in float64 as k² shifted multiply-adds.

    torch has no fast float64 convolution: a grouped one runs one small im2col GEMM per channel
    (MLIC++'s global contexts spent ~90 % of their float64 time there). Other dtypes, and calls
    that autograd must see through, run the direct convolution.
    """

    def forward(self, x: Tensor) -> Tensor:
        if _direct(self, x) or x.dtype != torch.float64:
            return super().forward(x)
        k, (H, W) = self.kernel_size[0], x.shape[-2:]
        padded = F.pad(x, (k // 2,) * 4)
        weight = self.weight.reshape(1, -1, k, k)
        out = torch.zeros_like(x)  # keeps x's memory layout
        if self.bias is not None:
            out.add_(self.bias.reshape(1, -1, 1, 1))
        for i in range(k):
            for j in range(k):
                out.addcmul_(padded[:, :, i:i + H, j:j + W], weight[:, :, i:i + 1, j:j + 1])
        return out


def use_winograd(module: nn.Module, enabled: bool = True) -> int:
    """Switch every eligible convolution inside ``module`` to (or back from) the faster algorithms:
    3×3 dense ones to Winograd F(4,3), depthwise ones to shifted multiply-adds (float64 only).

    Only the class changes (``nn.Conv2d`` ↔ :class:`WinogradConv2d` / :class:`ShiftedDepthwiseConv2d`):
    parameters, buffers and state-dict keys stay. Returns how many convolutions now run by Winograd.
    """
    count = 0
    for conv in module.modules():
        if type(conv) in (nn.Conv2d, WinogradConv2d) and eligible(conv):
            conv.__class__ = WinogradConv2d if enabled else nn.Conv2d
            count += enabled
        elif type(conv) in (nn.Conv2d, ShiftedDepthwiseConv2d) and depthwise(conv):
            conv.__class__ = ShiftedDepthwiseConv2d if enabled else nn.Conv2d
    return count


@contextlib.contextmanager
def direct_convolutions() -> Iterator[None]:
    """Within: every convolution switched by :func:`use_winograd` runs as a direct convolution
    (complexity counting states direct multiply-adds, whatever algorithm runs them)."""
    global _ACTIVE
    before, _ACTIVE = _ACTIVE, False
    try:
        yield
    finally:
        _ACTIVE = before
