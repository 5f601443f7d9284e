"""Shared plumbing of PyTorch codec adapters: device checks, per-rate model cache, LOF options.

Adapters subclass :class:`LearnedCodec`, implement ``_load(rate_index)`` returning a model, and
use :meth:`_model` to get it (loaded once, kept for the adapter's life). torch is imported when
a codec is created, not with this module, so loading configurations stays fast.
"""

from __future__ import annotations

import abc
import warnings
from typing import TYPE_CHECKING, Any

from bench.codecs.base import Codec, CodecConfig, RatePoint
from bench.errors import CodecError, CodecUnavailable

if TYPE_CHECKING:
    from bench.models.lof import LOFOptions


class LearnedCodec(Codec):
    """A codec backed by PyTorch models, one per rate point."""

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        import torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise CodecUnavailable(f"{config.name}: device {self.device!r} requested but CUDA is not available")
        if not config.rates:
            raise ValueError(f"{config.name}: the configuration has no rate points")
        self._models: dict[int, Any] = {}
        self._warned = False

    # --- rates ---------------------------------------------------------------------------------
    def rate_index(self, rate: RatePoint) -> int:
        """Position of ``rate`` in the configuration's ladder (written into bitstream headers)."""
        for i, point in enumerate(self.config.rates):
            if point.label == rate.label:
                return i
        known = ", ".join(p.label for p in self.config.rates)
        raise KeyError(f"{self.name}: unknown rate point {rate.label!r} (known: {known})")

    def rate_at(self, index: int) -> RatePoint:
        if not 0 <= index < len(self.config.rates):
            raise CodecError(f"{self.name}: bitstream names rate index {index}, the ladder has {len(self.config.rates)}")
        return self.config.rates[index]

    # --- models --------------------------------------------------------------------------------
    @abc.abstractmethod
    def _load(self, rate_index: int) -> Any:
        """Build the model of one rate point, on ``self.device``."""

    def _model(self, rate_index: int) -> Any:
        if rate_index not in self._models:
            self._models[rate_index] = self._load(rate_index)
        return self._models[rate_index]

    def complexity(self, rate: RatePoint, height: int, width: int) -> Any:
        """Counted multiply-adds per part on a ``height``×``width`` image (:mod:`bench.complexity`)."""
        from bench.complexity import model_complexity

        return model_complexity(self._model(self.rate_index(rate)), height, width)

    def warn_untrained(self, why: str) -> None:
        """Warn once that numbers from this codec are valid for complexity only."""
        if not self._warned:
            warnings.warn(
                f"{self.name}: UNTRAINED weights ({why}); its rate-distortion numbers are "
                "meaningless, use it for complexity (time, memory, steps) only",
                stacklevel=3,
            )
            self._warned = True

    # --- device --------------------------------------------------------------------------------
    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def close(self) -> None:
        self._models.clear()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def lof_options(params: dict[str, Any], iterations: int, defaults: LOFOptions | None = None) -> LOFOptions:
    """LOF options from ``lof_*`` configuration parameters."""
    from bench.models.lof import LOFOptions

    base = defaults or LOFOptions(iterations)
    return LOFOptions(
        iterations=int(iterations),
        lr=float(params.get("lof_lr", base.lr)),
        eval_every=int(params.get("lof_eval_every", base.eval_every)),
        rounding=str(params.get("lof_rounding", base.rounding)),
        seed=int(params.get("seed", base.seed)),
    ).validate()


def decode_guard(name: str, exc: Exception) -> CodecError:
    """Wrap an unexpected decoder exception into a :class:`CodecError` that says where it came from."""
    return CodecError(f"{name}: decoding failed: {type(exc).__name__}: {exc}")
