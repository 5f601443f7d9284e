"""RGB ↔ Y′CbCr (BT.709, full range) at 8 or 10 bits, with rounding in both directions.

Used to feed YCbCr-only codecs such as VTM. Both conversions *round* to the nearest code value;
truncating instead (as one widely used tool does) biases every sample down by half a step and
caps PSNR-RGB near 44 dB however good the codec is.

    Y  = 0.2126 R + 0.7152 G + 0.0722 B
    Cb = (B − Y) / 1.8556,   Cr = (R − Y) / 1.5748
with R, G, B in [0, 1]; Y is scaled by 2ⁿ − 1 and Cb, Cr by 2ⁿ − 1 around the offset 2ⁿ⁻¹.
"""

from __future__ import annotations

import numpy as np

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB


def rgb_to_ycbcr(rgb: np.ndarray, bit_depth: int = 10) -> np.ndarray:
    """H×W×3 uint8 RGB → 3×H×W uint16 planes (Y, Cb, Cr) at ``bit_depth`` bits, full range."""
    x = rgb.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = KR * r + KG * g + KB * b
    cb = (b - y) / (2.0 * (1.0 - KB))
    cr = (r - y) / (2.0 * (1.0 - KR))
    peak, mid = (1 << bit_depth) - 1, 1 << (bit_depth - 1)
    planes = np.stack([y * peak, cb * peak + mid, cr * peak + mid])
    return np.clip(np.round(planes), 0, peak).astype(np.uint16)


def ycbcr_to_rgb(planes: np.ndarray, bit_depth: int = 10) -> np.ndarray:
    """3×H×W (Y, Cb, Cr) planes at ``bit_depth`` bits, full range → H×W×3 uint8 RGB (rounded)."""
    peak, mid = (1 << bit_depth) - 1, 1 << (bit_depth - 1)
    p = planes.astype(np.float64)
    y, cb, cr = p[0] / peak, (p[1] - mid) / peak, (p[2] - mid) / peak
    r = y + 2.0 * (1.0 - KR) * cr
    b = y + 2.0 * (1.0 - KB) * cb
    g = (y - KR * r - KB * b) / KG
    rgb = np.stack([r, g, b], axis=-1) * 255.0
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
