"""A small CompressAI-protocol model that is none of CompressAI's classes.

g_a/g_s are two strided convolutions each; the latent's channels are split in two halves, each
coded by its own factorised prior. ``compress`` returns nested strings — ``[[a], [[b]]]`` — and a
shape that is a list of two ``torch.Size``: the adapter must store both exactly as they are.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn


class SplitPrior(nn.Module):
    def __init__(self, N: int = 8, M: int = 12):
        super().__init__()
        self.half = M // 2
        self.g_a = nn.Sequential(nn.Conv2d(3, N, 5, 2, 2), nn.ReLU(), nn.Conv2d(N, M, 5, 2, 2))
        self.g_s = nn.Sequential(nn.ConvTranspose2d(M, N, 5, 2, 2, 1), nn.ReLU(), nn.ConvTranspose2d(N, 3, 5, 2, 2, 1))
        self.eb_a = EntropyBottleneck(self.half)
        self.eb_b = EntropyBottleneck(M - self.half)

    def forward(self, x):
        y = self.g_a(x)
        a_hat, a_lik = self.eb_a(y[:, : self.half])
        b_hat, b_lik = self.eb_b(y[:, self.half :])
        return {"x_hat": self.g_s(torch.cat([a_hat, b_hat], 1)), "likelihoods": {"a": a_lik, "b": b_lik}}

    def update(self, force: bool = False) -> bool:
        return self.eb_a.update(force=force) | self.eb_b.update(force=force)

    def compress(self, x):
        y = self.g_a(x)
        a, b = y[:, : self.half], y[:, self.half :]
        return {"strings": [self.eb_a.compress(a), [self.eb_b.compress(b)]],
                "shape": [a.size()[-2:], b.size()[-2:]]}

    def decompress(self, strings, shape):
        a_hat = self.eb_a.decompress(strings[0], shape[0])
        b_hat = self.eb_b.decompress(strings[1][0], shape[1])
        return {"x_hat": self.g_s(torch.cat([a_hat, b_hat], 1)).clamp(0, 1)}


class NotAModel:
    """Not a torch module: refused."""
