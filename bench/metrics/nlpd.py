"""NLPD, the normalised Laplacian pyramid distance (Laparra, Ballé, Berardino & Simoncelli,
"Perceptual image quality assessment using a normalized Laplacian pyramid", Electronic Imaging 2016),
on one grey-level plane, in float64 numpy.

Written after the authors' MATLAB code (``NLP_dist.m`` of their NLPyr package): a 6-level Laplacian
pyramid with the 5×5 binomial-like filter ``f fᵀ``, f = [0.05, 0.25, 0.4, 0.25, 0.05]
(``symmetric`` padding before each 2× decimation; upsampling by zero insertion ×4, replicate
padding and a zero-padded ``same`` convolution), each band divided by
σ_k + (|band| ∗ p_k) with the published 3×3 filters p_k and constants σ_k; the distance is the
RMS difference of the normalised bands, averaged over the 6 bands. Input in [0, 1].

Why our own: pyiqa's ``NLPD(channels=3)`` upsamples with ``PixelShuffle`` over the stacked
channels, which mixes them (three copies of Y gave values about 6× too small), and its
``channels=1`` path converts RGB to its own BT.601 studio-range Y first, so it cannot take the
BT.709 Y the JPEG AI set uses. ``python -m bench.tools.metrics_check`` compares this module with
pyiqa's pyramid on one channel when pyiqa is installed (the two agree to ~1e-9: pyiqa's filters
are float32).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve

#: Version of this implementation, recorded with every run (``implementation_version``):
#: 1 was pyiqa ``NLPD(channels=3)`` on three copies of Y (channel mixing: ~6× too small), 2 this module.
VERSION = 2

LEVELS = 6
_F = np.array([0.05, 0.25, 0.4, 0.25, 0.05])
PYRAMID_FILTER = np.outer(_F, _F)
#: Divisive-normalisation filters and constants per level (Laparra et al. 2016, fitted to TID2008).
DN_FILTERS = (
    np.array([[0, 0.1011, 0], [0.1493, 0, 0.1460], [0, 0.1015, 0]]),
    np.array([[0, 0.0757, 0], [0.1986, 0, 0.1846], [0, 0.0837, 0]]),
    np.array([[0, 0.0477, 0], [0.2138, 0, 0.2243], [0, 0.0467, 0]]),
    np.array([[0, 0, 0], [0.2503, 0, 0.2616], [0, 0, 0]]),
    np.array([[0, 0, 0], [0.2598, 0, 0.2552], [0, 0, 0]]),
    np.array([[0, 0, 0], [0.2215, 0, 0.0717], [0, 0, 0]]),
)
SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)


def _upsample(low: np.ndarray, odd: tuple[int, int]) -> np.ndarray:
    """The coarser level brought back to the finer one's size (``odd``: 1 where that size is odd)."""
    low = np.pad(low, 1, mode="edge")
    up = np.zeros((2 * low.shape[0], 2 * low.shape[1]))
    up[::2, ::2] = 4.0 * low
    up = convolve(up, PYRAMID_FILTER, mode="constant")  # zero-padded "same"
    return up[2:up.shape[0] - 2 - odd[0], 2:up.shape[1] - 2 - odd[1]]


def laplacian_pyramid(plane: np.ndarray, levels: int = LEVELS) -> list[np.ndarray]:
    """``levels - 1`` band-pass images, finest first, then the low-pass residual."""
    bands = []
    current = np.asarray(plane, dtype=np.float64)
    for _ in range(levels - 1):
        low = convolve(current, PYRAMID_FILTER, mode="reflect")[::2, ::2]  # reflect = MATLAB "symmetric"
        odd = (2 * low.shape[0] - current.shape[0], 2 * low.shape[1] - current.shape[1])
        bands.append(current - _upsample(low, odd))
        current = low
    bands.append(current)
    return bands


def normalised_pyramid(plane: np.ndarray) -> list[np.ndarray]:
    """Each band divided by its local amplitude: band / (σ_k + |band| ∗ p_k)."""
    return [band / (sigma + convolve(np.abs(band), filt, mode="constant"))
            for band, filt, sigma in zip(laplacian_pyramid(plane), DN_FILTERS, SIGMAS)]


def nlpd_plane(reference: np.ndarray, distorted: np.ndarray) -> float:
    """NLPD of two H×W planes in [0, 1]: mean over the levels of the RMS difference; 0 if identical."""
    if reference.shape != distorted.shape or reference.ndim != 2:
        raise ValueError(f"NLPD needs two planes of one shape, got {reference.shape} and {distorted.shape}")
    levels = zip(normalised_pyramid(reference), normalised_pyramid(distorted))
    return float(np.mean([np.sqrt(np.mean((a - b) ** 2)) for a, b in levels]))
