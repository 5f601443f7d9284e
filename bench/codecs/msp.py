"""MSP+LOF codec adapter (``adapter = "msp"``) — a lic-bench re-implementation.

Runs :mod:`bench.models.msp` (multi-scale progressive probability model, constant sequential
decoding steps) with optional encoder-side latent overfitting (:mod:`bench.models.lof`) after
Zhang et al., arXiv 2210.04112. Not the authors' code (none is public).

Configuration (``codecs/msp-*.toml``)::

    adapter = "msp"
    [params]
    profile = "msp-base"        # built-in profile (bench.models.msp.profiles); fields may be overridden
    seed = 0                    # untrained mode: seed of the random init (seed + rate index)
    require_trained = false     # true: unavailable unless every rate point has weights
    portable = true             # float64 decoder path: same image at any thread count / device
    [ladder]
    param = "lambda"            # every rate point needs a λ (LOF's trade-off)
    values = [0.0018, …]
    # trained: [[rates]] instead of [ladder], one weights table each (bench.models.weights)
    # [[rates]]
    # lambda = 0.0018
    # weights = { path = "~/msp/msp-base-0.0018.pth", sha256 = "…", lambda = 0.0018, … }

Without weights the codec runs untrained (``trained`` is False, a warning is raised): valid
for complexity measurements only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.codecs.base import CodecConfig, Encoded, Param, RatePoint
from bench.codecs.learned import WEIGHTS_PARAM, LearnedCodec, decode_guard
from bench.errors import CodecError


class MSPCodec(LearnedCodec):
    """The MSP(+LOF) re-implementation as a benchmark codec."""

    adapter = "msp"
    rate_params = {"lambda": Param(float, 0, low_open=True, required=True), **WEIGHTS_PARAM}
    # profile fields with the ranges of MSPProfile.validate, plus the adapter's own keys
    fixed_params = {
        "profile": Param(str, required=True), "levels": Param(int, 1, 6), "steps_per_level": Param(int, choices=(2, 3)),
        "groups": Param(int, 1, 8), "N": Param(int, 8), "M": Param(int, 1), "context_width": Param(int, 1),
        "feature_channels": Param(int, 1), "transform": Param(str, choices=("elic", "gdn")), "lof_iterations": Param(int, 0), "lof_lr": Param(float, 0, low_open=True),
        "lof_eval_every": Param(int, 1), "lof_rounding": Param(str, choices=("ste", "sga")), "seed": Param(int, 0),
        "require_trained": Param(bool), "lambdas": Param(list),
        "portable": Param(bool),
    }

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        from bench.models.msp import profile_from_params

        self.profile = profile_from_params(config.params)
        self.seed = int(config.params.get("seed", 0))
        for point in config.rates:
            if "lambda" not in point.params:
                raise ValueError(f"{config.name}: rate point {point.label!r} has no 'lambda'")
        from bench.models.lof import LOFOptions

        p = self.profile
        self.lof = LOFOptions(
            p.lof_iterations, lr=p.lof_lr, eval_every=p.lof_eval_every, rounding=p.lof_rounding, seed=self.seed
        ).validate()
        self._last_model: Any = None
        if not any(self.weights):
            self.warn_untrained(f"no weights; random init with seed {self.seed}")
        elif not self.trained:
            self.warn_untrained(f"no weights for some rate points; random init with seed {self.seed} there")

    # --- description -------------------------------------------------------------------------
    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            from bench.models.msp import profile_from_params

            profile_from_params(config.params)
        except (ImportError, KeyError, ValueError) as exc:
            return f"{config.name}: {exc.args[0] if exc.args else exc}"
        if config.params.get("require_trained", False) and any("weights" not in p.params for p in config.rates):
            return f"{config.name}: require_trained is set but a rate point has no weights table"
        return super().check_available(config)

    def library_version(self) -> str:
        import compressai
        import torch

        return (
            f"lic-bench MSP re-implementation v1 ({self.profile.name}); "
            f"torch {torch.__version__}, compressai {compressai.__version__}"
        )

    @property
    def sequential_steps(self) -> int:
        """Sequential entropy-decoding steps of this profile, for every image size."""
        return self.profile.sequential_steps

    @property
    def last_decode_step_times(self) -> list[tuple[str, float]]:
        """(step, seconds) of the last ``decode``, in decoding order."""
        return list(self._last_model.last_decode_step_times) if self._last_model else []

    @property
    def last_decode_times(self) -> dict[str, float]:
        """Entropy-decoding vs synthesis time of the last ``decode``."""
        return dict(self._last_model.last_decode_times) if self._last_model else {}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["profile"] = {**vars(self.profile), "sequential_steps": self.sequential_steps}
        info["reimplementation"] = "lic-bench re-implementation of MSP+LOF (arXiv 2210.04112), not the authors' code"
        return info

    # --- models --------------------------------------------------------------------------------
    def untrained_network(self, seed: int | None = None):
        """A fresh float32 :class:`~bench.models.msp.MSPModel` of this profile in training form
        (``forward`` → x̂ and likelihoods), seeded; what :mod:`bench.training` trains."""
        import torch

        from bench.models.msp import MSPModel

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed if seed is None else seed)
            return MSPModel(self.profile)

    def _load(self, rate_index: int):
        from bench.models.msp import create_model

        model = create_model(self.profile, self.weights_file(rate_index), seed=self.seed + rate_index,
                             device=self.torch_device)
        model.rate_index = rate_index
        return model.make_portable() if self.config.params.get("portable", True) else model

    # --- coding --------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: RatePoint) -> Encoded:
        import torch

        from bench.models.lof import overfit_latent

        x = self.to_tensor(image)
        index = self.rate_index(rate)
        model = self._model(index)
        size = (image.shape[0], image.shape[1])
        extras: dict[str, Any] = {"sequential_steps": model.sequential_steps, "lof_iterations": self.lof.iterations}
        if self.lof.iterations > 0:
            result = overfit_latent(model, image, float(rate.params["lambda"]), self.lof)
            data = result.data
            extras.update(result.extras())
            extras["estimated_bits"] = model.estimate_bits(result.latent)
        else:
            with torch.no_grad():
                data, _ = model.compress_latent(model.analysis(x), size, index)
            stats = model.last_encode_stats
            extras["estimated_bits"] = stats["estimated_bits"]
            extras["nonzero_symbol_fraction"] = stats["nonzero_symbols"] / max(stats["symbols"], 1)
        return Encoded(data, extras)

    def decode(self, data: bytes) -> np.ndarray:
        from bench.models.msp import read_header

        header, _ = read_header(data)
        self.rate_at(header.rate_index)
        model = self._model(header.rate_index)
        self._last_model = model
        try:
            return self.to_uint8(model.decompress(data))
        except CodecError:
            raise
        except Exception as exc:  # a model failure on these bytes is this cell's error
            raise decode_guard(self.name, exc) from exc

