"""Bjøntegaard-delta (BD) metrics: BD-rate and BD-quality between two rate-distortion curves.

The public API follows FAU's ``bjontegaard`` package (the method is a keyword argument)::

    bd_rate(rate_anchor, dist_anchor, rate_test, dist_test, method="pchip")     # percent
    bd_quality(rate_anchor, dist_anchor, rate_test, dist_test, method="pchip")  # dB / quality units

Methods
    ``pchip``  JVET common-test-conditions method: log10(rate) as a function of quality through a
               piecewise cubic Hermite interpolant (scipy ``PchipInterpolator``), integrated exactly
               over the overlapping quality range.
    ``cubic``  VCEG-M33 (Bjøntegaard 2001): a third-order polynomial of log rate in quality, a least
               squares fit when there are more than four points, integrated exactly.
    ``akima``  scipy ``Akima1DInterpolator``, integrated exactly.

``convex_hull=True`` first drops points off the upper convex hull of (rate, quality) — points
a mix of their neighbours beats, and points with more rate but no more quality than another —
and reports them in a :class:`ConvexHullWarning`. It is never applied unless asked for.

BD-rate is ``(b**d - 1) * 100`` where ``d`` is the mean difference of ``log_b(rate)`` (test minus
anchor) over the overlap; it is negative when the test codec needs fewer bits for the same quality.
BD-quality is the mean quality difference (test minus anchor) over the overlapping log-rate range;
positive is better. The log base cancels out in exact arithmetic (``log_base`` exists to check it).

Dataset helpers take per-image rows (columns ``image``, ``rate_label``, ``bpp`` and a quality column,
as in the results store) and name their averaging convention:

    ``average-curve``      BD of the dataset-average curve (mean bpp and mean quality per rate
                           point over the same images) — the usual convention in papers;
    ``mean-of-per-image``  arithmetic mean of the per-image BD values (needs per-image anchor rows).

Everything here is a pure function of its inputs: no I/O.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy.interpolate import Akima1DInterpolator, PchipInterpolator
from bench.errors import BDError

Method = Literal["pchip", "cubic", "akima"]
Kind = Literal["rate", "quality"]
Averaging = Literal["average-curve", "mean-of-per-image"]

METHODS: tuple[str, ...] = ("pchip", "cubic", "akima")
AVERAGE_CURVE = "average-curve"
MEAN_OF_PER_IMAGE = "mean-of-per-image"
AVERAGINGS: tuple[str, ...] = (AVERAGE_CURVE, MEAN_OF_PER_IMAGE)

#: Fewest points per curve each method needs, and why (used in error messages).
MIN_POINTS: dict[str, tuple[int, str]] = {
    "cubic": (4, "a third-order polynomial has 4 coefficients"),
    "pchip": (2, "a piecewise cubic Hermite interpolant needs 2 knots"),
    "akima": (2, "an Akima spline needs 2 knots"),
}

#: Overlap fraction below which a :class:`LowOverlapWarning` is issued.
DEFAULT_MIN_OVERLAP = 0.75



class LowOverlapWarning(UserWarning):
    """The two curves share only a small part of their range; the BD value rests on little data."""


class ConvexHullWarning(UserWarning):
    """``convex_hull=True`` removed points; the message lists them."""


# --------------------------------------------------------------------------------------------
# Curves and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """One rate-quality curve: rates (> 0, e.g. bpp) and qualities, point by point."""

    rate: tuple[float, ...]
    quality: tuple[float, ...]
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", tuple(float(r) for r in np.atleast_1d(self.rate)))
        object.__setattr__(self, "quality", tuple(float(q) for q in np.atleast_1d(self.quality)))
        if len(self.rate) != len(self.quality):
            raise BDError(
                f"curve {self.label or '(unnamed)'}: {len(self.rate)} rates but {len(self.quality)} qualities"
            )

    def __len__(self) -> int:
        return len(self.rate)


@runtime_checkable
class HasCurve(Protocol):
    """Anything that yields a :class:`Curve` for a quality column (e.g. ``bench.anchors.Anchor``)."""

    def curve(self, quality: str) -> Curve: ...


@dataclass(frozen=True)
class BDResult:
    """A BD value with what it rests on.

    ``value`` is percent for ``kind="rate"`` and quality units for ``kind="quality"``.
    ``overlap`` is the overlap length divided by the shorter of the two curves' ranges (quality
    axis for BD-rate, log-rate axis for BD-quality); 1.0 when one range contains the other.
    For ``mean-of-per-image`` it is the smallest per-image overlap.
    """

    value: float
    kind: str
    method: str
    overlap: float
    interval: tuple[float, float]
    n_anchor: int
    n_test: int
    averaging: str | None = None
    n_images: int | None = None
    per_image: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise BDError(f"unknown BD method {method!r}; choose one of {', '.join(METHODS)}")


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def _prepare(rate: Any, quality: Any, who: str, method: str, convex_hull: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validate one curve and return it sorted by rate (optionally reduced to its convex hull)."""
    r = np.asarray(rate, dtype=float)
    q = np.asarray(quality, dtype=float)
    if r.ndim != 1 or q.ndim != 1:
        raise BDError(f"{who}: rates and qualities must be 1-D sequences")
    if len(r) != len(q):
        raise BDError(f"{who}: {len(r)} rates but {len(q)} qualities")
    for name, arr in (("rate", r), ("quality", q)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            raise BDError(f"{who}: point {i} has a non-finite {name} ({arr[i]!r}); NaN/inf cannot be integrated")
    bad = np.flatnonzero(r <= 0)
    if bad.size:
        i = int(bad[0])
        raise BDError(f"{who}: point {i} has rate {_fmt(r[i])}; rates must be > 0 (BD works on log rate)")
    _check_count(len(r), who, method)

    index = np.arange(len(r))
    order = np.lexsort((-q, r))  # by rate, higher quality first on ties
    r, q, index = r[order], q[order], index[order]
    if convex_hull:
        keep = upper_hull_mask(r, q)
        if not keep.all():
            removed = ", ".join(
                f"point {index[i]} (rate={_fmt(r[i])}, quality={_fmt(q[i])})" for i in np.flatnonzero(~keep)
            )
            warnings.warn(
                f"{who}: convex_hull=True removed {int((~keep).sum())} of {len(r)} points off the upper "
                f"convex hull of (rate, quality): {removed}",
                ConvexHullWarning,
                stacklevel=4,
            )
        r, q, index = r[keep], q[keep], index[keep]
        _check_count(len(r), who + " (after convex hull)", method)

    for k in range(1, len(r)):
        a, b = k - 1, k
        if r[b] == r[a]:
            i, j = sorted((a, b), key=lambda p: index[p])
            raise BDError(
                f"{who}: points {index[i]} and {index[j]} have the same rate {_fmt(r[a])} "
                f"(qualities {_fmt(q[i])} and {_fmt(q[j])}); a curve needs one quality per rate"
            )
        if q[b] <= q[a]:
            raise BDError(
                f"{who}: curve is not monotonic: point {index[b]} (rate={_fmt(r[b])}, quality={_fmt(q[b])}) "
                f"does not have a higher quality than point {index[a]} (rate={_fmt(r[a])}, "
                f"quality={_fmt(q[a])}), which has a lower rate. Quality must strictly increase with rate; "
                "fix the data or pass convex_hull=True to drop such points explicitly"
            )
    return r, q


def _check_count(n: int, who: str, method: str) -> None:
    need, why = MIN_POINTS[method]
    if n < need:
        others = "; ".join(f"{m} needs {k}" for m, (k, _) in MIN_POINTS.items())
        raise BDError(f"{who}: {n} point(s), but method {method!r} needs at least {need} ({why}); {others}")


def upper_hull_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Points of (x, y) — sorted by x — on the rising part of the upper convex hull.

    A point is dropped when it lies strictly below the chord between its hull neighbours, when it
    shares an x with a higher point, or when a point with lower x has a quality at least as high
    (it is dominated: more rate for no gain). Collinear points on the hull are kept.

    BD uses it with x = rate (linear), the operational rate-distortion hull: a point below the
    chord of its neighbours is beaten by time-sharing between them. In (log rate, quality) the
    hull would be the wrong tool: typical curves are convex there (PSNR rises faster than
    linearly in log rate, e.g. the JCTVC-E137 anchor), so it would drop valid interior points.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    hull: list[int] = []
    for i in range(len(x)):
        if hull and x[i] == x[hull[-1]]:
            continue  # same x: the earlier (higher, by the caller's sort) point wins
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            cross = (x[a] - x[o]) * (y[i] - y[o]) - (y[a] - y[o]) * (x[i] - x[o])
            if cross > 0:  # a lies strictly below the chord o -> i
                hull.pop()
            else:
                break
        hull.append(i)
    # Keep the rising part only: after the highest point the hull descends (dominated points).
    top = max(range(len(hull)), key=lambda k: (y[hull[k]], -k))
    mask = np.zeros(len(x), dtype=bool)
    mask[hull[: top + 1]] = True
    return mask


# --------------------------------------------------------------------------------------------
# Core computation
# --------------------------------------------------------------------------------------------


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Exact integral over [lo, hi] of the method's interpolant (or fit) of y(x)."""
    if method == "pchip":
        return float(PchipInterpolator(x, y).integrate(lo, hi))
    if method == "akima":
        return float(Akima1DInterpolator(x, y).integrate(lo, hi))
    # cubic: least-squares polynomial (interpolating for exactly 4 points); Polynomial.fit scales
    # x to [-1, 1] internally, which keeps the fit well conditioned for x in dB.
    antiderivative = np.polynomial.Polynomial.fit(x, y, 3).integ()
    return float(antiderivative(hi) - antiderivative(lo))


def _overlap(a: np.ndarray, b: np.ndarray, axis: str) -> tuple[float, float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if hi <= lo:
        raise BDError(
            f"curves do not overlap in {axis}: anchor spans [{_fmt(a.min())}, {_fmt(a.max())}], "
            f"test spans [{_fmt(b.min())}, {_fmt(b.max())}]"
        )
    shorter = min(a.max() - a.min(), b.max() - b.min())
    return float(lo), float(hi), float((hi - lo) / shorter)


def bd(
    rate_anchor: Sequence[float] | np.ndarray,
    dist_anchor: Sequence[float] | np.ndarray,
    rate_test: Sequence[float] | np.ndarray,
    dist_test: Sequence[float] | np.ndarray,
    kind: Kind = "rate",
    method: Method = "pchip",
    convex_hull: bool = False,
    *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    log_base: float = 10.0,
) -> BDResult:
    """BD-rate (``kind="rate"``) or BD-quality (``kind="quality"``) with its overlap and interval."""
    _check_method(method)
    if kind not in ("rate", "quality"):
        raise BDError(f"unknown BD kind {kind!r}; use 'rate' or 'quality'")
    if not (log_base > 0 and log_base != 1):
        raise BDError(f"log_base must be positive and not 1, got {log_base}")
    ra, qa = _prepare(rate_anchor, dist_anchor, "anchor", method, convex_hull)
    rt, qt = _prepare(rate_test, dist_test, "test", method, convex_hull)
    la, lt = np.log(ra) / math.log(log_base), np.log(rt) / math.log(log_base)

    if kind == "rate":  # log rate as a function of quality, averaged over the common quality range
        lo, hi, frac = _overlap(qa, qt, "quality")
        diff = (_integral(qt, lt, lo, hi, method) - _integral(qa, la, lo, hi, method)) / (hi - lo)
        value = (log_base**diff - 1.0) * 100.0
    else:  # quality as a function of log rate, averaged over the common log-rate range
        lo, hi, frac = _overlap(la, lt, "log rate")
        value = (_integral(lt, qt, lo, hi, method) - _integral(la, qa, lo, hi, method)) / (hi - lo)

    if frac < min_overlap:
        warnings.warn(
            f"low overlap for BD-{kind}: the curves share {frac:.1%} of the shorter curve's range "
            f"(interval [{_fmt(lo)}, {_fmt(hi)}]; warning threshold {min_overlap:.0%})",
            LowOverlapWarning,
            stacklevel=2,
        )
    return BDResult(
        value=float(value),
        kind=kind,
        method=method,
        overlap=frac,
        interval=(lo, hi),
        n_anchor=len(ra),
        n_test=len(rt),
    )


def bd_rate(
    rate_anchor: Sequence[float] | np.ndarray,
    dist_anchor: Sequence[float] | np.ndarray,
    rate_test: Sequence[float] | np.ndarray,
    dist_test: Sequence[float] | np.ndarray,
    method: Method = "pchip",
    convex_hull: bool = False,
    *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    log_base: float = 10.0,
) -> float:
    """Average rate difference of test vs anchor at equal quality, in percent (negative = saving)."""
    return bd(
        rate_anchor, dist_anchor, rate_test, dist_test, "rate", method, convex_hull,
        min_overlap=min_overlap, log_base=log_base,
    ).value


def bd_quality(
    rate_anchor: Sequence[float] | np.ndarray,
    dist_anchor: Sequence[float] | np.ndarray,
    rate_test: Sequence[float] | np.ndarray,
    dist_test: Sequence[float] | np.ndarray,
    method: Method = "pchip",
    convex_hull: bool = False,
    *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    log_base: float = 10.0,
) -> float:
    """Average quality difference of test vs anchor at equal rate (dB for PSNR; positive = better)."""
    return bd(
        rate_anchor, dist_anchor, rate_test, dist_test, "quality", method, convex_hull,
        min_overlap=min_overlap, log_base=log_base,
    ).value


def bd_curves(anchor: Curve, test: Curve, kind: Kind = "rate", method: Method = "pchip", **kw: Any) -> BDResult:
    """:func:`bd` on two :class:`Curve` objects."""
    return bd(anchor.rate, anchor.quality, test.rate, test.quality, kind, method, **kw)


# --------------------------------------------------------------------------------------------
# Dataset-level helpers (per-image rows -> curves -> BD)
# --------------------------------------------------------------------------------------------


def _require_columns(df: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BDError(f"{who}: missing column(s) {missing}; have {list(df.columns)}")


def _check_grid(df: pd.DataFrame, who: str, rate_label: str, image: str) -> set:
    """Each (rate label, image) appears once and every rate label covers the same images."""
    dup = df.duplicated([rate_label, image], keep=False)
    if dup.any():
        row = df[dup].iloc[0]
        raise BDError(
            f"{who}: {int(dup.sum())} rows repeat a (rate label, image) pair, e.g. ({row[rate_label]!r}, "
            f"{row[image]!r}); filter to one device/resolution/run before averaging"
        )
    images = set(df[image])
    for label, group in df.groupby(rate_label, sort=False):
        missing = images - set(group[image])
        if missing:
            raise BDError(
                f"{who}: rate point {label!r} lacks {len(missing)} of {len(images)} images "
                f"(e.g. {sorted(map(str, missing))[:3]}); an average over different images is biased"
            )
    return images


def average_curve(
    df: pd.DataFrame,
    quality: str = "psnr_rgb",
    *,
    rate: str = "bpp",
    rate_label: str = "rate_label",
    image: str = "image",
) -> pd.DataFrame:
    """Dataset-average curve: mean rate and mean quality per rate point over the same images.

    Quality is averaged as given (e.g. mean of per-image PSNR, as CompressAI and most papers do —
    not PSNR of the mean MSE). Returns columns ``rate_label, <rate>, <quality>, n_images``,
    sorted by rate. Raises :class:`BDError` when a rate point misses an image or a pair repeats.
    """
    _require_columns(df, [rate_label, image, rate, quality], "average_curve")
    if df.empty:
        raise BDError("average_curve: no rows")
    for col in (rate, quality):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            row = df.iloc[int(bad[0])]
            raise BDError(
                f"average_curve: {bad.size} row(s) have a missing or non-finite {col!r}, e.g. image "
                f"{row[image]!r} at rate point {row[rate_label]!r} ({df[col].iloc[int(bad[0])]!r}); "
                "an average would silently skip or be dominated by them"
            )
    _check_grid(df, "average_curve", rate_label, image)
    out = (
        df.groupby(rate_label, sort=False)
        .agg(**{rate: (rate, "mean"), quality: (quality, "mean"), "n_images": (image, "size")})
        .reset_index()
        .sort_values(rate, kind="stable")
        .reset_index(drop=True)
    )
    return out


def curve_of(
    source: Curve | HasCurve | pd.DataFrame | tuple[Sequence[float], Sequence[float]],
    quality: str = "psnr_rgb",
    label: str = "",
    **columns: str,
) -> Curve:
    """A :class:`Curve` from a Curve, an anchor (``.curve(quality)``), per-image rows or (rate, quality)."""
    if isinstance(source, Curve):
        return source
    if isinstance(source, pd.DataFrame):
        avg = average_curve(source, quality, **columns)
        return Curve(avg[columns.get("rate", "bpp")].to_numpy(), avg[quality].to_numpy(), label)
    if isinstance(source, HasCurve):
        return source.curve(quality)
    if isinstance(source, tuple) and len(source) == 2:
        return Curve(source[0], source[1], label)
    raise BDError(f"cannot make a curve from {type(source).__name__}")


def average_curve_bd(
    test_df: pd.DataFrame,
    anchor: Curve | HasCurve | pd.DataFrame,
    quality: str = "psnr_rgb",
    *,
    kind: Kind = "rate",
    method: Method = "pchip",
    convex_hull: bool = False,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    rate: str = "bpp",
    rate_label: str = "rate_label",
    image: str = "image",
) -> BDResult:
    """BD of the test rows' dataset-average curve against the anchor's (``average-curve``).

    ``anchor`` may be a published curve (Curve or anchor object) or per-image rows of the anchor
    codec; rows must then cover the same images as the test rows.
    """
    cols = {"rate": rate, "rate_label": rate_label, "image": image}
    test_avg = average_curve(test_df, quality, **cols)
    if isinstance(anchor, pd.DataFrame):
        _require_columns(anchor, [image], "anchor rows")
        a_images, t_images = set(anchor[image]), set(test_df[image])
        if a_images != t_images:
            raise BDError(
                f"anchor rows cover {len(a_images)} images and test rows {len(t_images)}, "
                f"differing in {sorted(map(str, a_images ^ t_images))[:5]}; compare on the same images"
            )
    anchor_curve = curve_of(anchor, quality, "anchor", **cols)
    try:
        result = bd(
            anchor_curve.rate, anchor_curve.quality, test_avg[rate].to_numpy(), test_avg[quality].to_numpy(),
            kind, method, convex_hull, min_overlap=min_overlap,
        )
    except BDError as exc:  # say which rate labels the average curve's point numbers are
        labels = ", ".join(f"{i}={lab}" for i, lab in enumerate(test_avg[rate_label]))
        raise BDError(f"{exc} [test = average curve; points by rate label: {labels}]") from None
    return replace(result, averaging=AVERAGE_CURVE, n_images=int(test_avg["n_images"].iloc[0]))


def mean_of_per_image_bd(
    test_df: pd.DataFrame,
    anchor_df: pd.DataFrame,
    quality: str = "psnr_rgb",
    *,
    kind: Kind = "rate",
    method: Method = "pchip",
    convex_hull: bool = False,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    rate: str = "bpp",
    rate_label: str = "rate_label",
    image: str = "image",
) -> BDResult:
    """Arithmetic mean of per-image BD values, each image's test curve vs its own anchor curve.

    Both frames hold per-image rows over the same images. Any image whose BD fails raises
    :class:`BDError` naming it (a mean over a silent subset would be biased).
    """
    if not isinstance(anchor_df, pd.DataFrame):
        raise BDError(
            "mean-of-per-image needs per-image anchor rows (a DataFrame); a published curve is a "
            "dataset average and only supports 'average-curve'"
        )
    for who, frame in (("test rows", test_df), ("anchor rows", anchor_df)):
        _require_columns(frame, [rate_label, image, rate, quality], who)
        if frame.empty:
            raise BDError(f"{who}: no rows")
    t_images, a_images = set(test_df[image]), set(anchor_df[image])
    if t_images != a_images:
        raise BDError(
            f"anchor rows cover {len(a_images)} images and test rows {len(t_images)}, differing in "
            f"{sorted(map(str, a_images ^ t_images))[:5]}; compare on the same images"
        )
    per_image: dict[str, float] = {}
    overlaps, failures = [], []
    n_a = n_t = 0
    for name, t in test_df.groupby(image, sort=True):
        a = anchor_df[anchor_df[image] == name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LowOverlapWarning)  # summarised below
                res = bd(a[rate], a[quality], t[rate], t[quality], kind, method, convex_hull, min_overlap=0.0)
        except BDError as exc:
            failures.append(f"{name}: {exc}")
            continue
        per_image[str(name)] = res.value
        overlaps.append(res.overlap)
        n_a, n_t = max(n_a, res.n_anchor), max(n_t, res.n_test)
    if failures:
        raise BDError(f"per-image BD failed for {len(failures)} of {len(t_images)} images: " + " | ".join(failures))
    low = [n for n, o in zip(per_image, overlaps) if o < min_overlap]
    if low:
        warnings.warn(
            f"low overlap for BD-{kind} on {len(low)} of {len(per_image)} images (below {min_overlap:.0%}): "
            f"{low[:5]}",
            LowOverlapWarning,
            stacklevel=2,
        )
    values = np.array(list(per_image.values()))
    return BDResult(
        value=float(values.mean()),
        kind=kind,
        method=method,
        overlap=float(min(overlaps)),
        interval=(float("nan"), float("nan")),
        n_anchor=n_a,
        n_test=n_t,
        averaging=MEAN_OF_PER_IMAGE,
        n_images=len(per_image),
        per_image=per_image,
    )


def dataset_bd(
    test_df: pd.DataFrame,
    anchor: Curve | HasCurve | pd.DataFrame,
    quality: str = "psnr_rgb",
    averaging: Averaging = AVERAGE_CURVE,
    **kw: Any,
) -> BDResult:
    """BD of per-image test rows against an anchor under the named averaging convention."""
    if averaging == AVERAGE_CURVE:
        return average_curve_bd(test_df, anchor, quality, **kw)
    if averaging == MEAN_OF_PER_IMAGE:
        return mean_of_per_image_bd(test_df, anchor, quality, **kw)  # type: ignore[arg-type]
    raise BDError(f"unknown averaging {averaging!r}; choose one of {', '.join(AVERAGINGS)}")


# --------------------------------------------------------------------------------------------
# Table over codecs
# --------------------------------------------------------------------------------------------

UNTRAINED_REASON = "untrained weights (trained=0): valid for complexity measurements only, not for rate-distortion"
DEFAULT_GROUP_BY: tuple[str, ...] = ("codec", "resolution", "device")


def bd_table(
    df: pd.DataFrame,
    anchor_curve: Curve | HasCurve | pd.DataFrame,
    quality: str = "psnr_rgb",
    method: Method = "pchip",
    averaging: Averaging = AVERAGE_CURVE,
    *,
    convex_hull: bool = False,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
    anchor_name: str = "",
) -> pd.DataFrame:
    """One row per codec (per ``group_by`` group) of BD-rate and BD-quality against one anchor.

    ``df`` holds store measurement rows of ONE dataset (columns ``codec, rate_label, image, bpp``,
    the quality column, and optionally ``status``, ``trained``, ``resolution``, ``device``,
    ``dataset``). Grouping keys absent from ``df`` are ignored. Rows with ``status != 'ok'`` are
    left out and counted (``n_error_rows``); groups with ``trained == 0`` are excluded with a
    reason. A group whose BD fails gets ``status='error'`` and the message in ``reason``; other
    groups are unaffected. Warnings (low overlap, convex hull) are collected per row.

    Argument mistakes (unknown method/averaging, missing columns, several datasets, a published
    curve with ``mean-of-per-image``) raise :class:`BDError`.
    """
    _check_method(method)
    if averaging not in AVERAGINGS:
        raise BDError(f"unknown averaging {averaging!r}; choose one of {', '.join(AVERAGINGS)}")
    _require_columns(df, ["codec", "rate_label", "image", "bpp", quality], "bd_table")
    if averaging == MEAN_OF_PER_IMAGE and not isinstance(anchor_curve, pd.DataFrame):
        raise BDError(
            "mean-of-per-image needs per-image anchor rows (a DataFrame); a published curve only "
            "supports 'average-curve'"
        )
    if "dataset" in df.columns and df["dataset"].nunique() > 1:
        raise BDError(
            f"bd_table compares against one anchor, i.e. one dataset; rows span {sorted(df['dataset'].unique())}"
        )
    keys = [k for k in group_by if k in df.columns]
    if "codec" not in keys:
        keys.insert(0, "codec")
    if isinstance(anchor_curve, pd.DataFrame):  # store rows: their dataset column, if it is one dataset
        datasets = anchor_curve["dataset"].unique() if "dataset" in anchor_curve.columns else []
        anchor_dataset = datasets[0] if len(datasets) == 1 else None
    else:
        anchor_dataset = getattr(anchor_curve, "dataset", None)
    anchor_label = anchor_name or getattr(anchor_curve, "name", "") or getattr(anchor_curve, "label", "")
    if isinstance(anchor_curve, pd.DataFrame):
        anchor_obj: Curve | HasCurve | pd.DataFrame = anchor_curve
        if "codec" in anchor_curve.columns and anchor_curve["codec"].nunique() > 1:
            raise BDError(f"anchor rows hold several codecs {sorted(anchor_curve['codec'].unique())}; pass one")
        if "trained" in anchor_curve.columns and (anchor_curve["trained"] == 0).any():
            raise BDError(f"anchor rows: {UNTRAINED_REASON}")
        if "status" in anchor_curve.columns:
            anchor_obj = anchor_curve[anchor_curve["status"] == "ok"]
    else:
        anchor_obj = curve_of(anchor_curve, quality)  # fail fast if the anchor lacks this quality

    rows = []
    for key_values, group in df.groupby(keys, sort=True, dropna=False):
        key_values = key_values if isinstance(key_values, tuple) else (key_values,)
        row: dict[str, Any] = dict(zip(keys, key_values))
        row.update(
            anchor=anchor_label, quality=quality, method=method, averaging=averaging,
            bd_rate_pct=np.nan, bd_quality=np.nan, overlap=np.nan, overlap_rate=np.nan,
            n_points=np.nan, n_anchor_points=np.nan, n_images=np.nan, n_error_rows=0,
            status="ok", reason="", warnings="",
        )
        rows.append(row)
        if "trained" in group.columns and (group["trained"] == 0).any():
            row.update(status="excluded", reason=UNTRAINED_REASON)
            continue
        if "status" in group.columns:
            row["n_error_rows"] = int((group["status"] != "ok").sum())
            group = group[group["status"] == "ok"]
        if group.empty:
            row.update(status="error", reason="no successful measurement rows")
            continue
        notes: list[str] = []
        if anchor_dataset and "dataset" in group.columns and group["dataset"].iloc[0] != anchor_dataset:
            notes.append(f"rows are dataset {group['dataset'].iloc[0]!r}, anchor is {anchor_dataset!r}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                r = dataset_bd(group, anchor_obj, quality, averaging, kind="rate", method=method,
                               convex_hull=convex_hull, min_overlap=min_overlap)
                q = dataset_bd(group, anchor_obj, quality, averaging, kind="quality", method=method,
                               convex_hull=convex_hull, min_overlap=min_overlap)
            except ValueError as exc:  # BDError, or scipy rejecting the data
                row.update(status="error", reason=str(exc))
                r = q = None
        notes.extend(dict.fromkeys(str(w.message) for w in caught))  # de-duplicated, in order
        row["warnings"] = " | ".join(notes)
        if r is not None and q is not None:
            row.update(
                bd_rate_pct=r.value, bd_quality=q.value, overlap=r.overlap, overlap_rate=q.overlap,
                n_points=r.n_test, n_anchor_points=r.n_anchor, n_images=r.n_images,
            )
    return pd.DataFrame(rows)
