"""The numbers behind every table and figure of the report, as pandas DataFrames.

Pure functions of the store rows (see :mod:`bench.report.data`) and anchors; no plotting, no I/O.
Each frame here is also written as CSV beside the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.bd import DEFAULT_RESAMPLES, DEFAULT_SEED, BDError, average_curve, bd_table
from bench.analysis.scaling import fit_power_law_by
from bench.report.data import MIB

#: Quality axes of the RD figures: store column → axis label.
QUALITIES: dict[str, str] = {"psnr_rgb": "PSNR-RGB (dB)", "ms_ssim_db": "MS-SSIM (dB)"}

#: Costs of the scaling fits: store column → (label, unit divisor, unit).
COSTS: dict[str, tuple[str, float, str]] = {
    "enc_time_s": ("encode time", 1.0, "s"),
    "dec_time_s": ("decode time", 1.0, "s"),
    "enc_mem_bytes": ("encode memory growth", MIB, "MiB"),
    "dec_mem_bytes": ("decode memory growth", MIB, "MiB"),
}


def series_label(codec: str, device: str, multi_device: bool) -> str:
    """Legend label of one measured codec: the device is named only when a codec ran on several."""
    return f"{codec} ({device})" if multi_device else codec


def _multi_device(rows: pd.DataFrame) -> set[str]:
    counts = rows.groupby("codec")["device"].nunique()
    return set(counts[counts > 1].index)


def complete_images(group: pd.DataFrame, quality: str) -> tuple[pd.DataFrame, int]:
    """Rows of the images present at every rate point with a finite quality; and the image count.

    An average over different image subsets per rate point is biased, so an image missing at
    any rate point (an error cell, MS-SSIM undefined below 161 px) is left out of the curve.
    """
    usable = group[np.isfinite(pd.to_numeric(group[quality], errors="coerce"))]
    labels = group["rate_label"].unique()
    per_image = usable.groupby("image")["rate_label"].nunique()
    images = set(per_image[per_image == len(labels)].index)
    return usable[usable["image"].isin(images)], group["image"].nunique()


def rd_curves(rows: pd.DataFrame, quality: str) -> pd.DataFrame:
    """Dataset-average RD curve of every (dataset, codec, device) over native-resolution rows.

    Columns: ``dataset, codec, device, label, rate_label, bpp, <quality>, n_images, n_images_total``
    (``n_images`` < ``n_images_total`` when some images lacked a rate point and were left out).
    Callers pass trained rows only.
    """
    native = rows[rows["resolution"] == "native"]
    multi = _multi_device(native)
    parts = []
    for (dataset, codec, device), group in native.groupby(["dataset", "codec", "device"], sort=True):
        usable, total = complete_images(group, quality)
        if usable.empty:
            continue
        avg = average_curve(usable, quality)
        avg.insert(0, "label", series_label(codec, device, codec in multi))
        avg.insert(0, "device", device)
        avg.insert(0, "codec", codec)
        avg.insert(0, "dataset", dataset)
        avg["n_images_total"] = total
        parts.append(avg)
    columns = ["dataset", "codec", "device", "label", "rate_label", "bpp", quality, "n_images", "n_images_total"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def anchor_short_name(anchor: Any) -> str:
    """``label [source@commit]`` — the anchor and where its numbers come from, in a few words."""
    where = anchor.source()
    return f"{anchor.label} [{where}]" if where else anchor.label


def anchor_points(anchors: Sequence[Any], quality: str) -> pd.DataFrame:
    """Points of published anchors that carry ``quality``: ``anchor, label, dataset, bpp, <quality>``."""
    parts = []
    for anchor in anchors:
        if quality not in anchor.qualities:
            continue
        parts.append(pd.DataFrame({"anchor": anchor.name, "label": anchor_short_name(anchor), "dataset": anchor.dataset,
                                   "bpp": anchor.values("bpp"), quality: anchor.values(quality)}))
    columns = ["anchor", "label", "dataset", "bpp", quality]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


# --- BD-rate -------------------------------------------------------------------------------------

def short_name(quality: str) -> str:
    """The column stem of a quality in the wide BD table (``psnr_rgb`` → ``psnr``, as the CSV has always had)."""
    return {"psnr_rgb": "psnr", "ms_ssim_db": "msssim"}.get(quality, quality)


def bd_against(rows: pd.DataFrame, errors: pd.DataFrame, anchor: Any, anchor_name: str, method: str,
               averaging: str, qualities: Sequence[Any] = tuple(QUALITIES), n_resamples: int = DEFAULT_RESAMPLES,
               seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """BD-rate and BD-quality, each with its bootstrap interval, of every codec against one anchor, per quality.

    ``rows`` are the dataset's native-resolution ok rows (untrained included: they come out as
    ``excluded``), ``errors`` its error rows (counted per codec). ``anchor`` is a published
    anchor or per-image rows (a measured codec, or a measured anchor's ``per_image`` points).
    ``qualities`` are store columns or metric objects (``bd_column``, ``higher_is_better``).
    Images lacking a rate point are left out and named (``images_left_out_<q>``). A codec whose
    BD fails gets ``status='error'`` and the reason; the table is never aborted by one codec.
    Qualities the anchor lacks are skipped. Wide result: one row per (codec, device).
    """
    frame = pd.concat([rows, errors], ignore_index=True) if len(errors) else rows
    wide: pd.DataFrame | None = None
    for metric in qualities:
        quality = getattr(metric, "bd_column", metric)
        if not anchor_has(anchor, quality):
            continue
        if quality not in frame.columns:
            continue
        table = bd_table(frame, anchor, quality, method, averaging, group_by=("codec", "device"),
                         anchor_name=anchor_name, higher_is_better=getattr(metric, "higher_is_better", True),
                         n_resamples=n_resamples, seed=seed, incomplete="drop")
        short = short_name(quality)
        renamed = {"bd_rate_pct": f"bd_rate_{short}_pct", "bd_quality": f"bd_{short}_db"}
        for column in ("overlap", "status", "reason", "warnings", "n_points", "n_images", "images_left_out",
                       "ci_paired", "ci_failed", "ci_note"):
            renamed[column] = f"{column}_{short}"
        for column in ("bd_rate_low", "bd_rate_high"):
            renamed[column] = column.replace("bd_rate", f"bd_rate_{short}")
        for column in ("bd_quality_low", "bd_quality_high"):
            renamed[column] = column.replace("bd_quality", f"bd_{short}")
        table = table.rename(columns=renamed)
        keep = ["codec", "device", *renamed.values()]
        if wide is None:
            wide = table[["codec", "device", "anchor", "method", "averaging", "n_anchor_points", "n_error_rows",
                          "ci_level", "ci_resamples", "ci_seed", *keep[2:]]]
        else:
            wide = wide.merge(table[keep], on=["codec", "device"], how="outer")
    if wide is None:
        names = [getattr(m, "bd_column", m) for m in qualities]
        raise BDError(f"anchor {anchor_name!r} has none of the qualities {names}; compare with a codec of the store "
                      f"measured with the same metrics instead: --anchor codec:NAME")
    return wide


def anchor_has(anchor: Any, quality: str) -> bool:
    """Whether the BD anchor (per-image rows or a published curve) has values of ``quality``."""
    if isinstance(anchor, pd.DataFrame):
        return quality in anchor.columns and bool(pd.to_numeric(anchor[quality], errors="coerce").notna().any())
    return quality in anchor.qualities


def measured_anchor(rows: pd.DataFrame, codec: str) -> pd.DataFrame:
    """Per-image rows of a measured codec used as the BD anchor (``--anchor codec:NAME``)."""
    anchor = rows[(rows["codec"] == codec) & (rows["resolution"] == "native")]
    if anchor.empty:
        known = ", ".join(sorted(rows["codec"].unique()))
        raise BDError(f"no native-resolution rows of codec {codec!r} to use as anchor (codecs: {known})")
    if anchor["device"].nunique() > 1:
        anchor = anchor[anchor["device"] == sorted(anchor["device"].unique())[0]]
    return anchor


# --- complexity ----------------------------------------------------------------------------------

def complexity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Encode/decode time and memory per codec, device, machine class, dataset and resolution.

    Times: median over the cells (each cell's value is already the median of its repeats).
    Memory, from the clean-process readings (:mod:`bench.memory`), the largest value over the cells
    that have one (``mem_cells`` of them; a peak is a peak): ``*_mem_mib`` the call's growth over
    the RSS right before it, ``*_mem_peak_mib`` that clean process's whole peak RSS, ``model_mib``
    a learned codec's parameters + buffers; ``*_gpu_peak_mib`` the CUDA allocator's peak (NaN on
    CPU). The worker's own peak RSS (``*_peak_rss_bytes``, mostly the worker) is not shown.
    kMAC/pixel (learned codecs, counted by :mod:`bench.complexity`) and the decoder's achieved
    fraction of the matmul rate: medians.
    """
    agg = {
        "cells": ("image", "size"),
        "megapixels": ("megapixels", "median"),
        "enc_time_s": ("enc_time_s", "median"),
        "dec_time_s": ("dec_time_s", "median"),
        "mem_cells": ("dec_mem_bytes", "count"),
        "enc_mem_mib": ("enc_mem_bytes", "max"),
        "dec_mem_mib": ("dec_mem_bytes", "max"),
        "enc_mem_peak_mib": ("enc_mem_peak_bytes", "max"),
        "dec_mem_peak_mib": ("dec_mem_peak_bytes", "max"),
        "model_mib": ("model_bytes", "max"),
        "enc_gpu_peak_mib": ("enc_gpu_peak_bytes", "max"),
        "dec_gpu_peak_mib": ("dec_gpu_peak_bytes", "max"),
        "enc_kmac_per_px": ("enc_kmac_per_px", "median"),
        "dec_kmac_per_px": ("dec_kmac_per_px", "median"),
        "params": ("params", "max"),
        "dec_matmul_fraction": ("dec_matmul_fraction", "median"),
        "timer": ("timer", "first"),
    }
    numeric = add_arithmetic_rate(rows)
    for col in ("enc_mem_peak_bytes", "dec_mem_peak_bytes", "model_bytes", "enc_gpu_peak_bytes", "dec_gpu_peak_bytes"):
        numeric[col] = pd.to_numeric(numeric[col], errors="coerce") if col in numeric else np.nan
    out = numeric.groupby(["codec", "device", "machine", "dataset", "resolution"], sort=True).agg(**agg).reset_index()
    for col in out.columns:
        if col.endswith("_mib"):
            out[col] = out[col] / MIB
    out["_native"] = out["resolution"] != "native"  # native rows first, then the ladder by size
    out = out.sort_values(["codec", "device", "machine", "_native", "megapixels"]).drop(columns="_native")
    return out.reset_index(drop=True)


def add_arithmetic_rate(rows: pd.DataFrame) -> pd.DataFrame:
    """A copy with numeric kMAC columns and ``dec_matmul_fraction``: the decoder's counted
    multiply-adds per second (2 FLOPs each) over the matmul rate timed in the same worker.

    NaN where a column is missing (classical codecs, older stores)."""
    out = rows.copy()
    for col in ("enc_kmac_per_px", "dec_kmac_per_px", "params", "matmul_gflops", "dec_time_s", "pixels"):
        out[col] = pd.to_numeric(out[col], errors="coerce") if col in out else math.nan
    flops_per_s = out["dec_kmac_per_px"] * 2e3 * out["pixels"] / out["dec_time_s"]
    out["dec_matmul_fraction"] = flops_per_s / (out["matmul_gflops"] * 1e9)
    return out


def scaling_points(ladder: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Per (codec, device, size) median of ``cost`` over the ladder images: the plotted points.

    Cells without a value (memory not measured for that cell) and non-positive values (which
    cannot go on a log axis) are left out and counted in ``n_dropped``.
    """
    values = pd.to_numeric(ladder[cost], errors="coerce")
    usable = ladder.assign(_v=values)
    dropped = usable[~(usable["_v"] > 0)].groupby(["codec", "device", "pixels"]).size()
    usable = usable[usable["_v"] > 0]
    out = (usable.groupby(["codec", "device", "pixels"], sort=True)
           .agg(resolution=("resolution", "first"), value=("_v", "median"), n=("_v", "size")).reset_index())
    out["megapixels"] = out["pixels"] / 1e6
    out["cost"] = cost
    out["n_dropped"] = [int(dropped.get((c, d, p), 0)) for c, d, p in zip(out["codec"], out["device"], out["pixels"])]
    return out[["codec", "device", "cost", "resolution", "pixels", "megapixels", "value", "n", "n_dropped"]]


def scaling_fits(ladder: pd.DataFrame, costs: Sequence[str] = tuple(COSTS)) -> pd.DataFrame:
    """Power-law fit ``cost ∝ pixels^k`` per codec and device, one row per (codec, device, cost).

    Fitted on the per-size medians (robust to a slow outlier image), positive values only.
    """
    parts = []
    for cost in costs:
        points = ladder.assign(**{cost: pd.to_numeric(ladder[cost], errors="coerce")})
        points = points[points[cost] > 0]
        fits = fit_power_law_by(points, cost, by=("codec", "device"), aggregate="median")
        if fits.empty:
            continue
        total = ladder.groupby(["codec", "device"]).size()
        kept = points.groupby(["codec", "device"]).size()
        fits["n_dropped"] = [int(total.get(k, 0)) - int(kept.get(k, 0)) for k in zip(fits["codec"], fits["device"])]
        parts.append(fits)
    columns = ["codec", "device", "cost", "exponent", "intercept", "r2", "n_sizes", "n", "exponent_stderr",
               "n_dropped", "error"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


# --- trade-off -----------------------------------------------------------------------------------

def tradeoff(bd: pd.DataFrame, native: pd.DataFrame, adapters: dict[str, str],
             metrics: Sequence[Any] = ()) -> pd.DataFrame:
    """Decode time and kMAC/pixel vs BD-rate per codec:
    ``codec, device, family, dec_time_s, dec_kmac_per_px, bd_rate_pct, bd_metric``.

    The BD-rate is PSNR-RGB's when the table has it, else that of the first of ``metrics`` (registry
    objects, declared order) it has — a store measured with ``--metrics jpeg-ai`` alone has no
    PSNR-RGB; ``bd_metric`` names it. Decode time and kMAC/pixel (NaN for classical codecs) are
    medians over the dataset's native cells (all rate points and images); ``family`` is the codec's
    adapter, so profiles of one codec (e.g. JPEG 4:2:0 and 4:4:4) share a marker. Codecs without a
    BD-rate (error, untrained) are left out.
    """
    columns = ["codec", "device", "family", "dec_time_s", "dec_kmac_per_px", "bd_rate_pct", "bd_metric"]
    candidates = [("psnr_rgb", "PSNR-RGB")] + [(m.bd_column, m.label) for m in metrics]
    chosen = next(((short_name(q), label) for q, label in candidates if f"bd_rate_{short_name(q)}_pct" in bd), None)
    if chosen is None:
        return pd.DataFrame(columns=columns)
    short, label = chosen
    ok = bd[(bd.get(f"status_{short}") == "ok") & bd[f"bd_rate_{short}_pct"].notna()]
    medians = add_arithmetic_rate(native).groupby(["codec", "device"])[["dec_time_s", "dec_kmac_per_px"]].median()
    rows = []
    for _, r in ok.iterrows():
        key = (r["codec"], r["device"])
        t, k = (medians.loc[key, "dec_time_s"], medians.loc[key, "dec_kmac_per_px"]) if key in medians.index \
            else (math.nan, math.nan)
        rows.append({"codec": r["codec"], "device": r["device"], "family": adapters.get(r["codec"], r["codec"]),
                     "dec_time_s": t, "dec_kmac_per_px": k, "bd_rate_pct": r[f"bd_rate_{short}_pct"],
                     "bd_metric": label})
    return pd.DataFrame(rows, columns=columns)


def cross_decode_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per codec and device: how many cells were decoded again in a fresh process at another
    thread count (``bench run --cross-decode``) and how many gave the identical image.

    Columns: ``codec, device, cells, identical, differs, not_cross_decoded, errors, decoded_with``
    (the other thread count / device, from the stored text). Empty when nothing was cross-decoded.
    """
    columns = ["codec", "device", "cells", "identical", "differs", "not_cross_decoded", "errors", "decoded_with"]
    if "cross_decode" not in rows or rows["cross_decode"].isna().all():
        return pd.DataFrame(columns=columns)
    checked = rows[rows["cross_decode"].notna()].copy()
    text = checked["cross_decode"].astype(str)
    checked["_kind"] = np.select(
        [text.str.startswith("identical"), text.str.startswith("differs"), text.str.startswith("not cross-decoded")],
        ["identical", "differs", "not_cross_decoded"], default="errors")
    checked["_with"] = text.str.extract(r"\(([^)]*)\)", expand=False).fillna("")
    out = []
    for (codec, device), group in checked.groupby(["codec", "device"], sort=True):
        counts = group["_kind"].value_counts()
        out.append({"codec": codec, "device": device, "cells": len(group),
                    **{k: int(counts.get(k, 0)) for k in ("identical", "differs", "not_cross_decoded", "errors")},
                    "decoded_with": ", ".join(sorted(set(group["_with"]) - {""}))})
    return pd.DataFrame(out, columns=columns)
