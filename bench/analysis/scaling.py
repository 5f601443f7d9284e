"""Complexity scaling fits: how a cost (time, memory) grows with image size.

A power law ``cost = C · pixels**k`` is a straight line in log-log space,
``log(cost) = a + k·log(pixels)``; ordinary least squares (``scipy.stats.linregress``) gives the
exponent ``k`` (1 = linear in pixels), the intercept ``a`` (natural log, so ``C = e**a``) and R².
``k`` does not depend on the log base. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import linregress
from bench.errors import ScalingError

Aggregate = Literal["none", "median", "mean"]



@dataclass(frozen=True)
class PowerLawFit:
    """``log(cost) = intercept + exponent·log(pixels)`` (natural logs), fitted on ``n`` points."""

    exponent: float
    intercept: float
    r2: float
    n: int
    exponent_stderr: float
    n_sizes: int

    def predict(self, pixels: float | np.ndarray) -> float | np.ndarray:
        """Cost the fit predicts at ``pixels``."""
        return np.exp(self.intercept) * np.asarray(pixels, dtype=float) ** self.exponent


def fit_power_law(pixels: Sequence[float] | np.ndarray, cost: Sequence[float] | np.ndarray) -> PowerLawFit:
    """Least-squares fit of ``log(cost)`` on ``log(pixels)``.

    Needs at least two distinct sizes (a slope through one size is undefined); every pixels and
    cost value must be finite and > 0. With two points the line is exact (R² = 1) and the standard
    error is not defined (NaN); R² is NaN when the cost is constant. Check ``n`` and ``n_sizes``
    before trusting ``r2``.
    """
    x = np.asarray(pixels, dtype=float)
    y = np.asarray(cost, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or len(x) != len(y):
        raise ScalingError(f"pixels and cost must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    for name, arr in (("pixels", x), ("cost", y)):
        bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
        if bad.size:
            i = int(bad[0])
            raise ScalingError(f"{name}[{i}] = {arr[i]!r}; a log-log fit needs finite values > 0")
    n_sizes = len(np.unique(x))
    if n_sizes < 2:
        raise ScalingError(
            f"{len(x)} point(s) at {n_sizes} distinct size(s); a scaling exponent needs at least 2 sizes"
        )
    res = linregress(np.log(x), np.log(y))
    # R² is undefined when the cost does not vary at all (0/0); linregress then reports r = 0.
    r2 = float(res.rvalue**2) if np.ptp(y) > 0 else math.nan
    return PowerLawFit(
        exponent=float(res.slope),
        intercept=float(res.intercept),
        r2=r2,
        n=len(x),
        exponent_stderr=float(res.stderr) if len(x) > 2 else math.nan,
        n_sizes=n_sizes,
    )


def fit_power_law_by(
    df: pd.DataFrame,
    cost: str = "enc_time_s",
    *,
    size: str = "pixels",
    by: Sequence[str] = ("codec", "device"),
    aggregate: Aggregate = "none",
) -> pd.DataFrame:
    """:func:`fit_power_law` per group of store rows; one row per group.

    Uses rows with ``status == 'ok'`` when that column exists (untrained codecs are kept: their
    timings are valid). ``aggregate="median"`` (or ``"mean"``) fits one point per size — the
    per-size median is robust to timing outliers; ``"none"`` fits every row. Rows missing the cost
    (NaN, e.g. GPU memory on a CPU run) are left out and counted in ``n_dropped``. A group that
    cannot be fitted gets NaNs and the reason in ``error`` instead of failing the whole table.
    Grouping keys absent from ``df`` are ignored.
    """
    if aggregate not in ("none", "median", "mean"):
        raise ScalingError(f"unknown aggregate {aggregate!r}; use 'none', 'median' or 'mean'")
    missing = [c for c in (size, cost) if c not in df.columns]
    if missing:
        raise ScalingError(f"missing column(s) {missing}; have {list(df.columns)}")
    keys = [k for k in by if k in df.columns]
    rows = df[df["status"] == "ok"] if "status" in df.columns else df
    out: list[dict[str, Any]] = []
    groups = rows.groupby(keys, sort=True, dropna=False) if keys else [((), rows)]
    for key_values, group in groups:
        key_values = key_values if isinstance(key_values, tuple) else (key_values,)
        row: dict[str, Any] = dict(zip(keys, key_values))
        row.update(cost=cost, aggregate=aggregate, exponent=math.nan, intercept=math.nan, r2=math.nan,
                   n=len(group), n_sizes=int(group[size].nunique()), exponent_stderr=math.nan,
                   n_dropped=0, error="")
        points = group[[size, cost]].dropna()
        row["n_dropped"] = len(group) - len(points)  # rows without this cost (e.g. GPU memory on CPU)
        if aggregate != "none":
            points = points.groupby(size, as_index=False)[cost].agg(aggregate)
        try:
            fit = fit_power_law(points[size].to_numpy(), points[cost].to_numpy())
        except ScalingError as exc:
            row["error"] = str(exc)
        else:
            row.update(exponent=fit.exponent, intercept=fit.intercept, r2=fit.r2, n=fit.n,
                       n_sizes=fit.n_sizes, exponent_stderr=fit.exponent_stderr)
        out.append(row)
    return pd.DataFrame(out)


# --- decode scaling: sequential steps and speed-ups over a serial decoder ---------------------------

#: Decode costs of the decode-scaling tables: wall time, process CPU time, sequential steps.
DECODE_COSTS = ("dec_time_s", "dec_cpu_s", "sequential_steps")


def decode_points(ladder: pd.DataFrame) -> pd.DataFrame:
    """Per (codec, device, size): the median over the size's ok ladder rows of decode wall time,
    decode CPU time and sequential decoding steps (NaN where none was recorded: a codec that
    reports no steps, CPU time of a subprocess codec), with the size's ``resolution`` and ``pixels``
    and the number of ``cells``; sorted by codec, device and pixels."""
    columns = ["codec", "device", "resolution", "pixels", "cells", *DECODE_COSTS]
    rows = ladder[ladder["status"] == "ok"] if "status" in ladder.columns else ladder
    if rows.empty:
        return pd.DataFrame(columns=columns)
    values = {c: pd.to_numeric(rows[c], errors="coerce") if c in rows else np.nan for c in DECODE_COSTS}
    frame = rows[["codec", "device", "resolution", "pixels"]].assign(
        **{c: v.where(v > 0) for c, v in values.items()}, cells=1)
    points = frame.groupby(["codec", "device", "resolution", "pixels"], sort=False, dropna=False).agg(
        cells=("cells", "sum"), **{c: (c, "median") for c in DECODE_COSTS}).reset_index()
    return points.sort_values(["codec", "device", "pixels"], kind="stable").reset_index(drop=True)[columns]


def decode_scaling_fits(ladder: pd.DataFrame) -> pd.DataFrame:
    """Per (codec, device): the power-law exponent k of decode wall time, decode CPU time and
    sequential steps against pixels (per-size medians, :func:`fit_power_law_by`), and the steps at
    the smallest and largest size. ``steps_k`` is 0 for a constant number of steps (MSP) and about
    1 for one step per latent position; NaN with the reason in ``error_*`` where it cannot be fitted."""
    points = decode_points(ladder)
    out = []
    for (codec, device), group in points.groupby(["codec", "device"], sort=True):
        row: dict[str, Any] = {"codec": codec, "device": device, "sizes": len(group),
                               "smallest": group["resolution"].iloc[0], "largest": group["resolution"].iloc[-1],
                               "steps_smallest": group["sequential_steps"].iloc[0],
                               "steps_largest": group["sequential_steps"].iloc[-1]}
        for cost, name in zip(DECODE_COSTS, ("dec_time_k", "dec_cpu_k", "steps_k")):
            usable = group[["pixels", cost]].dropna()
            try:
                row[name] = fit_power_law(usable["pixels"].to_numpy(), usable[cost].to_numpy()).exponent
                row[f"error_{name}"] = ""
            except ScalingError as exc:
                row[name], row[f"error_{name}"] = math.nan, str(exc)
        out.append(row)
    return pd.DataFrame(out)


def serial_codecs(points: pd.DataFrame) -> list[tuple[str, str]]:
    """The (codec, device) pairs of :func:`decode_points` whose sequential decoding steps grow with
    the image (more steps at their largest size than at their smallest): serial decoders such as
    mbt2018 (one step per latent position), the references speed-ups are taken against."""
    out = []
    for (codec, device), group in points.groupby(["codec", "device"], sort=True):
        steps = group["sequential_steps"].dropna()
        if len(steps) >= 2 and steps.iloc[-1] > steps.iloc[0]:
            out.append((codec, device))
    return out


def decode_speedups(ladder: pd.DataFrame) -> pd.DataFrame:
    """Each codec's decode speed-up over each serial reference (:func:`serial_codecs`) on the same
    device: at the largest size both decoded, the per-size median decode wall and CPU times of the
    reference and the codec and the ratios reference ÷ codec (> 1: the codec decodes faster).
    Empty without a serial codec; a codec sharing no size with a reference is left out of its rows."""
    columns = ["codec", "device", "resolution", "pixels", "reference", "reference_wall_s", "wall_s", "wall_speedup",
               "reference_cpu_s", "cpu_s", "cpu_speedup"]
    points = decode_points(ladder)
    serial = serial_codecs(points)
    out = []
    for reference, device in serial:
        base = points[(points["codec"] == reference) & (points["device"] == device)].set_index("resolution")
        others = points[(points["device"] == device) & ~points["codec"].isin([c for c, d in serial if d == device])]
        for codec, group in others.groupby("codec", sort=True):
            common = group[group["resolution"].isin(base.index)]
            if common.empty:
                continue
            mine = common.loc[common["pixels"].idxmax()]
            ref = base.loc[mine["resolution"]]
            out.append({"codec": codec, "device": device, "resolution": mine["resolution"], "pixels": mine["pixels"],
                        "reference": reference, "reference_wall_s": ref["dec_time_s"], "wall_s": mine["dec_time_s"],
                        "wall_speedup": ref["dec_time_s"] / mine["dec_time_s"], "reference_cpu_s": ref["dec_cpu_s"],
                        "cpu_s": mine["dec_cpu_s"], "cpu_speedup": ref["dec_cpu_s"] / mine["dec_cpu_s"]})
    return pd.DataFrame(out, columns=columns)
