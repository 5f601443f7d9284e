"""CompressAI zoo models as codecs (``adapter = "compressai"``).

Any architecture of :data:`bench.models.zoo.ARCHITECTURES` at qualities 1..8 (cheng2020: 1..6),
with real bytes from CompressAI's ``compress()`` in a checked container (see
:mod:`bench.models.zoo`). ``mbt2018`` (serial autoregressive context model, one decoding step per
latent position) is the suite's O(n) reference for sequential decoding.

Configuration (``codecs/<name>.toml``)::

    adapter = "compressai"
    [params]
    architecture = "mbt2018"
    metric = "mse"              # or "ms-ssim"
    seed = 0                    # untrained mode: seed + quality
    require_trained = false     # true: unavailable instead of untrained when weights are missing
    lof_iterations = 0          # > 0: latent overfitting at the encoder (MSE models only)
    lof_lr = 1e-3
    lof_eval_every = 50
    lof_rounding = "ste"        # or "sga"
    N = 64                      # optional: width / latent channels of a compact model (training,
    M = 96                      #   untrained init); trained weights carry their own shapes
    portable = true             # float64 decoder path: same image at any thread count / device
    [[rates]]
    label = "quality=1"
    quality = 1
    weights = { url = "https://compressai.s3.amazonaws.com/models/v1/mbt2018-1-3f36cd77.pth.tar",
                sha256 = "3f36cd77", lambda = 0.0018, metric = "mse", licence = "…", source = "…" }

Weights (:mod:`bench.models.weights`) are looked for on disk only — a ``url``'s file in the
weights folder (``$BENCH_WEIGHTS_DIR`` or the torch hub cache, where CompressAI downloads them);
``python -m bench.codecs.weights NAME`` downloads and checks them. Weights missing → untrained
(random init, fixed seed, scaled last layers), ``trained`` False and a warning: valid for
complexity measurements only (unless ``require_trained``: then the codec is unavailable).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.codecs.base import CodecConfig, Encoded, Param, RatePoint
from bench.codecs.learned import LOF_PARAMS, WEIGHTS_PARAM, LearnedCodec, decode_guard, lof_options
from bench.errors import CodecError

#: The ``[params]`` this adapter accepts (checked when a configuration is loaded, and by ``_validate``).
PARAMS = {"architecture": Param(str, required=True), "metric": Param(str, choices=("mse", "ms-ssim")),
          "seed": Param(int, 0), "require_trained": Param(bool), **LOF_PARAMS,
          "N": Param(int, 8), "M": Param(int, 8),
          "portable": Param(bool)}


def _qualities(config: CodecConfig) -> list[int]:
    out = []
    for point in config.rates:
        if "quality" not in point.params:
            raise ValueError(f"{config.name}: rate point {point.label!r} has no 'quality'")
        out.append(int(point.params["quality"]))
    return out


def _validate(config: CodecConfig) -> None:
    from bench.models.zoo import check_architecture

    p = config.params
    unknown = set(p) - set(PARAMS)
    if unknown:
        raise ValueError(f"{config.name}: unknown parameter(s) {sorted(unknown)} (known: {sorted(PARAMS)})")
    if "architecture" not in p:
        raise ValueError(f"{config.name}: params.architecture is required")
    for q in _qualities(config):
        check_architecture(str(p["architecture"]), str(p.get("metric", "mse")), q)
    if ("N" in p) != ("M" in p):
        raise ValueError(f"{config.name}: give both params.N and params.M (a compact model's width) or neither")
    if int(p.get("lof_iterations", 0)) > 0 and p.get("metric", "mse") != "mse":
        raise ValueError(f"{config.name}: LOF is implemented for MSE models only")


class CompressAIZooCodec(LearnedCodec):
    """A CompressAI zoo architecture, one model per quality."""

    adapter = "compressai"
    rate_params = {"quality": Param(int, 1, 8, required=True), **WEIGHTS_PARAM}  # cheng2020: 1..6
    fixed_params = PARAMS

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        _validate(config)
        p = config.params
        self.architecture = str(p["architecture"])
        self.metric = str(p.get("metric", "mse"))
        self.seed = int(p.get("seed", 0))
        self.lof = lof_options(p, int(p.get("lof_iterations", 0)))
        self.qualities = _qualities(config)
        absent = [i for i, spec in enumerate(self.weights) if spec is None or not spec.location().is_file()]
        if absent:
            self.weights = [None if i in absent else spec for i, spec in enumerate(self.weights)]
            self.warn_untrained(
                f"no local weights for {self.architecture}/{self.metric} at qualities "
                f"{[self.qualities[i] for i in absent]} (download them with `python -m bench.codecs.weights "
                f"{config.name}`); random init with seed {self.seed}"
            )

    # --- description -------------------------------------------------------------------------
    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            _validate(config)
        except (ImportError, ValueError) as exc:
            return f"{config.name}: {exc}"
        reason = super().check_available(config)
        if reason and "not found" in reason:  # absent weights: untrained, unless they are required
            if not config.params.get("require_trained", False):
                return None
            return f"{reason} (require_trained is set)"
        if reason is None and config.params.get("require_trained", False) and any(
                "weights" not in p.params for p in config.rates):
            return f"{config.name}: require_trained is set but a rate point has no weights table"
        return reason

    def library_version(self) -> str:
        import compressai
        import torch

        return f"compressai {compressai.__version__} ({self.architecture}, {self.metric}); torch {torch.__version__}"

    def sequential_steps(self, height: int, width: int) -> int:
        """Sequential entropy-decoding steps for an image: grows with size for serial contexts."""
        from compressai.models import FactorizedPrior, JointAutoregressiveHierarchicalPriors
        from compressai.zoo.image import model_architectures

        cls = model_architectures[self.architecture]
        if issubclass(cls, FactorizedPrior):
            return 1
        if issubclass(cls, JointAutoregressiveHierarchicalPriors):
            return 1 + (-(-height // 64) * 4) * (-(-width // 64) * 4)  # z, then each y position
        return 2

    # --- models --------------------------------------------------------------------------------
    def untrained_network(self, seed: int | None = None):
        """A fresh float32 CompressAI network of this architecture in training form, seeded; its
        width is ``params.N``/``params.M`` (compact models) or the zoo's at the first quality."""
        import torch
        from compressai.zoo.image import cfgs, model_architectures

        N, M = self._shape() or cfgs[self.architecture][self.qualities[0]][:2]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed if seed is None else seed)
            return model_architectures[self.architecture](N, M)

    def _load(self, rate_index: int):
        from bench.models.zoo import load_model

        return load_model(self.architecture, self.qualities[rate_index], self.metric,
                          self.weights_file(rate_index), self.seed, self.torch_device,
                          portable=bool(self.config.params.get("portable", True)), shape=self._shape())

    def _shape(self) -> tuple[int, int] | None:
        """(N, M) of ``params`` for compact models (both or neither), else None: the zoo's."""
        p = self.config.params
        return (int(p["N"]), int(p["M"])) if "N" in p and "M" in p else None

    # --- coding --------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: RatePoint) -> Encoded:
        import torch

        from bench.models.lof import overfit_latent
        from bench.models.quantizers import hard_round

        x = self.to_tensor(image)
        index = self.rate_index(rate)
        model = self._model(index)
        size = (image.shape[0], image.shape[1])
        extras: dict[str, Any] = {
            "sequential_steps": self.sequential_steps(*size),
            "lof_iterations": self.lof.iterations,
            "trained": model.trained,
        }
        if self.lof.iterations > 0:
            lam = self.rate_lambda(index) or model.lam
            result = overfit_latent(model, image, lam, self.lof)
            data, y = result.data, result.latent
            extras.update(result.extras())
        else:
            with torch.no_grad():
                y = model.analysis(x)
                data = model.encode_latent(y, size)
        with torch.no_grad():
            extras["estimated_bits"] = float(model.rate_bits(y, hard_round)[0])
        return Encoded(data, extras)

    def decode(self, data: bytes) -> np.ndarray:
        from bench.models.zoo import read_header

        fields, _ = read_header(data)
        quality = fields[2]
        if quality not in self.qualities:
            raise CodecError(f"{self.name}: bitstream is quality {quality}, not in this ladder {self.qualities}")
        model = self._model(self.qualities.index(quality))
        self._last_model = model
        try:
            return self.to_uint8(model.decode_image(data))
        except CodecError:
            raise
        except Exception as exc:
            raise decode_guard(self.name, exc) from exc
