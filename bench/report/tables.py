"""The numbers behind the report's complexity, scaling and trade-off tables, as pandas DataFrames.

Pure functions of the rows of the results view (:mod:`bench.results`, which also builds the RD curves
and BD tables) and of anchors; no plotting, no I/O.
Each frame here is also written as CSV beside the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.scaling import fit_power_law_by
from bench.results import MIB
from bench.results_rd import short_name

#: Costs of the scaling fits: store column → (label, unit divisor, unit).
COSTS: dict[str, tuple[str, float, str]] = {
    "enc_time_s": ("encode time", 1.0, "s"),
    "dec_time_s": ("decode time", 1.0, "s"),
    "enc_mem_bytes": ("encode memory growth", MIB, "MiB"),
    "dec_mem_bytes": ("decode memory growth", MIB, "MiB"),
}


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


# --- complexity ----------------------------------------------------------------------------------

def complexity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Encode/decode time and memory per codec, device, machine class, dataset and resolution.

    Times: median over the cells (each cell's value is already the median of its repeats).
    Memory, from the clean-process readings (:mod:`bench.memory`), the largest value over the cells
    that have one (``mem_cells`` of them; a peak is a peak): ``*_mem_mib`` the call's growth over
    the RSS right before it, ``*_mem_peak_mib`` that clean process's whole peak RSS, ``model_mib``
    a learned codec's parameters + buffers; ``*_gpu_peak_mib`` the CUDA allocator's peak (NaN on
    CPU). The worker's own peak RSS (``*_peak_rss_bytes``, mostly the worker) is not shown.
    kMAC/pixel (learned codecs, counted by :mod:`bench.models.macs`) and the decoder's achieved
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


def overhead_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per codec and device: how much of its cells' wall time the timed calls were (issue 19's suite
    overhead). ``timed_s`` is Σ (encode + decode median) × repeats — the timed calls' time as stored;
    ``cell_wall_s`` Σ ``wall_s``, the whole cell in its worker (warm-up, metrics, memory probe, complexity
    count, cross-decode); ``overhead`` their ratio. Empty when no row has both."""
    columns = ["codec", "device", "cells", "cell_wall_s", "timed_s", "overhead"]
    needed = {"wall_s", "enc_time_s", "dec_time_s", "repeats"}
    if not needed <= set(rows.columns):
        return pd.DataFrame(columns=columns)
    timed = (rows["enc_time_s"] + rows["dec_time_s"]) * rows["repeats"]
    usable = rows.assign(_timed=timed)[timed.notna() & rows["wall_s"].notna() & (timed > 0)]
    out = []
    for (codec, device), group in usable.groupby(["codec", "device"], sort=True):
        wall, calls = float(group["wall_s"].sum()), float(group["_timed"].sum())
        out.append({"codec": codec, "device": device, "cells": len(group), "cell_wall_s": wall, "timed_s": calls,
                    "overhead": wall / calls})
    return pd.DataFrame(out, columns=columns)
