"""MSP+LOF codec adapter (``adapter = "msp"``) — a lic-bench re-implementation.

Runs :mod:`bench.models.msp` (multi-scale progressive probability model, constant sequential
decoding steps) with optional encoder-side latent overfitting (:mod:`bench.models.lof`) after
Zhang et al., arXiv 2210.04112. Not the authors' code (none is public).

Configuration (``codecs/msp-*.toml``)::

    adapter = "msp"
    [params]
    profile = "msp-base"        # built-in profile (bench.models.msp.profiles); fields may be overridden
    seed = 0                    # untrained mode: seed of the random init (seed + rate index)
    checkpoints = ["a.pth", …]  # optional, one per rate point in ladder order → trained weights
    require_trained = false     # true: unavailable instead of untrained when checkpoints are absent
    portable = true             # float64 decoder path: same image at any thread count / device
    [ladder]
    param = "lambda"            # every rate point needs a λ (LOF's trade-off; names the checkpoint)
    values = [0.0018, …]

Without checkpoints the codec runs untrained (``trained`` is False, a warning is raised): valid
for complexity measurements only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.codecs.base import CodecConfig, Encoded, Param, RatePoint
from bench.errors import CodecError
from bench.codecs.learned import LearnedCodec, decode_guard


def _checkpoints(config: CodecConfig) -> list[Path] | None:
    paths = config.params.get("checkpoints")
    if paths is None:
        return None
    if not isinstance(paths, list) or len(paths) != len(config.rates):
        raise ValueError(
            f"{config.name}: params.checkpoints must list one file per rate point "
            f"({len(config.rates)}), got {paths!r}"
        )
    return [Path(str(p)).expanduser() for p in paths]


class MSPCodec(LearnedCodec):
    """The MSP(+LOF) re-implementation as a benchmark codec."""

    adapter = "msp"
    rate_params = {"lambda": Param(float, 0, low_open=True, required=True)}
    # profile fields with the ranges of MSPProfile.validate, plus the adapter's own keys
    fixed_params = {
        "profile": Param(str, required=True), "levels": Param(int, 1, 6), "steps_per_level": Param(int, choices=(2, 3)),
        "groups": Param(int, 1, 8), "N": Param(int, 8), "M": Param(int, 1), "context_width": Param(int, 1),
        "feature_channels": Param(int, 1), "lof_iterations": Param(int, 0), "lof_lr": Param(float, 0, low_open=True),
        "lof_eval_every": Param(int, 1), "lof_rounding": Param(str, choices=("ste", "sga")), "seed": Param(int, 0),
        "checkpoints": Param(list), "require_trained": Param(bool), "lambdas": Param(list),
        "portable": Param(bool),
    }

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        from bench.models.msp import profile_from_params

        self.profile = profile_from_params(config.params)
        self.seed = int(config.params.get("seed", 0))
        self.checkpoints = _checkpoints(config)
        for point in config.rates:
            if "lambda" not in point.params:
                raise ValueError(f"{config.name}: rate point {point.label!r} has no 'lambda'")
        from bench.models.lof import LOFOptions

        p = self.profile
        self.lof = LOFOptions(
            p.lof_iterations, lr=p.lof_lr, eval_every=p.lof_eval_every, rounding=p.lof_rounding, seed=self.seed
        ).validate()
        self._last_model: Any = None
        if self.checkpoints is None:
            self.warn_untrained(f"no params.checkpoints; random init with seed {self.seed}")

    # --- description -------------------------------------------------------------------------
    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            import compressai  # noqa: F401
            import torch  # noqa: F401

            from bench.models.msp import profile_from_params

            profile_from_params(config.params)
            paths = _checkpoints(config)
        except (ImportError, KeyError, ValueError) as exc:
            return f"{config.name}: {exc.args[0] if exc.args else exc}"
        if not config.rates:
            return f"{config.name}: no rate points"
        if paths is None and config.params.get("require_trained", False):
            return f"{config.name}: require_trained is set but params.checkpoints is missing"
        missing = [str(p) for p in paths or [] if not p.is_file()]
        if missing:
            return f"{config.name}: checkpoint file(s) not found: {', '.join(missing)}"
        return None

    def library_version(self) -> str:
        import compressai
        import torch

        return (
            f"lic-bench MSP re-implementation v1 ({self.profile.name}); "
            f"torch {torch.__version__}, compressai {compressai.__version__}"
        )

    @property
    def trained(self) -> bool:
        return self.checkpoints is not None

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
        info["weights"] = [str(p) for p in self.checkpoints] if self.checkpoints else f"untrained (seed {self.seed})"
        info["reimplementation"] = "lic-bench re-implementation of MSP+LOF (arXiv 2210.04112), not the authors' code"
        return info

    # --- models --------------------------------------------------------------------------------
    def _load(self, rate_index: int):
        from bench.models.msp import create_model

        checkpoint = self.checkpoints[rate_index] if self.checkpoints else None
        model = create_model(self.profile, checkpoint, seed=self.seed + rate_index, device=self.device)
        model.rate_index = rate_index
        return model.make_portable() if self.config.params.get("portable", True) else model

    # --- coding --------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: RatePoint) -> Encoded:
        import torch

        from bench.models.imageio import check_image, to_tensor
        from bench.models.lof import overfit_latent

        check_image(image)
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
                x = to_tensor(image, self.device)
                data, _ = model.compress_latent(model.analysis(x), size, index)
            stats = model.last_encode_stats
            extras["estimated_bits"] = stats["estimated_bits"]
            extras["nonzero_symbol_fraction"] = stats["nonzero_symbols"] / max(stats["symbols"], 1)
        return Encoded(data, extras)

    def decode(self, data: bytes) -> np.ndarray:
        from bench.models.imageio import to_uint8
        from bench.models.msp import read_header

        header, _ = read_header(data)
        self.rate_at(header.rate_index)
        model = self._model(header.rate_index)
        self._last_model = model
        try:
            return to_uint8(model.decompress(data))
        except CodecError:
            raise
        except Exception as exc:  # a model failure on these bytes is this cell's error
            raise decode_guard(self.name, exc) from exc

