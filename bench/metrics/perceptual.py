"""Library-backed metrics of the JPEG AI set and beyond (piq, psnr-hvsm, ssimulacra2; NLPD is ours).

Each function takes the original and decoded H×W×3 uint8 images and the per-worker context (or
None) and returns the metric's value. The JPEG AI CTC computes its metrics on the luma of BT.709
Y'CbCr: :func:`y_tensor` gives that plane, unrounded, scaled to [0, 1], as a 1×1×H×W float64
tensor (float64: these metrics are compared across implementations at 1e-4).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics.basic import luma


def y_tensor(image: np.ndarray):
    """BT.709 luma in [0, 1] as a float64 tensor of shape 1×1×H×W."""
    import torch

    return torch.from_numpy(luma(image) / 255.0)[None, None]


#: how to install a metric's module that is not a dependency of lic-bench itself
_NLPD_HINT = ("NLPD's optional package: install it as the README's \"Quality metrics\" says "
              "(pip install --no-deps pyiqa==0.1.16 …)")
_INSTALL_HINTS = {"pyiqa": _NLPD_HINT, "cv2": _NLPD_HINT}


def missing(*modules: str) -> str | None:
    """Why a metric cannot run: the first module that is not importable, else None."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            hint = _INSTALL_HINTS.get(module, "a dependency of lic-bench: reinstall it, e.g. pip install -e .")
            return f"Python package {module!r} is not installed ({hint})"
    return None


def _piq(name: str, original: np.ndarray, decoded: np.ndarray, **kwargs: Any) -> float:
    """piq's ``name`` on Y. piq's order is (prediction, target): the reference goes second, which
    matters for VIFp and IW-SSIM (their statistics come from the reference)."""
    import piq
    import torch

    with torch.inference_mode():
        return float(getattr(piq, name)(y_tensor(decoded), y_tensor(original), data_range=1.0, **kwargs))


def vif(original: np.ndarray, decoded: np.ndarray, context: Any = None) -> float:
    """VIFp (pixel-domain VIF, Sheikh & Bovik 2006) on Y, piq's ``vif_p`` (σ_n² = 2)."""
    return _piq("vif_p", original, decoded)


def fsim(original: np.ndarray, decoded: np.ndarray, context: Any = None) -> float:
    """FSIM (luma only, not FSIMc) on Y, piq's ``fsim(chromatic=False)``."""
    return _piq("fsim", original, decoded, chromatic=False)


def iw_ssim(original: np.ndarray, decoded: np.ndarray, context: Any = None) -> float:
    """IW-SSIM (Wang & Li 2011) on Y, piq's ``information_weighted_ssim`` (5 levels, 11×11, σ 1.5)."""
    return _piq("information_weighted_ssim", original, decoded)


def nlpd(original: np.ndarray, decoded: np.ndarray, context: Any = None) -> float:
    """NLPD (Laparra et al. 2016) on BT.709 Y in [0, 1], our one-plane implementation (:mod:`bench.metrics.nlpd`)."""
    from bench.metrics.nlpd import nlpd_plane

    return nlpd_plane(luma(original) / 255.0, luma(decoded) / 255.0)


def psnr_hvs_m(original: np.ndarray, decoded: np.ndarray, context: Any = None) -> float:
    """PSNR-HVS-M (Ponomarenko et al. 2007) on Y in [0, 1], psnr-hvsm's 8×8 DCT code; inf if identical.

    The library caps identical images at 100 dB; we take its masked MSE and return inf for zero, as PSNR does."""
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints about its optional torch backend
        from psnr_hvsm import hvs_hvsm_mse

    with np.errstate(divide="ignore", invalid="ignore"):  # flat 8×8 blocks: the library's masking divides by 0, then masks it
        _, mse_hvsm = hvs_hvsm_mse(luma(original) / 255.0, luma(decoded) / 255.0)
    mse = float(mse_hvsm)
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _png(image: np.ndarray) -> io.BytesIO:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG", compress_level=0)
    buffer.seek(0)
    return buffer


def ssimulacra2(original: np.ndarray, decoded: np.ndarray, context: Any = None) -> float:
    """SSIMULACRA 2 (Sneyers 2023; libjxl's tools/ssimulacra2.cc) on sRGB via XYB, the ``ssimulacra2`` package."""
    from ssimulacra2 import compute_ssimulacra2

    return float(compute_ssimulacra2(_png(original), _png(decoded)))


#: Weight files the torch hub cache must hold for LPIPS / DISTS (piq's own URLs' file names).
HUB_WEIGHTS = {"lpips": ("lpips_weights.pt", "vgg16-397923af.pth"),
               "dists": ("dists_weights.pt", "vgg16-397923af.pth")}


def hub_weights_missing(metric: str) -> str | None:
    """None when every weight file of ``metric`` is in the torch hub cache, else why not (never downloads)."""
    if reason := missing("piq", "torch"):
        return reason
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    absent = [name for name in HUB_WEIGHTS[metric] if not (folder / name).is_file()]
    if absent:
        return f"weights not in the torch hub cache {folder}: {', '.join(absent)} (this suite never downloads them)"
    return None


def lpips_setup() -> Any:
    import piq

    return piq.LPIPS(reduction="none").eval()


def dists_setup() -> Any:
    import piq

    return piq.DISTS(reduction="none").eval()


def deep_distance(original: np.ndarray, decoded: np.ndarray, context: Any) -> float:
    """LPIPS-VGG / DISTS (piq) on RGB in [0, 1]; lower is better."""
    import torch

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255.0).permute(2, 0, 1)[None]

    with torch.inference_mode():
        return float(context(tensor(original), tensor(decoded)))
