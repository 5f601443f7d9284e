"""Channel context and the two linear-attention global contexts (spec §4.2–4.4).

* :class:`ChannelContext` (``channel_context.i``): three 3×3 convs over ŷ₀..ŷ_{i−1}.
* :class:`LinearGlobalIntraContext` (``global_intra_context.i``): queries from the previous
  slice's non-anchors, keys from its anchors, values from the current anchor â; softmax over
  positions for keys and over channels for queries, Ctx = K·Vᵀ, out = Ctxᵀ·Q.
* :class:`LinearGlobalInterContext` (``global_inter_context.i``): the same linear attention over
  all previous slices, one head per slice.

Cost is linear in the number of pixels (the context matrices are d×d). The matrix products run on
the full-resolution zero-filled tensors and in the official association, as the spec asks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.models.mlicpp.checkerboard import ANCHOR, NONANCHOR, keep, squeeze, unsqueeze
from bench.models.mlicpp.layers import conv1x1, conv3x3


def depthwise3x3(ch: int) -> nn.Conv2d:
    return nn.Conv2d(ch, ch, kernel_size=3, padding=1, groups=ch)


def pointwise_then_depthwise(ch: int) -> nn.Sequential:
    """Q/K/V branch: 1×1 conv then depthwise 3×3 (keys ``.0`` and ``.1``)."""
    return nn.Sequential(conv1x1(ch, ch), depthwise3x3(ch))


def conv_mlp(in_ch: int, hidden: int, out_ch: int) -> nn.Sequential:
    """1×1 → GELU → depthwise 3×3 → GELU → 1×1 (keys ``mlp.0``, ``mlp.2``, ``mlp.4``)."""
    return nn.Sequential(conv1x1(in_ch, hidden), nn.GELU(), depthwise3x3(hidden), nn.GELU(), conv1x1(hidden, out_ch))


def linear_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """One head: softmax(K over positions)·Vᵀ = Ctx [B,d,d]; out = Ctxᵀ·softmax(Q over channels)."""
    context = k.softmax(dim=2) @ v.transpose(1, 2)
    return context.transpose(1, 2) @ q.softmax(dim=1)


class ChannelContext(nn.Module):
    """ŷ₀..ŷ_{i−1} [B,32i,h,w] → [B,128,h,w] (key prefix ``fushion``, spelled as upstream)."""

    def __init__(self, in_ch: int, out_ch: int = 128):
        super().__init__()
        self.fushion = nn.Sequential(
            conv3x3(in_ch, 192), nn.GELU(), conv3x3(192, out_ch), nn.GELU(), conv3x3(out_ch, out_ch)
        )

    def forward(self, previous: Tensor) -> Tensor:
        return self.fushion(previous)


class LinearGlobalIntraContext(nn.Module):
    """Global context inside slice i: (ŷ_{i−1}, â) → [B,64,h,w]; 2 heads of 16 channels."""

    def __init__(self, dim: int = 32, out_dim: int = 64, num_heads: int = 2):
        super().__init__()
        self.num_heads = num_heads
        self.queries = pointwise_then_depthwise(dim)
        self.keys = pointwise_then_depthwise(dim)
        self.values = pointwise_then_depthwise(dim)
        self.reprojection = nn.Conv2d(dim, out_dim, kernel_size=5, padding=2)
        self.mlp = conv_mlp(out_dim, out_dim * 2, out_dim)

    def forward(self, previous: Tensor, a_hat: Tensor) -> Tensor:
        B, C, h, w = previous.shape
        # convs on the zero-filled full-resolution maps, then squeeze to the parity's positions
        q = squeeze(NONANCHOR, self.queries(keep(NONANCHOR, previous)))
        k = squeeze(ANCHOR, self.keys(keep(ANCHOR, previous)))
        v = squeeze(ANCHOR, self.values(a_hat))
        d = C // self.num_heads
        heads = []
        for hd in range(self.num_heads):
            part = slice(hd * d, (hd + 1) * d)
            k_h = k[:, part].reshape(B, d, -1).softmax(dim=2).reshape(B, d, h, w // 2)
            q_h = q[:, part].reshape(B, d, -1).softmax(dim=1).reshape(B, d, h, w // 2)
            # products on the unsqueezed zero-filled tensors (official accumulation)
            k_full = unsqueeze(ANCHOR, k_h).reshape(B, d, h * w)
            v_full = unsqueeze(ANCHOR, v[:, part]).reshape(B, d, h * w)
            q_full = unsqueeze(NONANCHOR, q_h).reshape(B, d, h * w)
            context = k_full @ v_full.transpose(1, 2)  # [B,d,d]
            heads.append((context.transpose(1, 2) @ q_full).reshape(B, d, h, w))
        r = self.reprojection(torch.cat(heads, dim=1))
        return r + self.mlp(r)


class LinearGlobalInterContext(nn.Module):
    """Global context across slices: ŷ₀..ŷ_{i−1} [B,32i,h,w] → [B,64,h,w]; head = one slice."""

    def __init__(self, dim: int, out_dim: int = 64, num_heads: int = 1):
        super().__init__()
        self.num_heads = num_heads
        self.queries = pointwise_then_depthwise(dim)
        self.keys = pointwise_then_depthwise(dim)
        self.values = pointwise_then_depthwise(dim)
        self.reprojection = nn.Conv2d(dim, 96, kernel_size=5, padding=2)
        self.mlp = conv_mlp(96, 128, out_dim)
        self.skip = conv1x1(96, out_dim)

    def forward(self, previous: Tensor) -> Tensor:
        B, C, h, w = previous.shape
        q = self.queries(previous).reshape(B, C, h * w)
        k = self.keys(previous).reshape(B, C, h * w)
        v = self.values(previous).reshape(B, C, h * w)
        d = C // self.num_heads
        heads = [
            linear_attention(q[:, i * d:(i + 1) * d], k[:, i * d:(i + 1) * d], v[:, i * d:(i + 1) * d])
            for i in range(self.num_heads)
        ]
        r = self.reprojection(torch.cat(heads, dim=1).reshape(B, C, h, w))
        return self.skip(r) + self.mlp(r)
