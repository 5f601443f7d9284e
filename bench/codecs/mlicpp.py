"""MLIC++ (Jiang et al., arXiv 2307.15421) as a lic-bench codec.

The model is :mod:`bench.models.mlicpp` (rebuilt from ``spec/mlicpp.md``); bitstreams are real:
CompressAI's rANS strings in the container of :mod:`bench.models.mlicpp.bitstream`, every byte
of which counts in the rate. The rate ladder is the list of checkpoints::

    [[rates]]
    label = "mse-0.0018"
    checkpoint = "${MLICPP_CHECKPOINT_DIR}/mlicpp_mse_0.0018.pth.tar"   # ~ and $VARS expanded
    lmbda = 0.0018
    metric = "mse"

``[params]``: ``threads`` (torch CPU threads, pinned for encode and decode; default 2),
``mode`` ("fast" or "reference", see :meth:`MLICPlusPlus.configure`), ``untrained`` (true:
seeded random weights instead of checkpoints — complexity measurements only), ``seed``,
``output_rounding`` ("floor" as the official test's ToPILImage, or "round"), ``portable``
(default true in ``fast`` mode: the decoder's path runs in float64, see
:mod:`bench.models.portable`, and streams decode to the same image at any thread count and on
any device; false: the float32 path of ``reference``-era ``fast``).

The container records the rate point's index, so :meth:`decode` needs only the bytes. For
float32 streams (``reference``, or ``portable = false``) the σ/μ bits depend on the thread count
on CPU, so the decoder runs with the encoder's count (from the header) whatever ``threads``
says; portable streams decode with the process's own thread count.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from bench.codecs.base import Codec, CodecConfig, Encoded, Param, RatePoint
from bench.errors import CodecError, CodecUnavailable

DEFAULT_THREADS = 2
MODES = ("fast", "reference")
UNTRAINED_WARNING = (
    "MLIC++ runs UNTRAINED (seeded random weights, no checkpoints): rates and distortions are "
    "meaningless; use it for run-time and memory measurements only"
)


def resolve_path(path: str) -> Path:
    """Expand ``~`` and environment variables; refuse variables that are not set."""
    expanded = os.path.expanduser(os.path.expandvars(str(path)))
    unset = re.findall(r"\$\{?(\w+)", expanded)
    if unset:
        raise CodecUnavailable(
            f"checkpoint path {path!r} uses environment variable {', '.join(unset)}, which is not set"
        )
    return Path(expanded)


def _params(config: CodecConfig) -> dict[str, Any]:
    params = {"threads": DEFAULT_THREADS, "mode": "fast", "untrained": False, "seed": None,
              "output_rounding": "round", **config.params}
    params.setdefault("portable", params["mode"] != "reference")
    if params["portable"] and params["mode"] == "reference":
        raise ValueError(f"{config.name}: mode 'reference' is the official float32 computation; set portable = false")
    if params["mode"] not in MODES:
        raise ValueError(f"{config.name}: mode must be one of {MODES}, got {params['mode']!r}")
    if params["output_rounding"] not in ("floor", "round"):
        raise ValueError(f"{config.name}: output_rounding must be 'floor' or 'round'")
    if not isinstance(params["threads"], int) or not 1 <= params["threads"] <= 63:
        raise ValueError(f"{config.name}: threads must be an integer 1..63")
    if len(config.rates) > 256:
        raise ValueError(f"{config.name}: at most 256 rate points (the container stores a byte)")
    return params


class MLICPlusPlusCodec(Codec):
    """MLIC++ with real rANS bitstreams; one checkpoint per rate point."""

    adapter = "mlicpp"
    rate_params = {"checkpoint": Param(str), "lmbda": Param(float, 0, low_open=True), "metric": Param(str)}
    fixed_params = {"threads": Param(int, 1, 63), "mode": Param(str, choices=MODES), "untrained": Param(bool),
                    "portable": Param(bool),
                    "seed": Param(int, 0), "output_rounding": Param(str, choices=("floor", "round"))}
    max_loaded = 2  # models kept in memory (334 MB each)
    #: None: float32 streams decode with the encoder's thread count (pinned from the header);
    #: an integer forces this count instead — only to measure what the pinning hides
    decode_threads: int | None = None

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        import torch

        self.params = _params(config)
        self.untrained = bool(self.params["untrained"])
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"{config.name}: device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise CodecUnavailable("device 'cuda' requested but torch.cuda.is_available() is False")
        if self.device == "cuda":
            # spec §7 item 24: deterministic cuDNN, no autotuning, TF32 defaults unchanged
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        if self.untrained:
            warnings.warn(f"{config.name}: {UNTRAINED_WARNING}", stacklevel=2)
        self._models: OrderedDict[int, Any] = OrderedDict()

    # --- availability and description ----------------------------------------------------------
    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            import compressai  # noqa: F401
            import torch
        except ImportError as exc:
            return f"MLIC++ needs torch and compressai: {exc}"
        try:
            params = _params(config)
        except ValueError as exc:
            return str(exc)
        if config.device == "cuda" and not torch.cuda.is_available():
            return "device 'cuda' requested but no CUDA device is available"
        if not config.rates:
            return f"{config.name}: no [[rates]] (one checkpoint per rate point)"
        if params["untrained"]:
            return None
        missing = []
        for point in config.rates:
            if "checkpoint" not in point.params:
                return f"{config.name}: rate point {point.label!r} has no 'checkpoint' path"
            try:
                path = resolve_path(point.params["checkpoint"])
            except CodecUnavailable as exc:
                return f"{config.name}: {exc}"
            if not path.is_file():
                missing.append(str(path))
        if missing:
            return (
                f"{config.name}: {len(missing)} of {len(config.rates)} MLIC++ checkpoint files not found "
                f"({', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}); download the official "
                "2024-04 weights (github.com/JiangWeibeta/MLIC) and point the paths at them, or use "
                "the untrained configuration for complexity measurements"
            )
        return None

    def library_version(self) -> str:
        import compressai
        import torch

        return f"MLIC++ rebuild (spec MLIC@4aa9d2a5), CompressAI {compressai.__version__}, torch {torch.__version__}"

    @property
    def trained(self) -> bool:
        return not self.untrained

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"torch_threads": self.params["threads"], "mode": self.params["mode"],
                     "portable": bool(self.params["portable"])})
        if self.untrained:
            info["warning"] = UNTRAINED_WARNING
        return info

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def close(self) -> None:
        self._models.clear()
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    # --- models ------------------------------------------------------------------------------
    def _index(self, rate: RatePoint) -> int:
        for i, point in enumerate(self.config.rates):
            if point.label == rate.label:
                return i
        raise CodecError(f"{self.name}: unknown rate point {rate.label!r}")

    def model(self, index: int):
        """The model of rate point ``index`` (loaded on first use, a few kept)."""
        if index in self._models:
            self._models.move_to_end(index)
            return self._models[index]
        from bench.models.mlicpp import load_checkpoint, untrained_model
        from bench.models.mlicpp.checkpoint import UNTRAINED_SEED

        if self.untrained:
            seed = (self.params["seed"] if self.params["seed"] is not None else UNTRAINED_SEED) + index
            model = untrained_model(seed=seed).to(self.device)
        else:
            point = self.config.rates[index]
            model = load_checkpoint(resolve_path(point.params["checkpoint"]), device=self.device)
        model.configure(reference=self.params["mode"] == "reference", portable=bool(self.params["portable"]))
        self._models[index] = model
        while len(self._models) > self.max_loaded:
            self._models.popitem(last=False)
        return model

    def _threads(self):
        from bench.models.mlicpp import pinned_threads

        return pinned_threads(self.params["threads"] if self.device == "cpu" else None)

    # --- coding ------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: RatePoint) -> Encoded:
        import torch

        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            raise CodecError(f"MLIC++ encodes H×W×3 uint8 images, got {getattr(image, 'shape', type(image))}")
        index = self._index(rate)
        model = self.model(index)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255)
        try:
            with self._threads():
                result = model.compress(x, model_id=index)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"MLIC++ encode failed: {type(exc).__name__}: {exc}") from exc
        stats = result.stats
        return Encoded(result.data, extras={
            "estimated_bits": result.estimated_bits,
            "estimated_bits_y": result.y_bits_estimated,
            "estimated_bits_z": result.z_bits_estimated,
            "y_symbols": stats["y_symbols"],
            "y_nonzero_fraction": stats["y_nonzero"] / stats["y_symbols"],
            "y_escaped": stats["y_escaped"],
            "torch_threads": self.params["threads"],
            "trained": self.trained,
        })

    def decode(self, data: bytes) -> np.ndarray:
        from bench.models.mlicpp import bitstream

        header = bitstream.peek(data)  # CodecError on a bad header
        if header.model_id >= len(self.config.rates):
            raise CodecError(f"MLIC++ stream names rate point #{header.model_id}; {self.name} has {len(self.config.rates)}")
        model = self.model(header.model_id)
        try:
            x_hat = model.decompress(data, threads=self.decode_threads)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"MLIC++ decode failed: {type(exc).__name__}: {exc}") from exc
        return self.to_uint8(x_hat)

    @property
    def last_decode_threads(self) -> int | None:
        """torch threads the last decode ran with (float32 streams pin the encoder's count)."""
        return max((getattr(m, "last_decode_threads", 0) for m in self._models.values()), default=0) or None

    def to_uint8(self, x_hat) -> np.ndarray:
        """[1,3,H,W] float → H×W×3 uint8: clamp to [0,1], ×255, floor (official) or round."""
        v = x_hat[0].clamp(0, 1).mul(255)
        v = v.round() if self.params["output_rounding"] == "round" else v.floor()
        return v.byte().permute(1, 2, 0).cpu().numpy()
