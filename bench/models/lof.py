"""LOF — latent representation overfitting, an encoder-side option for any learned codec.

Re-implementation for lic-bench of the "latent representation overfitting" of Zhang et al.
(arXiv 2210.04112; only the abstract was available) in the spirit of Campos et al. 2019 and
Yang et al. 2020 (SGA). Given an image x and a frozen model, the encoder optimises the latent y
(only y) against

    J(y) = R(ŷ)/(H·W) + λ·255²·MSE(x, g_s(ŷ))        [bits per pixel + λ·255²·MSE]

with Adam, ŷ from straight-through rounding (``rounding="ste"``) or annealed stochastic rounding
(``"sga"``, τ decaying geometrically from 0.5). Every ``eval_every`` iterations it measures the
*real* coded cost — bytes of the real bitstream and the MSE of the real 8-bit decoded image — and
keeps the best y, the starting y = g_a(x) included, so LOF never makes the image's coded cost
worse. The decoder and bitstream format are untouched: the result is an ordinary bitstream.

A codec takes part by implementing :class:`LatentOptimizable` (MSP: ``bench.models.msp``; the
CompressAI zoo: ``bench.models.zoo.ZooModel``; MLIC++: ``bench.models.mlicpp.lof.MLICLatent``).
What a model needs:

* ``analysis(x) -> y`` and ``synthesis(ŷ, size) -> x̂`` (padding/cropping inside);
* ``rate_bits(y, quantize) -> (bits, ŷ)``: the model's Σ −log₂ p(ŷ) as a differentiable scalar,
  every quantisation done with ``quantize(v, μ)`` (so STE/SGA pass gradients), contexts built
  from quantised values in coding order (a parallel teacher-forced approximation is fine: the
  real cost is measured separately), hyper-latents derived from y inside;
* ``encode_latent(y, size) -> bytes``: the complete real bitstream for latent y;
* ``decode_image(bytes) -> x̂``: the real decoder (1×3×H×W in [0, 1]);
* optionally ``device``, where the image tensor should live.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.models.entropy import MAX_CODABLE, codable
from bench.models.imageio import check_image, to_tensor, to_uint8
from bench.models.quantizers import Quantizer, SGARound, ste_round


@runtime_checkable
class LatentOptimizable(Protocol):
    """What LOF needs from a learned codec (see the module docstring)."""

    def analysis(self, x: Tensor) -> Tensor: ...

    def synthesis(self, y_hat: Tensor, size: tuple[int, int]) -> Tensor: ...

    def rate_bits(self, y: Tensor, quantize: Quantizer) -> tuple[Tensor, Tensor]: ...

    def encode_latent(self, y: Tensor, size: tuple[int, int]) -> bytes: ...

    def decode_image(self, data: bytes) -> Tensor: ...


@dataclass(frozen=True)
class LOFOptions:
    """Optimiser settings. ``iterations`` K, real-cost check every ``eval_every`` iterations."""

    iterations: int
    lr: float = 1e-3
    eval_every: int = 50
    rounding: str = "ste"  # "ste" | "sga"
    tau_start: float = 0.5
    tau_end: float = 0.05
    seed: int = 0

    def validate(self) -> LOFOptions:
        if self.iterations < 0 or self.eval_every < 1 or not self.lr > 0:
            raise ValueError(f"invalid LOF options {self}")
        if self.rounding not in ("ste", "sga"):
            raise ValueError(f"LOF rounding must be 'ste' or 'sga', got {self.rounding!r}")
        return self


@dataclass(frozen=True)
class CodedCost:
    """The real cost of one bitstream: its bytes and the decoded image's distortion."""

    data: bytes
    bpp: float
    mse: float  # on the 0..255 scale
    cost: float  # bpp + λ·mse  (= bpp + λ·255²·MSE on [0, 1])

    @property
    def psnr(self) -> float:
        return 10 * math.log10(255.0**2 / self.mse) if self.mse > 0 else float("inf")


@dataclass(frozen=True)
class LOFResult:
    """The kept bitstream and what LOF did to get it."""

    data: bytes
    iterations: int  # run: fewer than asked when the latent diverged (see ``stopped``)
    time_s: float
    before: CodedCost
    after: CodedCost
    best_iteration: int
    evaluations: int
    latent: Tensor  # the kept y (its real bitstream is ``data``)
    stopped: str = ""  # why it stopped early, if it did

    def extras(self) -> dict[str, Any]:
        """Statistics for ``Encoded.extras``."""
        return {
            "lof_iterations": self.iterations,
            "lof_time_s": self.time_s,
            "lof_cost_before": self.before.cost,
            "lof_cost_after": self.after.cost,
            "lof_bytes_before": len(self.before.data),
            "lof_bytes_after": len(self.after.data),
            "lof_psnr_before": self.before.psnr,
            "lof_psnr_after": self.after.psnr,
            "lof_best_iteration": self.best_iteration,
        } | ({"lof_stopped": self.stopped} if self.stopped else {})


def coded_cost(model: LatentOptimizable, y: Tensor, image: np.ndarray, lam: float) -> CodedCost:
    """Compress ``y`` for real, decode the bytes, and price them: bpp + λ·MSE(8-bit)."""
    size = image.shape[:2]
    with torch.no_grad():
        data = model.encode_latent(y, size)
        decoded = to_uint8(model.decode_image(data))
    mse = float(np.mean((decoded.astype(np.float64) - image.astype(np.float64)) ** 2))
    bpp = 8.0 * len(data) / (size[0] * size[1])
    return CodedCost(data, bpp, mse, bpp + lam * mse)


def _tau(options: LOFOptions, it: int) -> float:
    frac = it / max(options.iterations, 1)
    return options.tau_start * (options.tau_end / options.tau_start) ** frac


def overfit_latent(model: LatentOptimizable, image: np.ndarray, lam: float, options: LOFOptions) -> LOFResult:
    """Run LOF on one image (H×W×3 uint8) at trade-off ``lam``; see the module docstring."""
    check_image(image)
    options.validate()
    if not lam > 0:
        raise ValueError(f"LOF needs λ > 0, got {lam}")
    device = getattr(model, "device", "cpu")  # optional attribute of the model
    x = to_tensor(image, device)
    size = (image.shape[0], image.shape[1])
    with torch.no_grad():
        y0 = model.analysis(x)
    before = coded_cost(model, y0, image, lam)
    best, best_it, best_y, evaluations = before, 0, y0, 1

    t0 = time.perf_counter()
    y = y0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([y], lr=options.lr)
    sga = SGARound(options.tau_start) if options.rounding == "sga" else None
    quantize: Quantizer = sga if sga is not None else ste_round
    pixels = size[0] * size[1]
    rng_devices = [x.device] if x.device.type == "cuda" else []
    done, stopped = 0, ""
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(options.seed)
        for it in range(1, options.iterations + 1):
            if sga is not None:
                sga.tau = _tau(options, it)
            bits, y_hat = model.rate_bits(y, quantize)
            loss = bits / pixels + lam * 255.0**2 * F.mse_loss(model.synthesis(y_hat, size), x)
            (grad,) = torch.autograd.grad(loss, [y])
            y.grad = grad
            optimizer.step()
            if not codable(y.detach()):  # diverged (non-finite or out of the coder's range): keep the best so far
                stopped = f"latent not codable after iteration {it} (non-finite or beyond ±{MAX_CODABLE:.0f})"
                break
            done = it
            if it % options.eval_every == 0 or it == options.iterations:
                candidate = coded_cost(model, y.detach(), image, lam)
                evaluations += 1
                if candidate.cost < best.cost:
                    best, best_it, best_y = candidate, it, y.detach().clone()
    elapsed = time.perf_counter() - t0
    return LOFResult(best.data, done, elapsed, before, best, best_it, evaluations, best_y, stopped)


class _FixedLatent(nn.Module):
    """Stands in for g_a so that a model's own ``compress()`` codes a given latent."""

    def __init__(self, y: Tensor):
        super().__init__()
        self.y = y

    def forward(self, x: Tensor) -> Tensor:
        return self.y


@contextmanager
def latent_as_analysis(net: nn.Module, y: Tensor) -> Iterator[None]:
    """Within the block, ``net.g_a`` returns ``y`` whatever its input: ``encode_latent`` runs the
    model's unchanged ``compress()``, so the bitstream is exactly what its decoder expects."""
    original = net.g_a
    net.g_a = _FixedLatent(y)
    try:
        yield
    finally:
        net.g_a = original
