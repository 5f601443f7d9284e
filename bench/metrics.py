"""Quality metrics between the original and the decoded 8-bit RGB images.

- PSNR-RGB: peak 255, MSE over all pixels of all three channels (one MSE, not a mean of PSNRs).
- Y-PSNR: luma Y = 0.2126 R + 0.7152 G + 0.0722 B (BT.709) in floating point, peak 255.
- MS-SSIM: 5 scales, 11×11 Gaussian window σ = 1.5, data range 255, on RGB (pytorch-msssim,
  averaged over channels, float32: within ~1e-6 of float64 at a seventh of the cost), and its dB
  form −10·log10(1 − MS-SSIM). It needs each side > 160 px;
  smaller images get NULL rather than a number computed some other way.
All metrics are computed on the uint8 images the codec actually produced: no float shortcut.
"""

from __future__ import annotations

import math

import numpy as np

BT709 = np.array([0.2126, 0.7152, 0.0722])
MS_SSIM_MIN_SIDE = 161


def _psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def psnr_rgb(original: np.ndarray, decoded: np.ndarray) -> float:
    diff = original.astype(np.float64) - decoded.astype(np.float64)
    return _psnr(float(np.mean(diff * diff)))


def psnr_y(original: np.ndarray, decoded: np.ndarray) -> float:
    diff = (original.astype(np.float64) - decoded.astype(np.float64)) @ BT709
    return _psnr(float(np.mean(diff * diff)))


def ms_ssim(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """MS-SSIM on RGB, or ``None`` if the image is too small for five scales."""
    if min(original.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]

    with torch.inference_mode():
        return float(_ms_ssim(tensor(original), tensor(decoded), data_range=255.0, size_average=True))


def ms_ssim_db(value: float | None) -> float | None:
    if value is None:
        return None
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def all_metrics(original: np.ndarray, decoded: np.ndarray) -> dict[str, float | None]:
    m = ms_ssim(original, decoded)
    return {"psnr_rgb": psnr_rgb(original, decoded), "psnr_y": psnr_y(original, decoded),
            "ms_ssim": m, "ms_ssim_db": ms_ssim_db(m)}
