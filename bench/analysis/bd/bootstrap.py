"""Bootstrap confidence intervals of BD values over images, vectorised over the resamples.

A BD value over 24 images is an estimate: another draw of 24 images would give another number.
:func:`bootstrap_bd` resamples the images with replacement ``n_resamples`` times (seeded), recomputes
the BD under the same averaging convention and method for every resample, and returns the
percentile interval:

- ``average-curve``: each resample's average curve is a weighted mean of the per-image points
  (weights = how often each image was drawn), one matrix product for all resamples; the BD of
  every resampled curve pair is then computed at once by :func:`batch_bd`.
- ``mean-of-per-image``: the per-image BD values are computed once; a resample's value is the
  mean over the drawn images.
- **paired**: when the anchor has per-image points on the same images (a measured codec, or a
  measured anchor file with ``per_image``), both sides use the same draws. Against a published
  average curve the anchor is fixed and the interval covers the tested codec's image sampling only.

:func:`batch_bd` evaluates pchip, akima and cubic on many curves of equal length at once. scipy's
interpolators take one abscissa per call, and here every resample has its own quality axis, so
the three constructions are written out in numpy (same slope rules as scipy's
``PchipInterpolator``, ``Akima1DInterpolator`` and ``Polynomial.fit``) and integrated exactly; the
tests check them against :func:`bench.analysis.bd.core.bd`. A resample whose curve is not strictly
monotonic, or whose curves do not overlap, has no BD: it is counted in ``n_failed``, not replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.bd.averaging import (AVERAGE_CURVE, AVERAGINGS, MEAN_OF_PER_IMAGE, complete_images, curve_of,
                                         image_matrix)
from bench.analysis.bd.core import METHODS, Curve, HasCurve
from bench.errors import BDError

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
FIXED_ANCHOR_NOTE = "anchor is a published average curve: the interval covers only the tested codec's image sampling"
#: Fewest images for a meaningful percentile bootstrap: with n images there are only C(2n-1, n)
#: distinct resamples (10 for n = 3, where the 95 % interval is about the range of the per-image
#: values), so below this the interval describes the few images, not the sampling uncertainty.
MIN_BOOTSTRAP_IMAGES = 8


def few_images_note(n_images: int) -> str:
    """The warning an interval over fewer than :data:`MIN_BOOTSTRAP_IMAGES` images carries ('' otherwise)."""
    if n_images >= MIN_BOOTSTRAP_IMAGES:
        return ""
    return (f"only {n_images} image(s): a bootstrap over fewer than {MIN_BOOTSTRAP_IMAGES} images is not meaningful "
            "(the interval is about the range of the per-image values)")


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval of a BD value and how it was drawn."""

    low: float
    high: float
    level: float
    n_resamples: int
    seed: int
    n_images: int
    n_failed: int  # resamples without a BD (non-monotonic curve, no overlap)
    paired: bool  # the anchor was resampled with the same draws
    note: str = ""


# --- batched BD ----------------------------------------------------------------------------------

def _hermite_slopes(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Knot slopes of scipy's PCHIP or Akima interpolant, row by row (rows = curves)."""
    h = np.diff(x, axis=1)
    m = np.diff(y, axis=1) / h
    if x.shape[1] == 2:  # both interpolants are the line through two points
        return np.concatenate([m, m], axis=1)
    if method == "pchip":
        d = np.zeros_like(y)
        w1, w2 = 2 * h[:, 1:] + h[:, :-1], h[:, 1:] + 2 * h[:, :-1]
        flat = (np.sign(m[:, 1:]) != np.sign(m[:, :-1])) | (m[:, 1:] == 0) | (m[:, :-1] == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d[:, 1:-1] = np.where(flat, 0.0, (w1 + w2) / (w1 / m[:, :-1] + w2 / m[:, 1:]))
        for end, (h0, h1, m0, m1) in ((0, (h[:, 0], h[:, 1], m[:, 0], m[:, 1])),
                                      (-1, (h[:, -1], h[:, -2], m[:, -1], m[:, -2]))):
            e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)  # one-sided three-point estimate
            wrong_sign = np.sign(e) != np.sign(m0)
            overshoot = ~wrong_sign & (np.sign(m0) != np.sign(m1)) & (np.abs(e) > 3 * np.abs(m0))
            d[:, end] = np.where(wrong_sign, 0.0, np.where(overshoot, 3 * m0, e))
        return d
    # akima: two extrapolated slopes at each end, then Akima's weighted mean
    ext = np.empty((m.shape[0], m.shape[1] + 4))
    ext[:, 2:-2] = m
    ext[:, 1] = 2 * ext[:, 2] - ext[:, 3]
    ext[:, 0] = 2 * ext[:, 1] - ext[:, 2]
    ext[:, -2] = 2 * ext[:, -3] - ext[:, -4]
    ext[:, -1] = 2 * ext[:, -2] - ext[:, -3]
    dm = np.abs(np.diff(ext, axis=1))
    f1, f2 = dm[:, 2:], dm[:, :-2]
    f12 = f1 + f2
    defined = f12 > 1e-9 * f12.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        weighted = ext[:, 1:-2] + f2 / f12 * (ext[:, 2:-1] - ext[:, 1:-2])
    return np.where(defined, weighted, 0.5 * (ext[:, 3:] + ext[:, :-3]))


def _hermite_antiderivative(x: np.ndarray, y: np.ndarray, d: np.ndarray, v: np.ndarray) -> np.ndarray:
    """∫ from x[:, 0] to v of each row's cubic Hermite interpolant (v inside the knots)."""
    h = np.diff(x, axis=1)
    full = h * ((y[:, :-1] + y[:, 1:]) / 2 + h * (d[:, :-1] - d[:, 1:]) / 12)
    before = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(full, axis=1)], axis=1)
    seg = (x[:, 1:-1] <= v[:, None]).sum(axis=1)
    rows = np.arange(x.shape[0])
    hs, t = h[rows, seg], (v - x[rows, seg]) / h[rows, seg]
    y0, y1, d0, d1 = y[rows, seg], y[rows, seg + 1], d[rows, seg], d[rows, seg + 1]
    t2, t3, t4 = t * t, t ** 3, t ** 4
    part = hs * (y0 * (t - t3 + t4 / 2) + hs * d0 * (t2 / 2 - 2 * t3 / 3 + t4 / 4)
                 + y1 * (t3 - t4 / 2) + hs * d1 * (t4 / 4 - t3 / 3))
    return before[rows, seg] + part


def _batch_integral(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, method: str) -> np.ndarray:
    """Exact integral over [lo, hi] of each row's interpolant (pchip, akima) or cubic fit."""
    if method == "cubic":
        x0, x1 = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        u = (2 * x - x0 - x1) / (x1 - x0)  # Polynomial.fit's mapping of the data onto [-1, 1]
        coef = np.linalg.pinv(np.stack([u ** k for k in range(4)], axis=2)) @ y[:, :, None]
        coef = coef[:, :, 0]

        def prim(v: np.ndarray) -> np.ndarray:
            w = (2 * v - x0[:, 0] - x1[:, 0]) / (x1[:, 0] - x0[:, 0])
            return sum(coef[:, k] * w ** (k + 1) / (k + 1) for k in range(4))

        return (prim(hi) - prim(lo)) * (x1[:, 0] - x0[:, 0]) / 2
    d = _hermite_slopes(x, y, method)
    return _hermite_antiderivative(x, y, d, hi) - _hermite_antiderivative(x, y, d, lo)


def _valid_sorted(rate: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by rate, and which rows form a usable curve (finite, rate > 0, both strictly rising)."""
    order = np.argsort(rate, axis=1, kind="stable")
    r, q = np.take_along_axis(rate, order, 1), np.take_along_axis(quality, order, 1)
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(r).all(1) & np.isfinite(q).all(1) & (r > 0).all(1)
              & (np.diff(r, axis=1) > 0).all(1) & (np.diff(q, axis=1) > 0).all(1))
    dummy = np.arange(1.0, r.shape[1] + 1)  # a harmless curve in place of an unusable row
    return np.where(ok[:, None], r, dummy), np.where(ok[:, None], q, dummy), ok


def batch_bd(rate_anchor: np.ndarray, dist_anchor: np.ndarray, rate_test: np.ndarray, dist_test: np.ndarray,
             kind: str = "rate", method: str = "pchip", higher_is_better: bool = True) -> np.ndarray:
    """BD of many curve pairs at once: row i of the anchor arrays against row i of the test arrays.

    Anchor rows (shape ``(B, Ka)`` or ``(Ka,)`` for one fixed curve) and test rows ``(B, Kt)``.
    Returns ``B`` values (percent for ``rate``, quality units for ``quality``, as :func:`bd`);
    NaN where a row is not a strictly monotonic curve or the pair does not overlap.
    """
    if method not in METHODS:
        raise BDError(f"unknown BD method {method!r}; choose one of {', '.join(METHODS)}")
    rt, qt = np.atleast_2d(np.asarray(rate_test, float)), np.atleast_2d(np.asarray(dist_test, float))
    ra = np.broadcast_to(np.atleast_2d(np.asarray(rate_anchor, float)), (rt.shape[0], np.shape(rate_anchor)[-1]))
    qa = np.broadcast_to(np.atleast_2d(np.asarray(dist_anchor, float)), ra.shape)
    sign = 1.0 if higher_is_better else -1.0
    ra, qa, ok_a = _valid_sorted(ra, sign * qa)
    rt, qt, ok_t = _valid_sorted(rt, sign * qt)
    la, lt = np.log10(ra), np.log10(rt)
    if kind == "rate":
        xa, ya, xt, yt = qa, la, qt, lt
    elif kind == "quality":
        xa, ya, xt, yt = la, qa, lt, qt
    else:
        raise BDError(f"unknown BD kind {kind!r}; use 'rate' or 'quality'")
    lo, hi = np.maximum(xa[:, 0], xt[:, 0]), np.minimum(xa[:, -1], xt[:, -1])
    ok = ok_a & ok_t & (hi > lo)
    lo, hi = np.where(ok, lo, xt[:, 0]), np.where(ok, hi, xt[:, -1])
    lo_a, hi_a = np.clip(lo, xa[:, 0], xa[:, -1]), np.clip(hi, xa[:, 0], xa[:, -1])
    diff = (_batch_integral(xt, yt, lo, hi, method) - _batch_integral(xa, ya, lo_a, hi_a, method)) / (hi - lo)
    value = (10.0 ** diff - 1.0) * 100.0 if kind == "rate" else sign * diff
    return np.where(ok, value, np.nan)


# --- resampling ----------------------------------------------------------------------------------

def draw_weights(n_images: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``(n_resamples, n_images)`` weights: how often each image was drawn (with replacement) / n."""
    if n_images < 1 or n_resamples < 1:
        raise BDError(f"bootstrap needs at least one image and one resample (got {n_images} and {n_resamples})")
    draws = np.random.default_rng(seed).integers(0, n_images, size=(n_resamples, n_images))
    counts = np.zeros((n_resamples, n_images))
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1.0)
    return counts / n_images


def percentile_interval(values: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite values (NaN, NaN if there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _anchor_side(anchor: Any, quality: str, images: list[str], cols: dict[str, str]) -> tuple[Any, Any, bool]:
    """Anchor rates/qualities: per image aligned with ``images`` (paired) or one fixed curve."""
    if isinstance(anchor, pd.DataFrame):
        names, rates, quals = image_matrix(anchor, quality, **cols)
        if set(names) != set(images):
            raise BDError(f"anchor rows cover {len(names)} images and test rows {len(images)}, differing in "
                          f"{sorted(set(names) ^ set(images))[:5]}; compare on the same images")
        order = [names.index(i) for i in images]
        return rates[order], quals[order], True
    curve = anchor if isinstance(anchor, Curve) else curve_of(anchor, quality)
    return np.asarray(curve.rate), np.asarray(curve.quality), False


def bootstrap_values(test_df: pd.DataFrame, anchor: Curve | HasCurve | pd.DataFrame, quality: str = "psnr_rgb",
                     averaging: str = AVERAGE_CURVE, *, kind: str = "rate", method: str = "pchip",
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, higher_is_better: bool = True,
                     rate: str = "bpp", rate_label: str = "rate_label",
                     image: str = "image") -> tuple[np.ndarray, list[str], bool]:
    """The BD of every resample (NaN where a resample has none), the images drawn from, and pairing.

    The draws depend only on ``seed``, ``n_resamples`` and the number of images, and images are
    taken in sorted order, so two metrics over the same images share their draws (a mean over
    metrics can be bootstrapped from the per-metric values).
    """
    if averaging not in AVERAGINGS:
        raise BDError(f"unknown averaging {averaging!r}; choose one of {', '.join(AVERAGINGS)}")
    cols = {"rate": rate, "rate_label": rate_label, "image": image}
    images, rt, qt = image_matrix(test_df, quality, **cols)
    ra, qa, paired = _anchor_side(anchor, quality, images, cols)
    if averaging == MEAN_OF_PER_IMAGE and not paired:
        raise BDError("mean-of-per-image needs per-image anchor rows (a DataFrame); a published curve is a "
                      "dataset average and only supports 'average-curve'")
    weights = draw_weights(len(images), n_resamples, seed)
    if averaging == AVERAGE_CURVE:
        anchor_r, anchor_q = (weights @ ra, weights @ qa) if paired else (ra, qa)
        return batch_bd(anchor_r, anchor_q, weights @ rt, weights @ qt, kind, method, higher_is_better), images, paired
    per_image = batch_bd(ra, qa, rt, qt, kind, method, higher_is_better)
    if not np.isfinite(per_image).all():
        bad = [images[i] for i in np.flatnonzero(~np.isfinite(per_image))]
        raise BDError(f"per-image BD failed for {len(bad)} of {len(images)} images: {bad[:5]}")
    return weights @ per_image, images, paired


def summarise(values: np.ndarray, n_images: int, paired: bool, seed: int,
              level: float = DEFAULT_LEVEL) -> Interval:
    """The :class:`Interval` of bootstrap values (with the notes a reader needs)."""
    if not 0 < level < 1:
        raise BDError(f"confidence level must lie in (0, 1), got {level}")
    low, high = percentile_interval(values, level)
    failed = int((~np.isfinite(values)).sum())
    notes = [] if paired else [FIXED_ANCHOR_NOTE]
    if few := few_images_note(n_images):
        notes.insert(0, few)
    if failed:
        notes.append(f"{failed} of {len(values)} resamples had no BD (non-monotonic average curve or no overlap) "
                     "and are not in the interval")
    return Interval(low, high, level, len(values), seed, n_images, failed, paired, "; ".join(notes))


def bootstrap_bd(test_df: pd.DataFrame, anchor: Curve | HasCurve | pd.DataFrame, quality: str = "psnr_rgb",
                 averaging: str = AVERAGE_CURVE, *, level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED,
                 **kw: Any) -> Interval:
    """Percentile bootstrap interval over images of the BD that :func:`dataset_bd` computes.

    ``test_df`` (and ``anchor`` when it is a DataFrame) hold complete per-image rows (see
    :func:`complete_images`). Paired resampling when the anchor has per-image rows; else the
    anchor curve is fixed and the interval says so in ``note``. Keywords as :func:`bootstrap_values`.
    """
    if not 0 < level < 1:
        raise BDError(f"confidence level must lie in (0, 1), got {level}")
    values, images, paired = bootstrap_values(test_df, anchor, quality, averaging, seed=seed, **kw)
    return summarise(values, len(images), paired, seed, level)


def complete_pair(test_df: pd.DataFrame, anchor: Any, quality: str, **cols: str) -> tuple[pd.DataFrame, Any, dict]:
    """Test rows (and anchor rows) restricted to images complete on both sides, and those left out."""
    test_ok, left_out = complete_images(test_df, quality, **cols)
    if isinstance(anchor, pd.DataFrame):
        image = cols.get("image", "image")
        anchor_ok, anchor_left = complete_images(anchor, quality, **cols)
        left_out.update({k: f"anchor: {v}" for k, v in anchor_left.items() if k not in left_out})
        common = set(test_ok[image].astype(str)) & set(anchor_ok[image].astype(str))
        for name in sorted(set(test_ok[image].astype(str)) ^ set(anchor_ok[image].astype(str))):
            left_out.setdefault(name, "not measured on both sides")
        return test_ok[test_ok[image].astype(str).isin(common)], anchor_ok[anchor_ok[image].astype(str).isin(common)], \
            left_out
    return test_ok, anchor, left_out
