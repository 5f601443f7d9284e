"""Polyphase latent pyramid: split a latent into coarse/diagonal/right/down parts and back.

Level s splits into four polyphase parts (no redundancy, every element coded once)::

    coarse Y_{s+1} = Y_s[:, 0::2, 0::2]   (⌈h/2⌉ × ⌈w/2⌉)
    diagonal D_s   = Y_s[:, 1::2, 1::2]   (⌊h/2⌋ × ⌊w/2⌋)
    right R_s      = Y_s[:, 0::2, 1::2]   (⌈h/2⌉ × ⌊w/2⌋)
    down B_s       = Y_s[:, 1::2, 0::2]   (⌊h/2⌋ × ⌈w/2⌉)

Odd sizes need no padding; :func:`merge` is the exact inverse of :func:`split`. Context nets
work on the coarse grid, so :func:`pad_to` / :func:`crop_to` move parts onto it and back.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

PARTS = ("D", "R", "B")


def coarse_size(h: int, w: int) -> tuple[int, int]:
    """Size of the coarse part of an h×w level."""
    return (h + 1) // 2, (w + 1) // 2


def part_size(part: str, h: int, w: int) -> tuple[int, int]:
    """Size of polyphase part ``part`` ("Y" coarse, "D", "R" or "B") of an h×w level."""
    ch, cw = coarse_size(h, w)
    fh, fw = h // 2, w // 2
    return {"Y": (ch, cw), "D": (fh, fw), "R": (ch, fw), "B": (fh, cw)}[part]


def level_sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """Sizes of Y_0 … Y_S for an h×w latent (index s gives level s)."""
    sizes = [(h, w)]
    for _ in range(levels):
        sizes.append(coarse_size(*sizes[-1]))
    return sizes


def split(y: Tensor) -> dict[str, Tensor]:
    """Polyphase parts of ``y`` (B×C×h×w): {"Y": coarse, "D", "R", "B"}."""
    return {
        "Y": y[:, :, 0::2, 0::2],
        "D": y[:, :, 1::2, 1::2],
        "R": y[:, :, 0::2, 1::2],
        "B": y[:, :, 1::2, 0::2],
    }


def merge(parts: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`split`: interleave the four parts into a level of ``size``."""
    coarse = parts["Y"]
    y = coarse.new_zeros(coarse.shape[0], coarse.shape[1], *size)
    y[:, :, 0::2, 0::2] = coarse
    y[:, :, 1::2, 1::2] = parts["D"]
    y[:, :, 0::2, 1::2] = parts["R"]
    y[:, :, 1::2, 0::2] = parts["B"]
    return y


def decompose(y: Tensor, levels: int) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Full pyramid of ``y``: the coarsest level Y_S and the D/R/B parts of levels 0 … S−1."""
    details = []
    for _ in range(levels):
        parts = split(y)
        details.append({p: parts[p] for p in PARTS})
        y = parts["Y"]
    return y, details


def pad_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero-pad ``x`` at the bottom/right to ``size`` (a part onto the coarse grid)."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dh < 0 or dw < 0:
        raise ValueError(f"cannot pad {tuple(x.shape[-2:])} to smaller {size}")
    return F.pad(x, (0, dw, 0, dh)) if dh or dw else x


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Top-left crop of ``x`` to ``size`` (coarse-grid parameters onto a part)."""
    return x[..., : size[0], : size[1]]
