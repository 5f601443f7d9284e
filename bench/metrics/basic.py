"""The cheap metrics and the colour conversions every metric shares.

- PSNR-RGB: peak 255, MSE over all pixels of all three channels (one MSE, not a mean of PSNRs).
- PSNR-Y: luma Y = 0.2126 R + 0.7152 G + 0.0722 B (BT.709) in floating point, peak 255.
- PSNR-YUV: BT.709 full-range Y'CbCr in floating point, (6·PSNR_Y + PSNR_Cb + PSNR_Cr) / 8 (JVET's weighting).
- MS-SSIM: 5 scales, 11×11 Gaussian window σ = 1.5, data range 255 (pytorch-msssim, float32: within
  ~1e-6 of float64 at a seventh of the cost), on RGB (mean over channels) or on Y; and its dB form
  −10·log10(1 − MS-SSIM). It needs each side > 160 px; smaller images get NULL.
All metrics are computed on the uint8 images the codec actually produced: no float shortcut.
"""

from __future__ import annotations

import math

import numpy as np

BT709 = np.array([0.2126, 0.7152, 0.0722])
#: BT.709 full-range R'G'B' → Y'CbCr (rows Y, Cb, Cr; Cb/Cr centred on 0), ITU-R BT.709-6 item 3.
BT709_YCBCR = np.array([BT709,
                        (np.array([0.0, 0.0, 1.0]) - BT709) / (2 * (1 - BT709[2])),
                        (np.array([1.0, 0.0, 0.0]) - BT709) / (2 * (1 - BT709[0]))])
MS_SSIM_MIN_SIDE = 161


def luma(image: np.ndarray) -> np.ndarray:
    """BT.709 luma Y of an H×W×3 uint8 image, float64 in [0, 255] (not rounded)."""
    return image.astype(np.float64) @ BT709


def ycbcr(image: np.ndarray) -> np.ndarray:
    """BT.709 full-range Y'CbCr, float64: Y in [0, 255], Cb/Cr in [-127.5, 127.5]."""
    return image.astype(np.float64) @ BT709_YCBCR.T


def _psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def psnr_rgb(original: np.ndarray, decoded: np.ndarray) -> float:
    diff = original.astype(np.float64) - decoded.astype(np.float64)
    return _psnr(float(np.mean(diff * diff)))


def psnr_y(original: np.ndarray, decoded: np.ndarray) -> float:
    diff = (original.astype(np.float64) - decoded.astype(np.float64)) @ BT709
    return _psnr(float(np.mean(diff * diff)))


def psnr_yuv(original: np.ndarray, decoded: np.ndarray) -> float:
    """(6·PSNR_Y + PSNR_Cb + PSNR_Cr) / 8 on BT.709 full-range Y'CbCr, peak 255; inf if identical."""
    diff = ycbcr(original) - ycbcr(decoded)
    psnrs = [_psnr(float(np.mean(diff[..., c] ** 2))) for c in range(3)]
    return (6 * psnrs[0] + psnrs[1] + psnrs[2]) / 8


def _ms_ssim_planes(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """pytorch-msssim on float planes (H×W×C, range 255); None below the five-scale minimum."""
    if min(original.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]

    with torch.inference_mode():
        return float(_ms_ssim(tensor(original), tensor(decoded), data_range=255.0, size_average=True))


def ms_ssim(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """MS-SSIM on RGB, or ``None`` if the image is too small for five scales."""
    return _ms_ssim_planes(original, decoded)


def ms_ssim_y(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """MS-SSIM on BT.709 luma (float, not rounded), or ``None`` if too small."""
    return _ms_ssim_planes(luma(original)[..., None], luma(decoded)[..., None])


def ms_ssim_db(value: float | None) -> float | None:
    if value is None:
        return None
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def all_metrics(original: np.ndarray, decoded: np.ndarray) -> dict[str, float | None]:
    """The three historical metrics' columns (kept for callers outside the registry)."""
    m = ms_ssim(original, decoded)
    return {"psnr_rgb": psnr_rgb(original, decoded), "psnr_y": psnr_y(original, decoded),
            "ms_ssim": m, "ms_ssim_db": ms_ssim_db(m)}
