"""Tables over codecs: BD with bootstrap intervals, sensitivity to the method, the JPEG AI mean.

:func:`bd_table` — one row per codec of BD-rate and BD-quality against one anchor, each with its
bootstrap interval over images; :func:`sensitivity_table` — each codec's BD-rate under every
method and averaging convention side by side; :func:`jpeg_ai_summary` — the mean of the seven
JPEG AI BD-rates under both conventions. Metrics are passed as (column, direction); the tables
know no metric by name except the JPEG AI list. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.bd.averaging import (AVERAGE_CURVE, AVERAGINGS, MEAN_OF_PER_IMAGE, Averaging, _require_columns,
                                         curve_of, dataset_bd)
from bench.analysis.bd.bootstrap import (DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_values,
                                         complete_pair, summarise)
from bench.analysis.bd.core import DEFAULT_MIN_OVERLAP, METHODS, Curve, HasCurve, Method, _check_method
from bench.errors import BDError


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
    higher_is_better: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    incomplete: str = "error",
) -> pd.DataFrame:
    """One row per codec (per ``group_by`` group) of BD-rate and BD-quality against one anchor.

    Each value carries a percentile bootstrap interval over images (``bd_rate_low/high``,
    ``bd_quality_low/high``; ``n_resamples`` draws seeded with ``seed``, recorded in ``ci_*``
    columns; paired when the anchor is per-image rows; ``n_resamples=0`` or ``convex_hull`` gives
    none). ``incomplete="drop"`` leaves images that lack a rate point out of the BD and its interval
    and names them in ``images_left_out``; ``"error"`` makes such a codec an error row.

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
    if incomplete not in ("error", "drop"):
        raise BDError(f"incomplete must be 'error' or 'drop', got {incomplete!r}")
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
            status="ok", reason="", warnings="", **_empty_ci(n_resamples, seed, level),
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
        target = anchor_obj
        if incomplete == "drop":
            group, target, left_out = complete_pair(group, anchor_obj, quality)
            row["images_left_out"] = "; ".join(f"{k}: {v}" for k, v in left_out.items())
            if group.empty:
                row.update(status="error", reason=f"no image has every rate point ({row['images_left_out']})")
                continue
        kw = dict(method=method, convex_hull=convex_hull, min_overlap=min_overlap, higher_is_better=higher_is_better)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                r = dataset_bd(group, target, quality, averaging, kind="rate", **kw)
                q = dataset_bd(group, target, quality, averaging, kind="quality", **kw)
            except ValueError as exc:  # BDError, or scipy rejecting the data
                row.update(status="error", reason=str(exc))
                r = q = None
        notes.extend(dict.fromkeys(str(w.message) for w in caught))  # de-duplicated, in order
        row["warnings"] = " | ".join(notes)
        if r is None or q is None:
            continue
        row.update(
            bd_rate_pct=r.value, bd_quality=q.value, overlap=r.overlap, overlap_rate=q.overlap,
            n_points=r.n_test, n_anchor_points=r.n_anchor, n_images=r.n_images,
        )
        if n_resamples and not convex_hull:
            try:
                for kind, prefix in (("rate", "bd_rate"), ("quality", "bd_quality")):
                    values, images, paired = bootstrap_values(group, target, quality, averaging, kind=kind,
                                                              method=method, n_resamples=n_resamples, seed=seed,
                                                              higher_is_better=higher_is_better)
                    interval = summarise(values, len(images), paired, seed, level)
                    row.update({f"{prefix}_low": interval.low, f"{prefix}_high": interval.high})
                row.update(ci_paired=interval.paired, ci_failed=interval.n_failed, ci_note=interval.note)
            except BDError as exc:  # the value stands; say why it has no interval
                row["ci_note"] = f"no interval: {exc}"
        elif convex_hull:
            row["ci_note"] = "no interval with convex_hull=True (each resample would need its own hull)"
    return pd.DataFrame(rows)


def _empty_ci(n_resamples: int, seed: int, level: float) -> dict[str, Any]:
    return dict(bd_rate_low=np.nan, bd_rate_high=np.nan, bd_quality_low=np.nan, bd_quality_high=np.nan,
                ci_level=level, ci_resamples=n_resamples, ci_seed=seed, ci_paired=False, ci_failed=0, ci_note="",
                images_left_out="")


# --- sensitivity -----------------------------------------------------------------------------------

def sensitivity_table(
    df: pd.DataFrame,
    anchor: Curve | HasCurve | pd.DataFrame,
    quality: str = "psnr_rgb",
    *,
    higher_is_better: bool = True,
    group_by: Sequence[str] = ("codec", "device"),
    anchor_name: str = "",
) -> pd.DataFrame:
    """Each codec's BD-rate under every method and averaging convention, side by side.

    Columns ``<method> / <averaging>`` (``mean-of-per-image`` only when the anchor is per-image
    rows) and ``spread`` (largest minus smallest of them): how much the choice moves the number.
    Images lacking a rate point are left out as in :func:`bd_table` (``incomplete="drop"``).
    """
    averagings = AVERAGINGS if isinstance(anchor, pd.DataFrame) else (AVERAGE_CURVE,)
    wide: pd.DataFrame | None = None
    columns = []
    for averaging in averagings:
        for method in METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # bd_table records them; the main table shows them
                table = bd_table(df, anchor, quality, method, averaging, group_by=group_by, anchor_name=anchor_name,
                                 higher_is_better=higher_is_better, n_resamples=0, incomplete="drop")
            keys = [c for c in table.columns if c in group_by or c == "codec"]
            column = f"{method} / {averaging}"
            columns.append(column)
            part = table[keys + ["status"]].assign(**{column: table["bd_rate_pct"].where(table["status"] == "ok")})
            part = part.drop(columns="status")
            wide = part if wide is None else wide.merge(part, on=keys, how="outer")
    assert wide is not None
    values = wide[columns].to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (excluded codecs)
        wide["spread"] = np.nanmax(values, axis=1) - np.nanmin(values, axis=1)
    wide.insert(len(keys), "quality", quality)
    return wide


# --- JPEG AI summary -------------------------------------------------------------------------------

#: The seven objective metrics whose BD-rates JPEG AI averages (JPEG AI CTC; the reference
#: software's ``report_bdrate_results.py`` averages exactly these: msssim_Torch, vif, fsim, nlpd,
#: iw_ssim, vmaf, psnrHVS).
JPEG_AI_METRICS: tuple[str, ...] = ("MS-SSIM", "VIF", "FSIM", "NLPD", "IW-SSIM", "VMAF", "PSNR-HVS-M")


def metric_key(name: str) -> str:
    """A metric name compared loosely: ``MS-SSIM``, ``ms_ssim`` and ``msssim`` are one metric."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _has_metric(group: pd.DataFrame, anchor: Any, column: str) -> str:
    """Why ``column`` cannot be used for this codec and anchor ('' when it can)."""
    if column not in group.columns or not np.isfinite(pd.to_numeric(group[column], errors="coerce")).any():
        return "not measured"
    if isinstance(anchor, pd.DataFrame):
        if column not in anchor.columns or not np.isfinite(pd.to_numeric(anchor[column], errors="coerce")).any():
            return "the anchor lacks it"
        return ""
    try:
        curve_of(anchor, column)
    except (BDError, ValueError, KeyError) as exc:  # an anchor file without that column raises its own error
        return f"the anchor lacks it ({str(exc).splitlines()[0][:80]})"
    return ""


def jpeg_ai_summary(
    df: pd.DataFrame,
    anchor: Curve | HasCurve | pd.DataFrame,
    metrics: Mapping[str, tuple[str, bool]],
    *,
    method: Method = "pchip",
    group_by: Sequence[str] = ("codec", "device"),
    expected: Sequence[str] = JPEG_AI_METRICS,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
) -> pd.DataFrame:
    """The mean of the JPEG AI BD-rates per codec, under both averaging conventions, with intervals.

    ``metrics`` maps metric names to ``(bd column, higher_is_better)``; names match ``expected``
    loosely (:func:`metric_key`). A codec lacking any expected metric (or an anchor lacking it) gets
    ``status='incomplete'`` and the missing ones in ``reason``. Otherwise, on the images complete
    for all of them: ``mean-of-per-image`` (JPEG AI: BD per image, mean over images, then over
    metrics; needs per-image anchor rows) and ``average-curve`` (ours); the interval bootstraps the
    mean over metrics with one set of image draws shared by all metrics.
    """
    _require_columns(df, ["codec", "rate_label", "image", "bpp"], "jpeg_ai_summary")
    by_key = {metric_key(n): (n, col, hib) for n, (col, hib) in metrics.items()}
    keys = [k for k in group_by if k in df.columns]
    keys = keys if "codec" in keys else ["codec", *keys]
    averagings = (MEAN_OF_PER_IMAGE, AVERAGE_CURVE) if isinstance(anchor, pd.DataFrame) else (AVERAGE_CURVE,)
    if isinstance(anchor, pd.DataFrame) and "status" in anchor.columns:
        anchor = anchor[anchor["status"] == "ok"]
    rows = []
    for key_values, group in df.groupby(keys, sort=True, dropna=False):
        base = dict(zip(keys, key_values if isinstance(key_values, tuple) else (key_values,)))
        if "trained" in group.columns and (group["trained"] == 0).any():
            continue
        if "status" in group.columns:
            group = group[group["status"] == "ok"]
        missing = []
        for name in expected:
            found = by_key.get(metric_key(name))
            why = "not in the metric list" if found is None else _has_metric(group, anchor, found[1])
            if why:
                missing.append(f"{name} ({why})")
        if missing:
            for averaging in averagings:
                rows.append({**base, "averaging": averaging, "status": "incomplete",
                             "reason": f"missing {len(missing)} of {len(expected)}: " + ", ".join(missing)})
            continue
        chosen = [by_key[metric_key(n)] for n in expected]
        test, target = group, anchor
        for _, column, _ in chosen:  # images complete for every metric, on both sides
            test, target, _ = complete_pair(test, target, column)
        for averaging in averagings:
            rows.append(_jpeg_ai_row(base, test, target, chosen, averaging, method, n_resamples, seed, level))
    return pd.DataFrame(rows)


def _jpeg_ai_row(base: dict, test: pd.DataFrame, anchor: Any, chosen: list, averaging: str, method: str,
                 n_resamples: int, seed: int, level: float) -> dict[str, Any]:
    row: dict[str, Any] = {**base, "averaging": averaging, "method": method, "n_images": test["image"].nunique(),
                           "status": "ok", "reason": "", **_empty_ci(n_resamples, seed, level)}
    points, draws = [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, column, hib in chosen:
                value = dataset_bd(test, anchor, column, averaging, kind="rate", method=method,
                                   higher_is_better=hib).value
                row[f"bd_rate_{metric_key(name)}_pct"] = value
                points.append(value)
                if n_resamples:
                    values, images, paired = bootstrap_values(test, anchor, column, averaging, kind="rate",
                                                              method=method, n_resamples=n_resamples, seed=seed,
                                                              higher_is_better=hib)
                    draws.append(values)
    except (BDError, ValueError) as exc:
        row.update(status="error", reason=f"{name}: {exc}")
        return row
    row["bd_rate_mean_pct"] = float(np.mean(points))
    if draws:
        interval = summarise(np.mean(draws, axis=0), len(images), paired, seed, level)
        row.update(bd_rate_low=interval.low, bd_rate_high=interval.high, ci_paired=interval.paired,
                   ci_failed=interval.n_failed, ci_note=interval.note)
    return row
