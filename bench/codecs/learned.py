"""The one base of every PyTorch codec adapter: device, weights, model cache, input and output.

Adapters subclass :class:`LearnedCodec`, implement ``_load(rate_index)`` returning a model on
``self.torch_device`` (weights file from :meth:`LearnedCodec.weights_file`, or untrained), and
get it with :meth:`LearnedCodec._model`: loaded on first use, at most ``max_loaded`` kept (least
recently used evicted and released). torch is imported when a codec is created, not with this
module, so loading configurations stays fast.

* **Device**: any string torch accepts (``cpu``, ``cuda``, ``cuda:1``, ``mps`` …), checked with
  ``torch.device``; refused only when the device is not there.
* **Weights**: one description per rate point, a ``weights`` table (see
  :mod:`bench.models.weights`): checked on load (sha256), its sha256 reported per cell
  (:meth:`weights_sha256`). A rate point without one runs untrained (a warning, ``trained`` False).
"""

from __future__ import annotations

import abc
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bench.codecs.base import Codec, CodecConfig, Param, RatePoint
from bench.errors import CheckpointError, CodecError, CodecUnavailable

if TYPE_CHECKING:
    from bench.models.decodeparts import DecodeParts
    from bench.models.lof import LOFOptions
    from bench.models.weights import WeightsSpec

def hide_import_noise() -> None:
    """Hide the one warning importing compressai prints that is noise to our users: compressai 1.2.8
    imports torch_geometric when present, which calls the deprecated ``torch.jit.script`` at import
    (a ``FutureWarning`` naming neither us nor anything a user can change). Only that message is
    hidden; every learned adapter imports this module before compressai (workers included)."""
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning,
                            module=r"torch\.jit\._script")


hide_import_noise()

#: The rate-point parameter every learned adapter accepts (see :mod:`bench.models.weights`).
WEIGHTS_PARAM = {"weights": Param(dict)}
#: Encoder-side LOF settings (``lof_iterations`` 0 = off), for adapters whose models support it.
LOF_PARAMS = {"lof_iterations": Param(int, 0), "lof_lr": Param(float, 0, low_open=True),
              "lof_eval_every": Param(int, 1), "lof_rounding": Param(str, choices=("ste", "sga"))}


def weights_specs(config: CodecConfig) -> list[WeightsSpec | None]:
    """The weights description of each rate point (None: untrained); ``ValueError`` if malformed."""
    from bench.models.weights import WeightsSpec

    base = Path(config.source).parent if config.source else None
    return [WeightsSpec.parse(p.params["weights"], f"{config.name}: rate point {p.label!r}", base)
            if "weights" in p.params else None for p in config.rates]


def torch_device(name: str, device: str):
    """``torch.device(device)``; ``ValueError`` if torch does not know the string,
    :class:`CodecUnavailable` if the device is not present on this machine."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{name}: device {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= count:
            raise CodecUnavailable(f"{name}: device {device!r} requested but this machine has "
                                   f"{count} CUDA device(s)")
    try:
        torch.empty(0, device=dev)
    except Exception as exc:  # noqa: BLE001 — each backend raises its own type
        raise CodecUnavailable(f"{name}: device {device!r} is not usable here: {type(exc).__name__}: {exc}") from None
    return dev


def missing_weights(config: CodecConfig) -> str | None:
    """Why the declared weights of ``config`` cannot be loaded (malformed, absent), or None."""
    try:
        specs = weights_specs(config)
    except ValueError as exc:
        return str(exc)
    missing = []
    for spec in specs:
        if spec is None:
            continue
        try:
            path = spec.location()
        except CheckpointError as exc:
            return f"{config.name}: {exc}"
        if not path.is_file():
            missing.append(str(path))
    if not missing:
        return None
    fetchable = any(s is not None and s.url for s in specs)
    return (f"{config.name}: {len(missing)} of {len(config.rates)} weights files not found "
            f"({', '.join(missing[:3])}{' …' if len(missing) > 3 else ''})"
            + (f"; download them with `python -m bench.codecs.weights {config.name}`" if fetchable else ""))


class LearnedCodec(Codec):
    """A codec backed by PyTorch models, one per rate point."""

    #: Models kept in memory at once; the least recently used is released beyond this.
    max_loaded: ClassVar[int] = 2

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        if not config.rates:
            raise ValueError(f"{config.name}: the configuration has no rate points")
        self.torch_device = torch_device(config.name, self.device)
        self.weights = weights_specs(config)
        self.output_rounding = "round"
        self._models: OrderedDict[int, Any] = OrderedDict()
        self._sha256: dict[int, str] = {}
        self._warned = False

    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        """torch and compressai importable, the device present, declared weights on disk."""
        try:
            import compressai  # noqa: F401
            import torch  # noqa: F401
        except ImportError as exc:
            return f"{config.name}: needs torch and compressai: {exc}"
        if config.device != "auto":
            try:
                torch_device(config.name, config.device)
            except (ValueError, CodecUnavailable) as exc:
                return str(exc)
        return missing_weights(config)

    # --- rates ---------------------------------------------------------------------------------
    def rate_index(self, rate: RatePoint) -> int:
        """Position of ``rate`` in the configuration's ladder (written into bitstream headers)."""
        for i, point in enumerate(self.config.rates):
            if point.label == rate.label:
                return i
        known = ", ".join(p.label for p in self.config.rates)
        raise CodecError(f"{self.name}: unknown rate point {rate.label!r} (known: {known})")

    def rate_at(self, index: int) -> RatePoint:
        if not 0 <= index < len(self.config.rates):
            raise CodecError(f"{self.name}: bitstream names rate point #{index}, the ladder has {len(self.config.rates)}")
        return self.config.rates[index]

    def rate_lambda(self, index: int) -> float | None:
        """λ of a rate point: its ``lambda`` parameter, else its weights' λ."""
        lam = self.config.rates[index].params.get("lambda")
        spec = self.weights[index]
        return float(lam) if lam is not None else (spec.lam if spec is not None else None)

    # --- weights and models --------------------------------------------------------------------
    @property
    def trained(self) -> bool:
        return all(spec is not None for spec in self.weights)

    def weights_file(self, index: int) -> Path | None:
        """The checked weights file of rate point ``index`` (None: untrained); records its sha256."""
        from bench.models.weights import resolve

        spec = self.weights[index]
        if spec is None:
            return None
        path, sha = resolve(spec)
        self._sha256[index] = sha
        return path

    def weights_sha256(self, rate: RatePoint) -> str | None:
        """sha256 of the weights file used for ``rate`` (None: untrained or not loaded yet)."""
        return self._sha256.get(self.rate_index(rate))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["weights"] = {p.label: (s.describe() if s else "untrained") for p, s in zip(self.config.rates, self.weights)}
        return info

    @abc.abstractmethod
    def _load(self, rate_index: int) -> Any:
        """Build the model of one rate point, on ``self.torch_device``."""

    def _model(self, rate_index: int) -> Any:
        """The model of a rate point: loaded on first use, least recently used released."""
        if rate_index in self._models:
            self._models.move_to_end(rate_index)
            return self._models[rate_index]
        model = self._load(rate_index)
        self._models[rate_index] = model
        while len(self._models) > self.max_loaded:
            _, evicted = self._models.popitem(last=False)
            self._release(evicted)
        return model

    def _release(self, model: Any) -> None:
        close = getattr(model, "close", None)
        if callable(close):
            close()
        del model
        if self.torch_device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def complexity(self, rate: RatePoint, height: int, width: int) -> Any:
        """Counted multiply-adds per part on a ``height``×``width`` image: the model's own
        ``complexity_target`` says what to count (:func:`bench.models.macs.model_complexity`)."""
        from bench.models.macs import model_complexity

        return model_complexity(self.memory_model(rate), height, width)

    def decode_parts(self, rate: RatePoint) -> DecodeParts | None:
        """Which modules and calls of ``rate``'s model form which part of a decode (g_s, h_s,
        context, entropy coding; :mod:`bench.models.decodeparts`), as the model says itself through
        its public ``decode_parts()``; None when it does not split its decode."""
        own = getattr(self.memory_model(rate), "decode_parts", None)
        return own() if callable(own) else None

    def memory_model(self, rate: RatePoint) -> Any:
        """The loaded model of ``rate`` (loaded on first use)."""
        return self._model(self.rate_index(rate))

    @property
    def last_decode_times(self) -> dict[str, float]:
        """The split of the last ``decode`` its model reported (e.g. entropy decoding vs synthesis
        g_s); empty when the model reports none. A decoder sets ``self._last_model``."""
        model = getattr(self, "_last_model", None)
        return dict(getattr(model, "last_decode_times", {}) or {})

    def warn_untrained(self, why: str) -> None:
        """Warn once that numbers from this codec are valid for complexity only."""
        if not self._warned:
            warnings.warn(
                f"{self.name}: UNTRAINED weights ({why}); its rate-distortion numbers are "
                "meaningless, use it for complexity (time, memory, steps) only",
                stacklevel=3,
            )
            self._warned = True

    # --- input and output ------------------------------------------------------------------------
    def to_tensor(self, image: np.ndarray):
        """H×W×3 uint8 → 1×3×H×W float in [0, 1] on the device; ``CodecError`` for other input."""
        from bench.models.imageio import check_image, to_tensor

        try:
            check_image(image)
        except ValueError as exc:
            raise CodecError(f"{self.name}: {exc}") from None
        return to_tensor(image, self.torch_device)

    def to_uint8(self, x_hat) -> np.ndarray:
        """1×3×H×W float → H×W×3 uint8: clamp to [0, 1], ×255, round (or floor, ``output_rounding``)."""
        import torch

        v = x_hat.detach()[0].clamp(0, 1).mul(255)
        v = v.round() if self.output_rounding == "round" else v.floor()
        return v.to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()

    # --- device --------------------------------------------------------------------------------
    def synchronize(self) -> None:
        if self.torch_device.type != "cpu":
            import torch

            backend = getattr(torch, self.torch_device.type, None)
            sync = getattr(backend, "synchronize", None)
            if self.torch_device.type == "cuda":
                torch.cuda.synchronize(self.torch_device)
            elif sync is not None:
                sync()

    def close(self) -> None:
        while self._models:
            _, model = self._models.popitem(last=False)
            self._release(model)


def lof_options(params: dict[str, Any], iterations: int, defaults: LOFOptions | None = None) -> LOFOptions:
    """LOF options from ``lof_*`` configuration parameters."""
    from bench.models.lof import LOFOptions

    base = defaults or LOFOptions(iterations)
    return LOFOptions(
        iterations=int(iterations),
        lr=float(params.get("lof_lr", base.lr)),
        eval_every=int(params.get("lof_eval_every", base.eval_every)),
        rounding=str(params.get("lof_rounding", base.rounding)),
        seed=base.seed if params.get("seed") is None else int(params["seed"]),
    ).validate()


def decode_guard(name: str, exc: Exception) -> CodecError:
    """Wrap an unexpected decoder exception into a :class:`CodecError` that says where it came from."""
    return CodecError(f"{name}: decoding failed: {type(exc).__name__}: {exc}")
