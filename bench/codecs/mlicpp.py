"""MLIC++ (Jiang et al., arXiv 2307.15421) as a lic-bench codec.

The model is :mod:`bench.models.mlicpp` (rebuilt from ``spec/mlicpp.md``); bitstreams are real:
CompressAI's rANS strings in the shared learned-codec container (MLIC++ fields:
:mod:`bench.models.mlicpp.bitstream`), every byte of which counts in the rate. One rate point
per checkpoint, described by its ``weights`` table (:mod:`bench.models.weights`)::

    [[rates]]
    label = "mse-0.0018"
    weights = { path = "${MLICPP_CHECKPOINT_DIR}/mlicpp_mse_0.0018.pth.tar", lambda = 0.0018,
                metric = "mse", licence = "…", source = "https://github.com/JiangWeibeta/MLIC" }

``[params]``: ``threads`` (torch CPU threads, pinned for encode and decode; default 2),
``mode`` ("fast" or "reference", see :meth:`MLICPlusPlus.configure`), ``untrained`` (true:
seeded random weights instead of checkpoints — complexity measurements only), ``seed``,
``output_rounding`` ("floor" as the official test's ToPILImage, or "round"), ``portable``
(default true in ``fast`` mode: the decoder's path runs in float64, see
:mod:`bench.models.portable`, and streams decode to the same image at any thread count and on
any device; false: the float32 path of ``fast``), ``winograd`` (default true in ``fast`` mode:
3×3 convolutions by Winograd F(4,3), :mod:`bench.models.winograd`; false: direct convolutions,
for comparisons), and the LOF settings ``lof_iterations``
(0: off), ``lof_lr``, ``lof_eval_every``, ``lof_rounding``. A rate point may carry ``lambda``
(LOF's trade-off when there are no weights to take it from).

The container records the rate point's index, so :meth:`decode` needs only the bytes. For
float32 streams (``reference``, or ``portable = false``) the σ/μ bits depend on the thread count
on CPU, so the decoder runs with the encoder's count (from the header) whatever ``threads``
says; portable streams decode with the process's own thread count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.codecs.base import CodecConfig, Encoded, Param, RatePoint, ThreadUse
from bench.codecs.learned import LOF_PARAMS, WEIGHTS_PARAM, LearnedCodec, decode_guard, lof_options
from bench.errors import CodecError

DEFAULT_THREADS = 2
MODES = ("fast", "reference")
UNTRAINED_WARNING = (
    "MLIC++ runs UNTRAINED (seeded random weights, no checkpoints): rates and distortions are "
    "meaningless; use it for run-time and memory measurements only"
)
OFFICIAL_WEIGHTS_HINT = ("download the official 2024-04 weights (github.com/JiangWeibeta/MLIC) and point the "
                         "paths at them, or use the untrained configuration for complexity measurements")


def _params(config: CodecConfig) -> dict[str, Any]:
    params = {"threads": DEFAULT_THREADS, "mode": "fast", "untrained": False, "seed": None,
              "output_rounding": "round", "lof_iterations": 0, **config.params}
    params.setdefault("portable", params["mode"] != "reference")
    params.setdefault("winograd", params["mode"] != "reference")
    if params["portable"] and params["mode"] == "reference":
        raise ValueError(f"{config.name}: mode 'reference' is the official float32 computation; set portable = false")
    if params["winograd"] and params["mode"] == "reference":
        raise ValueError(f"{config.name}: mode 'reference' runs the official direct convolutions; set winograd = false")
    if params["mode"] not in MODES:
        raise ValueError(f"{config.name}: mode must be one of {MODES}, got {params['mode']!r}")
    if params["output_rounding"] not in ("floor", "round"):
        raise ValueError(f"{config.name}: output_rounding must be 'floor' or 'round'")
    if not isinstance(params["threads"], int) or not 1 <= params["threads"] <= 127:
        raise ValueError(f"{config.name}: threads must be an integer 1..127")
    if len(config.rates) > 256:
        raise ValueError(f"{config.name}: at most 256 rate points (the container stores a byte)")
    if not params["untrained"]:
        unweighted = [p.label for p in config.rates if "weights" not in p.params]
        if unweighted:
            raise ValueError(f"{config.name}: rate point {unweighted[0]!r} has no weights table "
                             "(or set params.untrained = true)")
    return params


class MLICPlusPlusCodec(LearnedCodec):
    """MLIC++ with real rANS bitstreams; one checkpoint per rate point."""

    adapter = "mlicpp"
    rate_params = {**WEIGHTS_PARAM, "lambda": Param(float, 0, low_open=True)}
    fixed_params = {"threads": Param(int, 1, 127), "mode": Param(str, choices=MODES), "untrained": Param(bool),
                    "portable": Param(bool), "winograd": Param(bool),
                    "seed": Param(int, 0), "output_rounding": Param(str, choices=("floor", "round")), **LOF_PARAMS}
    max_loaded = 2  # models kept in memory (334 MB each)
    #: None: float32 streams decode with the encoder's thread count (pinned from the header);
    #: an integer forces this count instead — only to measure what the pinning hides
    decode_threads: int | None = None

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        self.params = _params(config)
        self.untrained = bool(self.params["untrained"])
        self.output_rounding = self.params["output_rounding"]
        self.lof = lof_options(self.params, int(self.params["lof_iterations"]))
        if self.torch_device.type == "cuda":
            import torch

            # spec §7 item 24: deterministic cuDNN, no autotuning, TF32 defaults unchanged
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        if self.untrained:
            self.warn_untrained("seeded random weights, output gains 6/100/6")

    # --- availability and description ----------------------------------------------------------
    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            params = _params(config)
        except ValueError as exc:
            return str(exc)
        reason = super().check_available(config)
        if reason and not params["untrained"] and "not found" in reason:
            reason = f"{reason}; {OFFICIAL_WEIGHTS_HINT}"
        return reason

    def library_version(self) -> str:
        import compressai
        import torch

        numerics = "float64 decoder" if self.params["portable"] else "float32"
        convs = "Winograd F(4,3) convolutions" if self.params["winograd"] else "direct convolutions"
        return (f"MLIC++ rebuild (spec MLIC@4aa9d2a5; {self.params['mode']}, {numerics}, {convs}), "
                f"CompressAI {compressai.__version__}, torch {torch.__version__}")

    @property
    def trained(self) -> bool:
        return not self.untrained

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"torch_threads": self.params["threads"], "mode": self.params["mode"],
                     "portable": bool(self.params["portable"]), "winograd": bool(self.params["winograd"])})
        if self.untrained:
            info["warning"] = UNTRAINED_WARNING
        return info

    # --- models ------------------------------------------------------------------------------
    def _load(self, index: int):
        from bench.models.mlicpp import load_checkpoint, untrained_model
        from bench.models.mlicpp.checkpoint import UNTRAINED_SEED

        if self.untrained:
            seed = (self.params["seed"] if self.params["seed"] is not None else UNTRAINED_SEED) + index
            model = untrained_model(seed=seed).to(self.torch_device)
        else:
            model = load_checkpoint(self.weights_file(index), device=self.torch_device)
        return model.configure(reference=self.params["mode"] == "reference", portable=bool(self.params["portable"]),
                               winograd=bool(self.params["winograd"]))

    def model(self, index: int):
        """The model of rate point ``index`` (loaded on first use, a few kept)."""
        return self._model(index)

    def _threads(self):
        from bench.models.mlicpp import pinned_threads

        return pinned_threads(self.params["threads"] if self.torch_device.type == "cpu" else None)

    # --- coding ------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: RatePoint) -> Encoded:
        x = self.to_tensor(image)
        index = self.rate_index(rate)
        model = self.model(index)
        extras: dict[str, Any] = {"torch_threads": self.params["threads"], "trained": self.trained}
        try:
            with self._threads():
                if self.lof.iterations > 0:
                    return self._encode_lof(model, index, image, extras)
                result = model.compress(x, model_id=index)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"MLIC++ encode failed: {type(exc).__name__}: {exc}") from exc
        stats = result.stats
        return Encoded(result.data, extras={
            **extras,
            "estimated_bits": result.estimated_bits,
            "estimated_bits_y": result.y_bits_estimated,
            "estimated_bits_z": result.z_bits_estimated,
            "y_symbols": stats["y_symbols"],
            "y_nonzero_fraction": stats["y_nonzero"] / stats["y_symbols"],
            "y_escaped": stats["y_escaped"],
        })

    def _encode_lof(self, model, index: int, image: np.ndarray, extras: dict[str, Any]) -> Encoded:
        from bench.models.lof import overfit_latent
        from bench.models.mlicpp.lof import MLICLatent

        lam = self.rate_lambda(index)
        if lam is None:
            raise CodecError(f"{self.name}: LOF needs the rate point's λ (a 'lambda' or weights.lambda)")
        latent = MLICLatent(model, index)
        result = overfit_latent(latent, image, lam, self.lof)
        return Encoded(result.data, {**extras, **result.extras(), "estimated_bits": latent.estimate_bits(result.latent)})

    def decode(self, data: bytes) -> np.ndarray:
        from bench.models.mlicpp import bitstream

        header = bitstream.peek(data)  # CodecError on a bad header
        self.rate_at(header.model_id)
        model = self.model(header.model_id)
        try:
            x_hat = model.decompress(data, threads=self.decode_threads)
        except CodecError:
            raise
        except Exception as exc:
            raise decode_guard(self.name, exc) from exc
        return self.to_uint8(x_hat)

    def threads_used(self, threads: int) -> ThreadUse:
        """On CPU the encoder runs at ``params.threads``; a float32 stream decodes at the count in its
        header (the encoder's), a portable one at the worker's pin (or ``decode_threads``)."""
        if self.torch_device.type != "cpu":
            return super().threads_used(threads)
        decode = self.last_decode_threads or threads
        by = f"{self.adapter} params threads={self.params['threads']} (encode)"
        if self.decode_threads is not None:
            by += f", decode_threads={self.decode_threads} (decode)"
        elif not self.params["portable"]:
            by += ", the float32 stream's header (decode)"
        return ThreadUse(self.params["threads"], decode, by)

    @property
    def last_decode_threads(self) -> int | None:
        """torch threads the last decode ran with (float32 streams pin the encoder's count)."""
        return max((getattr(m, "last_decode_threads", 0) for m in self._models.values()), default=0) or None
