"""What happens to the latent at each MSP step: the model walks the coding plan once and hands
every step to a *step coder*, so training, encoding and decoding share one traversal and build
bit-identical contexts.

* :class:`LikelihoodCoder` — training/LOF: quantise with a given quantiser, record likelihoods.
* :class:`EncoderCoder` — real rANS encoding with CompressAI's entropy models; ŷ comes from the
  coded symbols exactly as the decoder will rebuild it.
* :class:`DecoderCoder` — real rANS decoding of one string per step, timing every step.

Gaussian steps code all their parts (e.g. R and B) flattened into one string:
symbol = round(y − μ), ŷ = symbol + μ; scales index CompressAI's 64-level scale table.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import Tensor

from bench.errors import CodecError
from bench.models.entropy import check_codable, eb_medians, factorized_likelihood, gaussian_likelihood
from bench.models.msp.plan import Step
from bench.models.quantizers import Quantizer


def _flatten(parts: list[Tensor]) -> Tensor:
    return torch.cat([p.reshape(1, -1) for p in parts], dim=1)


def _unflatten(flat: Tensor, like: list[tuple[int, ...]]) -> list[Tensor]:
    out, start = [], 0
    for shape in like:
        n = 1
        for d in shape:
            n *= d
        out.append(flat[:, start : start + n].reshape(shape))
        start += n
    return out


class LikelihoodCoder:
    """Quantise with ``quantize``; likelihoods of ŷ (``noisy=False``) or of y + U(−½, ½)."""

    def __init__(self, eb: EntropyBottleneck, gc: GaussianConditional, quantize: Quantizer, noisy: bool):
        self.eb, self.gc, self.quantize, self.noisy = eb, gc, quantize, noisy
        self.likelihoods: list[Tensor] = []

    def start_step(self) -> None:
        """Nothing to time here."""

    def factorized(self, step: Step, y: Tensor, shape: tuple[int, ...]) -> Tensor:
        y_hat = self.quantize(y, eb_medians(self.eb).to(y))
        if self.noisy:
            _, lik = self.eb(y, training=True)
        else:
            lik = factorized_likelihood(self.eb, y_hat)
        self.likelihoods.append(lik)
        return y_hat

    def gaussian(self, step: Step, ys: list[Tensor], mus: list[Tensor], sigmas: list[Tensor]) -> list[Tensor]:
        out = []
        for y, mu, sigma in zip(ys, mus, sigmas):
            y_hat = self.quantize(y, mu)
            if self.noisy:
                _, lik = self.gc(y, sigma, means=mu, training=True)
            else:
                lik = gaussian_likelihood(self.gc, y_hat, sigma, mu)
            self.likelihoods.append(lik)
            out.append(y_hat)
        return out


class EncoderCoder:
    """Entropy-code each step into one rANS string; also counts symbols and ideal bits."""

    def __init__(self, eb: EntropyBottleneck, gc: GaussianConditional):
        self.eb, self.gc = eb, gc
        self.strings: list[bytes] = []
        self.symbols = 0
        self.nonzero = 0
        self.estimated_bits = 0.0

    def start_step(self) -> None:
        """Nothing to time here."""

    def _count(self, symbols: Tensor, likelihood: Tensor) -> None:
        self.symbols += symbols.numel()
        self.nonzero += int((symbols != 0).sum())
        self.estimated_bits += float(-torch.log2(likelihood).sum()) if likelihood.numel() else 0.0

    def factorized(self, step: Step, y: Tensor, shape: tuple[int, ...]) -> Tensor:
        if y.numel() == 0:
            self.strings.append(b"")
            return y.new_zeros(shape)
        check_codable(y, "MSP: coarsest latent")
        strings = self.eb.compress(y)
        y_hat = self.eb.decompress(strings, y.shape[-2:])
        self.strings.append(strings[0])
        self._count(torch.round(y_hat - eb_medians(self.eb).to(y)), factorized_likelihood(self.eb, y_hat))
        return y_hat

    def gaussian(self, step: Step, ys: list[Tensor], mus: list[Tensor], sigmas: list[Tensor]) -> list[Tensor]:
        y, mu, sigma = _flatten(ys), _flatten(mus), _flatten(sigmas)
        if y.numel() == 0:
            self.strings.append(b"")
            return [t.new_zeros(t.shape) for t in ys]
        indexes = self.gc.build_indexes(sigma)
        symbols = self.gc.quantize(y, "symbols", mu)
        check_codable(symbols, f"MSP: latent of level {step.level}, group {step.group}")
        self.strings.append(self.gc.compress(y, indexes, means=mu)[0])
        y_hat = self.gc.dequantize(symbols, mu)
        self._count(symbols, gaussian_likelihood(self.gc, y_hat, sigma, mu))
        return _unflatten(y_hat, [tuple(t.shape) for t in ys])


class DecoderCoder:
    """Decode one string per step; ``step_times`` holds (step name, seconds) in order."""

    def __init__(
        self,
        eb: EntropyBottleneck,
        gc: GaussianConditional,
        strings: list[bytes],
        sync: Callable[[], None] = lambda: None,
    ):
        self.eb, self.gc, self.strings, self.sync = eb, gc, list(strings), sync
        self.index = 0
        self.step_times: list[tuple[str, float]] = []
        self._t0 = time.perf_counter()

    def start_step(self) -> None:
        """Mark the start of a step (its context net and entropy decoding are timed together)."""
        self.sync()
        self._t0 = time.perf_counter()

    def _finish(self, step: Step) -> None:
        self.sync()
        self.step_times.append((step.name, time.perf_counter() - self._t0))

    def _next(self, step: Step, empty: bool) -> bytes:
        if self.index >= len(self.strings):
            raise CodecError(f"MSP: bitstream has {len(self.strings)} strings, step {step.name} needs more")
        s = self.strings[self.index]
        self.index += 1
        if empty and s:
            raise CodecError(f"MSP: step {step.name} codes no elements but its string has {len(s)} bytes")
        return s

    def factorized(self, step: Step, y: None, shape: tuple[int, ...]) -> Tensor:
        empty = any(d == 0 for d in shape)
        s = self._next(step, empty)
        if empty:
            out = torch.zeros(shape, device=self.eb.quantiles.device)
        else:
            out = self.eb.decompress([s], shape[-2:])
        self._finish(step)
        return out

    def gaussian(self, step: Step, ys: None, mus: list[Tensor], sigmas: list[Tensor]) -> list[Tensor]:
        mu, sigma = _flatten(mus), _flatten(sigmas)
        s = self._next(step, mu.numel() == 0)
        if mu.numel() == 0:
            out = [m.new_zeros(m.shape) for m in mus]
        else:
            indexes = self.gc.build_indexes(sigma)
            y_hat = self.gc.decompress([s], indexes, means=mu)
            out = _unflatten(y_hat, [tuple(m.shape) for m in mus])
        self._finish(step)
        return out
