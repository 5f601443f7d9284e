"""Checkerboard helpers (spec §3).

A latent position (r, c) is an **anchor** when (r + c) is odd and a **non-anchor** when it is even,
so (0, 0) is a non-anchor — the opposite of the common convention. ``squeeze`` packs one parity
of a [B,C,h,w] tensor into [B,C,h,w/2] (row-major order within a row: the coding order), and
``unsqueeze`` is its exact inverse with zeros at the other parity. All helpers are pure copies
(``torch.where``), so they never change a value.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

ANCHOR = "anchor"
NONANCHOR = "nonanchor"
PARITIES = (ANCHOR, NONANCHOR)


# Cached masks are made outside inference mode (normal tensors serve both): one made inside
# ``compress()`` would otherwise be refused by autograd later (LOF's rate through the recursion).
@lru_cache(maxsize=16)
@torch.inference_mode(False)
def _anchor_mask(h: int, w: int, device: torch.device) -> Tensor:
    rows = torch.arange(h, device=device).view(h, 1)
    cols = torch.arange(w, device=device).view(1, w)
    return ((rows + cols) % 2 == 1).view(1, 1, h, w)


@lru_cache(maxsize=16)
@torch.inference_mode(False)
def _even_rows(h: int, device: torch.device) -> Tensor:
    return (torch.arange(h, device=device) % 2 == 0).view(h, 1)


def parity_mask(parity: str, h: int, w: int, device: torch.device) -> Tensor:
    """Boolean [1,1,h,w] mask of the positions of ``parity``."""
    mask = _anchor_mask(h, w, torch.device(device))
    if parity == ANCHOR:
        return mask
    if parity == NONANCHOR:
        return ~mask
    raise ValueError(f"unknown parity {parity!r}")


def keep(parity: str, t: Tensor) -> Tensor:
    """``t`` at the positions of ``parity``, exact zeros elsewhere (anchor(t) / nonanchor(t))."""
    return torch.where(parity_mask(parity, t.shape[-2], t.shape[-1], t.device), t, 0)


def anchor(t: Tensor) -> Tensor:
    return keep(ANCHOR, t)


def nonanchor(t: Tensor) -> Tensor:
    return keep(NONANCHOR, t)


def _odd_col_on_even_rows(parity: str) -> bool:
    # anchors sit at odd columns of even rows; non-anchors at even columns of even rows
    return parity == ANCHOR


def squeeze(parity: str, t: Tensor) -> Tensor:
    """[B,C,h,w] → [B,C,h,w/2]: the ``parity`` positions of each row, left to right."""
    h, w = t.shape[-2:]
    if w % 2:
        raise ValueError(f"checkerboard squeeze needs an even width, got {w}")
    pairs = t.unflatten(-1, (w // 2, 2))
    even = _even_rows(h, t.device)
    if _odd_col_on_even_rows(parity):
        return torch.where(even, pairs[..., 1], pairs[..., 0])
    return torch.where(even, pairs[..., 0], pairs[..., 1])


def unsqueeze(parity: str, s: Tensor) -> Tensor:
    """Inverse of :func:`squeeze`: [B,C,h,w'] → [B,C,h,2w'], zeros at the other parity."""
    h = s.shape[-2]
    even = _even_rows(h, s.device)
    on_even, on_odd = torch.where(even, s, 0), torch.where(even, 0, s)
    if _odd_col_on_even_rows(parity):
        cols = (on_odd, on_even)  # column 2j gets the odd rows, column 2j+1 the even rows
    else:
        cols = (on_even, on_odd)
    return torch.stack(cols, dim=-1).flatten(-2)
