"""Your own CompressAI-protocol model as a codec, by one TOML (``adapter = "compressai-model"``).

Any class with CompressAI's protocol — ``forward``, ``update()``, ``compress(x) -> {"strings",
"shape"}``, ``decompress(strings, shape) -> {"x_hat"}`` — named by import path, with its
constructor arguments and per-rate weights::

    adapter = "compressai-model"
    default_run = false
    [params]
    model = "mymodels.hyperprior:MyNet"    # package.module:ClassName (never evaluated)
    models_path = "models"                 # optional: a folder inside this file's folder
    pad = 64                               # the image is padded to a multiple of this (default 64)
    padding = "replicate"                  # or "reflect", "zeros" (right and bottom edges)
    update = true                          # call update(force=True) before coding (default)
    portable = false                       # true: decoder path in float64 (needs g_a)
    seed = 0                               # constructor seed (untrained rate points)
    [params.model_kwargs]                  # MyNet(N=128, M=192)
    N = 128
    M = 192
    [params.complexity_parts]              # optional: your top-level modules → complexity parts
    cc_transforms = "context"
    [[rates]]
    label = "lambda=0.0018"
    model_kwargs = { M = 192 }             # optional: per-rate arguments over [params.model_kwargs]
    weights = { path = "ckpt/q1.pth.tar", sha256 = "…", lambda = 0.0018, metric = "mse" }

Where the class is found and what importing it means: :mod:`bench.codecs.model_ref`. The model,
its weights (``weights_only``, ``state_dict``/``model`` nesting, ``module.`` prefix, key checks)
and the bitstream: :mod:`bench.models.user_model`. Timing, memory, complexity (kMAC/pixel per
part through :meth:`bench.models.compressai_net.CompressAINet.complexity_target`) and
cross-decoding come from :class:`bench.codecs.learned.LearnedCodec` and the runner as for every
learned codec. LOF (``lof_iterations`` > 0) runs where the model keeps one of CompressAI's entropy
structures (:func:`bench.models.compressai_net.lof_unavailable` says why not otherwise) and needs
each rate point's λ (``lambda``, or the weights' ``lambda``).
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.codecs.base import CodecConfig, Encoded, Param, RatePoint
from bench.codecs.learned import LOF_PARAMS, WEIGHTS_PARAM, LearnedCodec, decode_guard, lof_options
from bench.codecs.model_ref import config_models_folder, env_models_folders, import_model_class, parse_model_ref
from bench.errors import CodecError, CodecUnavailable
from bench.models.macs import PART_NAMES

#: Padding modes (the keys of :data:`bench.models.compressai_net.PAD_MODES`; torch is not imported here).
PADDINGS = ("replicate", "reflect", "zeros")
PARAMS = {"model": Param(str, required=True), "models_path": Param(str), "model_kwargs": Param(dict),
          "pad": Param(int, 1, 4096), "padding": Param(str, choices=PADDINGS), "update": Param(bool),
          "portable": Param(bool), "seed": Param(int, 0), "require_trained": Param(bool),
          "complexity_parts": Param(dict), **LOF_PARAMS}


def _kwargs(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict) or not all(isinstance(k, str) and k.isidentifier() for k in table):
        raise ValueError(f"{where}: model_kwargs must be a table of keyword arguments, got {table!r}")
    return dict(table)


def _validate(config: CodecConfig) -> list[Path]:
    """Check what loading a file cannot (model path, folders, arguments, parts, LOF's λ); the model
    folders to import from. ``ValueError`` naming the problem."""
    p, where = config.params, config.name
    unknown = set(p) - set(PARAMS)
    if unknown:
        raise ValueError(f"{where}: unknown parameter(s) {sorted(unknown)} (known: {sorted(PARAMS)})")
    if "model" not in p:
        raise ValueError(f"{where}: params.model is required ('package.module:ClassName')")
    parse_model_ref(p["model"], where)
    _kwargs(p.get("model_kwargs", {}), f"{where}: params")
    for point in config.rates:
        _kwargs(point.params.get("model_kwargs", {}), f"{where}: rate point {point.label!r}")
    for module, part in dict(p.get("complexity_parts", {})).items():
        if part not in PART_NAMES:
            raise ValueError(f"{where}: complexity_parts.{module} = {part!r} must be one of {', '.join(PART_NAMES)}")
    folders = [config_models_folder(p["models_path"], config.source, where)] if "models_path" in p else []
    return folders + [f for f in env_models_folders() if f not in folders]


def _lambda_missing(config: CodecConfig) -> list[str]:
    """Rate points without a λ (their own ``lambda`` or their weights')."""
    def lam(point: RatePoint) -> Any:
        weights = point.params.get("weights")
        return point.params.get("lambda") or (weights.get("lambda") if isinstance(weights, dict) else None)

    return [point.label for point in config.rates if not lam(point)]


def _check_class(cls: type, config: CodecConfig) -> str | None:
    """Why ``cls`` cannot serve ``config`` (not a module, no protocol, no LOF), or None."""
    from torch import nn

    from bench.models.compressai_net import lof_unavailable

    ref = config.params["model"]
    if not issubclass(cls, nn.Module):
        return f"{config.name}: {ref} is not a torch.nn.Module"
    absent = [m for m in ("compress", "decompress") if not callable(getattr(cls, m, None))]
    if config.params.get("update", True) and not callable(getattr(cls, "update", None)):
        absent.append("update (or set params.update = false)")
    if absent:
        return f"{config.name}: {ref} lacks CompressAI's {', '.join(absent)}"
    if int(config.params.get("lof_iterations", 0)) > 0:
        why = lof_unavailable(cls)
        if why:
            return f"{config.name}: LOF unavailable: {why}"
        if _lambda_missing(config):
            return (f"{config.name}: LOF needs λ at rate point(s) {', '.join(_lambda_missing(config))} "
                    "(give lambda, or weights.lambda)")
    return None


class CompressAIModelCodec(LearnedCodec):
    """A user's CompressAI-protocol model class, one network per rate point."""

    adapter = "compressai-model"
    rate_params = {**WEIGHTS_PARAM, "model_kwargs": Param(dict), "lambda": Param(float, 0, low_open=True)}
    fixed_params = PARAMS

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        folders = _validate(config)
        p = config.params
        self.ref = str(p["model"])
        try:
            self.model_class = import_model_class(self.ref, folders, config.name)
        except ImportError as exc:
            raise CodecUnavailable(str(exc)) from None
        reason = _check_class(self.model_class, config)
        if reason:
            raise CodecUnavailable(reason)
        self.seed = int(p.get("seed", 0))
        self.lof = lof_options(p, int(p.get("lof_iterations", 0)))
        untrained = [point.label for point, spec in zip(config.rates, self.weights) if spec is None]
        if untrained:
            self.warn_untrained(f"rate point(s) {', '.join(untrained)} of {self.ref} have no weights; "
                                f"the class's own initialisation with seed {self.seed}")

    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            folders = _validate(config)
        except ValueError as exc:
            return str(exc)
        reason = super().check_available(config)
        if reason:
            return reason
        if config.params.get("require_trained", False) and any("weights" not in p.params for p in config.rates):
            return f"{config.name}: require_trained is set but a rate point has no weights table"
        try:
            model_class = import_model_class(str(config.params["model"]), folders, config.name)
        except ImportError as exc:
            return str(exc)
        return _check_class(model_class, config)

    def library_version(self) -> str:
        import compressai
        import torch

        from bench.hashing import file_sha256

        module = sys.modules[self.model_class.__module__]
        where = getattr(module, "__file__", None)
        source = f"module sha256 {file_sha256(Path(where))[:16]}" if where else "module without a file"
        try:
            dist = importlib.metadata.distribution(self.model_class.__module__.split(".")[0])
            source += f", {dist.metadata['Name']} {dist.version}"
        except importlib.metadata.PackageNotFoundError:
            pass
        return f"{self.ref} ({source}); compressai {compressai.__version__}; torch {torch.__version__}"

    # --- models --------------------------------------------------------------------------------
    def model_kwargs(self, index: int) -> dict[str, Any]:
        """Constructor arguments of rate point ``index``: [params.model_kwargs], then its own."""
        return {**self.config.params.get("model_kwargs", {}), **self.config.rates[index].params.get("model_kwargs", {})}

    def _load(self, rate_index: int):
        from bench.models.user_model import build

        p = self.config.params
        path = self.weights_file(rate_index)
        return build(self.model_class, self.ref, self.model_kwargs(rate_index), path, self._sha256.get(rate_index),
                     self.seed, self.torch_device, rate_index, update=bool(p.get("update", True)),
                     pad=int(p.get("pad", 64)), padding=str(p.get("padding", "replicate")),
                     portable=bool(p.get("portable", False)), parts=dict(p.get("complexity_parts", {})))

    # --- coding --------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: RatePoint) -> Encoded:
        from bench.models.compressai_net import sequential_steps
        from bench.models.lof import overfit_latent

        x = self.to_tensor(image)
        index = self.rate_index(rate)
        model = self._model(index)
        pad = model.pad
        steps = sequential_steps(model.net, -(-image.shape[0] // pad) * pad, -(-image.shape[1] // pad) * pad)
        extras: dict[str, Any] = {"lof_iterations": self.lof.iterations, "trained": model.trained,
                                  **({"sequential_steps": steps} if steps else {})}
        if self.lof.iterations > 0:
            result = overfit_latent(model, image, float(self.rate_lambda(index)), self.lof)
            data, estimated = result.data, model.estimated_bits(result.latent)
            extras.update(result.extras())
        else:
            data, estimated = model.encode(x)
        if estimated is not None:
            extras["estimated_bits"] = estimated
        return Encoded(data, extras)

    def decode(self, data: bytes) -> np.ndarray:
        from bench.models.user_model import read

        fields, strings = read(data, self.name)
        self.rate_at(fields[2])  # in this ladder
        model = self._model(fields[2])
        self._last_model = model
        try:
            return self.to_uint8(model.decode_fields(fields, strings))
        except CodecError:
            raise
        except Exception as exc:
            raise decode_guard(self.name, exc) from exc
