"""BD core: BD-rate and BD-quality between two rate-distortion curves (see :mod:`bench.analysis.bd`).

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
positive is better. For a metric where lower is better (``higher_is_better=False``,
e.g. NLPD or Butteraugli) the curves are fitted on the negated quality — BD-rate is invariant to
that affine change for every method — and BD-quality is returned in the metric's own units, so it
is then negative when the test codec is better. The log base cancels out in exact arithmetic
(``log_base`` exists to check it).

Everything here is a pure function of its inputs: no I/O.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from scipy.interpolate import Akima1DInterpolator, PchipInterpolator
from bench.errors import BDError

Method = Literal["pchip", "cubic", "akima"]
Kind = Literal["rate", "quality"]

METHODS: tuple[str, ...] = ("pchip", "cubic", "akima")

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
    higher_is_better: bool = True,
) -> BDResult:
    """BD-rate (``kind="rate"``) or BD-quality (``kind="quality"``) with its overlap and interval.

    ``higher_is_better=False`` (a distortion such as NLPD): fitted on the negated quality; BD-quality
    comes back in the metric's own units (negative = test better) and ``interval`` on the negated axis.
    """
    if not higher_is_better:
        dist_anchor = -np.asarray(dist_anchor, dtype=float)
        dist_test = -np.asarray(dist_test, dtype=float)
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
        if not higher_is_better:
            value = -value

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
    higher_is_better: bool = True,
) -> float:
    """Average rate difference of test vs anchor at equal quality, in percent (negative = saving)."""
    return bd(
        rate_anchor, dist_anchor, rate_test, dist_test, "rate", method, convex_hull,
        min_overlap=min_overlap, log_base=log_base, higher_is_better=higher_is_better,
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
    higher_is_better: bool = True,
) -> float:
    """Average quality difference of test vs anchor at equal rate (dB for PSNR; positive = better)."""
    return bd(
        rate_anchor, dist_anchor, rate_test, dist_test, "quality", method, convex_hull,
        min_overlap=min_overlap, log_base=log_base, higher_is_better=higher_is_better,
    ).value


def bd_curves(anchor: Curve, test: Curve, kind: Kind = "rate", method: Method = "pchip", **kw: Any) -> BDResult:
    """:func:`bd` on two :class:`Curve` objects."""
    return bd(anchor.rate, anchor.quality, test.rate, test.quality, kind, method, **kw)

