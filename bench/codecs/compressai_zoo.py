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
    checkpoint_dir = "~/w"      # optional; else the torch hub cache. Never downloads.
    seed = 0                    # untrained mode: seed + quality
    require_trained = false     # true: unavailable instead of untrained when weights are missing
    lof_iterations = 0          # > 0: latent overfitting at the encoder (MSE models only)
    lof_lr = 1e-3
    lof_eval_every = 50
    lof_rounding = "ste"        # or "sga"
    portable = true             # float64 decoder path: same image at any thread count / device
    [ladder]
    param = "quality"
    values = [1, 2, 3, 4, 5, 6, 7, 8]

Weights missing → untrained (random init, fixed seed, scaled last layers), ``trained`` False and
a warning: valid for complexity measurements only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.codecs.base import CodecConfig, Encoded, Param, RatePoint
from bench.errors import CodecError
from bench.codecs.learned import LearnedCodec, decode_guard, lof_options

#: The ``[params]`` this adapter accepts (checked when a configuration is loaded, and by ``_validate``).
PARAMS = {"architecture": Param(str, required=True), "metric": Param(str, choices=("mse", "ms-ssim")),
          "checkpoint_dir": Param(str), "seed": Param(int, 0), "require_trained": Param(bool),
          "lof_iterations": Param(int, 0), "lof_lr": Param(float, 0, low_open=True),
          "lof_eval_every": Param(int, 1), "lof_rounding": Param(str, choices=("ste", "sga")),
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
    if int(p.get("lof_iterations", 0)) > 0 and p.get("metric", "mse") != "mse":
        raise ValueError(f"{config.name}: LOF is implemented for MSE models only")


class CompressAIZooCodec(LearnedCodec):
    """A CompressAI zoo architecture, one model per quality."""

    adapter = "compressai"
    rate_params = {"quality": Param(int, 1, 8, required=True)}  # CompressAI zoo qualities (cheng2020: 1..6)
    fixed_params = PARAMS

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        _validate(config)
        p = config.params
        self.architecture = str(p["architecture"])
        self.metric = str(p.get("metric", "mse"))
        self.checkpoint_dir = p.get("checkpoint_dir")
        self.seed = int(p.get("seed", 0))
        self.require_trained = bool(p.get("require_trained", False))
        self.lof = lof_options(p, int(p.get("lof_iterations", 0)))
        self.qualities = _qualities(config)
        self.weights = {q: self._find(q) for q in self.qualities}
        missing = [q for q, w in self.weights.items() if w is None]
        if missing:
            self.warn_untrained(
                f"no local weights for {self.architecture}/{self.metric} at qualities {missing} "
                f"(checkpoint_dir={self.checkpoint_dir!r}, torch hub cache); random init with seed {self.seed}"
            )

    def _find(self, quality: int) -> Path | None:
        from bench.models.zoo import find_weights

        return find_weights(self.architecture, self.metric, quality, self.checkpoint_dir)

    # --- description -------------------------------------------------------------------------
    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            import compressai  # noqa: F401
            import torch  # noqa: F401

            _validate(config)
            from bench.models.zoo import find_weights, weights_file_name
        except (ImportError, ValueError) as exc:
            return f"{config.name}: {exc}"
        if config.params.get("require_trained", False):
            arch, metric = config.params["architecture"], config.params.get("metric", "mse")
            for q in _qualities(config):
                if find_weights(arch, metric, q, config.params.get("checkpoint_dir")) is None:
                    return (
                        f"{config.name}: require_trained is set but {weights_file_name(arch, metric, q)} "
                        "is in neither checkpoint_dir nor the torch hub cache (no download is attempted)"
                    )
        return None

    def library_version(self) -> str:
        import compressai
        import torch

        return f"compressai {compressai.__version__} ({self.architecture}, {self.metric}); torch {torch.__version__}"

    @property
    def trained(self) -> bool:
        return all(w is not None for w in self.weights.values())

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["weights"] = {
            str(q): (str(w) if w else f"untrained (seed {self.seed + q})") for q, w in self.weights.items()
        }
        return info

    @property
    def last_decode_times(self) -> dict[str, float]:
        """Entropy decoding (everything but g_s) vs synthesis g_s time of the last ``decode``."""
        model = getattr(self, "_last_model", None)
        return dict(model.last_decode_times) if model else {}

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
    def _load(self, rate_index: int):
        from bench.models.zoo import load_model

        quality = self.qualities[rate_index]
        return load_model(
            self.architecture, quality, self.metric, self.checkpoint_dir, self.seed, self.device,
            allow_untrained=not self.require_trained, portable=bool(self.config.params.get("portable", True)),
        )

    # --- coding --------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: RatePoint) -> Encoded:
        import torch

        from bench.models.imageio import check_image, to_tensor
        from bench.models.lof import overfit_latent
        from bench.models.quantizers import hard_round

        check_image(image)
        model = self._model(self.rate_index(rate))
        size = (image.shape[0], image.shape[1])
        extras: dict[str, Any] = {
            "sequential_steps": self.sequential_steps(*size),
            "lof_iterations": self.lof.iterations,
            "trained": model.trained,
        }
        if self.lof.iterations > 0:
            result = overfit_latent(model, image, model.lam, self.lof)
            data, y = result.data, result.latent
            extras.update(result.extras())
        else:
            with torch.no_grad():
                y = model.analysis(to_tensor(image, self.device))
                data = model.encode_latent(y, size)
        with torch.no_grad():
            extras["estimated_bits"] = float(model.rate_bits(y, hard_round)[0])
        return Encoded(data, extras)

    def decode(self, data: bytes) -> np.ndarray:
        from bench.models.imageio import to_uint8
        from bench.models.zoo import read_header

        fields, _ = read_header(data)
        quality = fields[2]
        if quality not in self.qualities:
            raise CodecError(f"{self.name}: bitstream is quality {quality}, not in this ladder {self.qualities}")
        model = self._model(self.qualities.index(quality))
        self._last_model = model
        try:
            return to_uint8(model.decode_image(data))
        except CodecError:
            raise
        except Exception as exc:
            raise decode_guard(self.name, exc) from exc
