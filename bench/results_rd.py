"""RD curves and BD tables from a results view's rows: the dataset-average curve of each codec over the
images complete under :func:`bench.analysis.bd.complete_images`, and BD against an anchor (a measured
codec's per-image rows or a published curve), built from the pure functions of
:mod:`bench.analysis.bd`. :class:`bench.results.ResultsView` calls these; presenters only format them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.bd import DEFAULT_RESAMPLES, DEFAULT_SEED, average_curve, bd_table, complete_images
from bench.errors import BDError
from bench.metrics.registry import METRICS, Metric

#: Quality axes of the RD curves: store column → axis label.
QUALITIES: dict[str, str] = {"psnr_rgb": "PSNR-RGB (dB)", "ms_ssim_db": "MS-SSIM (dB)"}


# --- curves ----------------------------------------------------------------------------------------

def series_label(codec: str, device: str, multi_device: bool) -> str:
    """Legend label of one measured codec: the device is named only when a codec ran on several."""
    return f"{codec} ({device})" if multi_device else codec


def rd_curve(rows: pd.DataFrame, quality: str) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """One codec's dataset-average curve (:func:`~bench.analysis.bd.average_curve`) over the images
    :func:`~bench.analysis.bd.complete_images` keeps, and the images left out with the reason (``{image:
    why}``); None when no image is complete. ``rows``: one codec's ok rows of one dataset and device."""
    usable, left_out = complete_images(rows, quality)
    return (average_curve(usable, quality) if len(usable) else None), left_out


def rd_curves(rows: pd.DataFrame, quality: str) -> pd.DataFrame:
    """Dataset-average RD curve of every (dataset, codec, device) over native-resolution rows.

    Each curve is over the images :func:`complete_images` keeps — the ones the codec's BD row rests
    on too. Columns: ``dataset, codec, device, label, rate_label, bpp, <quality>, n_images,
    n_images_total`` (``n_images`` < ``n_images_total`` when some images lacked a rate point and were
    left out). Callers pass trained rows only.
    """
    native = rows[rows["resolution"] == "native"]
    counts = native.groupby("codec")["device"].nunique()
    multi = set(counts[counts > 1].index)
    parts = []
    for (dataset, codec, device), group in native.groupby(["dataset", "codec", "device"], sort=True):
        avg, _ = rd_curve(group, quality)
        if avg is None:
            continue
        avg.insert(0, "label", series_label(codec, device, codec in multi))
        avg.insert(0, "device", device)
        avg.insert(0, "codec", codec)
        avg.insert(0, "dataset", dataset)
        avg["n_images_total"] = group["image"].nunique()
        parts.append(avg)
    columns = ["dataset", "codec", "device", "label", "rate_label", "bpp", quality, "n_images", "n_images_total"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


# --- BD ------------------------------------------------------------------------------------------

def present_metrics(rows: pd.DataFrame, metrics: Sequence[Metric] = METRICS) -> list[Any]:
    """The metrics whose BD column the rows have with at least one finite value, in declared order."""
    return [m for m in metrics if m.bd_column in rows.columns
            and np.isfinite(pd.to_numeric(rows[m.bd_column], errors="coerce")).any()]


def short_name(quality: str) -> str:
    """The column stem of a quality in the wide BD table (``psnr_rgb`` → ``psnr``, as the CSV has always had)."""
    return {"psnr_rgb": "psnr", "ms_ssim_db": "msssim"}.get(quality, quality)


def anchor_has(anchor: Any, quality: str) -> bool:
    """Whether the BD anchor (per-image rows or a published curve) has values of ``quality``."""
    if isinstance(anchor, pd.DataFrame):
        return quality in anchor.columns and bool(pd.to_numeric(anchor[quality], errors="coerce").notna().any())
    return quality in anchor.qualities


def measured_anchor(rows: pd.DataFrame, codec: str) -> pd.DataFrame:
    """Per-image rows of a measured codec used as the BD anchor (``--anchor codec:NAME``): its native
    rows, of one device (the first by name) when it ran on several."""
    anchor = rows[(rows["codec"] == codec) & (rows["resolution"] == "native")]
    if anchor.empty:
        known = ", ".join(sorted(rows["codec"].unique()))
        raise BDError(f"no native-resolution rows of codec {codec!r} to use as anchor (codecs: {known})")
    if anchor["device"].nunique() > 1:
        anchor = anchor[anchor["device"] == sorted(anchor["device"].unique())[0]]
    return anchor


def per_image_anchor(anchor: Any, images: set[str]) -> pd.DataFrame | None:
    """A published anchor's ``per_image`` points as store-like rows, when they cover every tested image."""
    per_image = getattr(anchor, "per_image", None) or {}
    if not images or not images <= set(per_image):
        return None
    labels = list(anchor.conditions.get("rate_points") or [])
    rows = []
    for image in sorted(images):
        columns = per_image[image]
        for k in range(len(columns["bpp"])):
            rows.append({"image": image, "rate_label": labels[k] if k < len(labels) else f"point{k}",
                         **{c: v[k] for c, v in columns.items()}})
    return pd.DataFrame(rows).assign(codec=anchor.name, status="ok", trained=1)


def bd_against(rows: pd.DataFrame, errors: pd.DataFrame, anchor: Any, anchor_name: str, method: str,
               averaging: str, qualities: Sequence[Any] = tuple(QUALITIES), n_resamples: int = DEFAULT_RESAMPLES,
               seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """BD-rate and BD-quality, each with its bootstrap interval, of every codec against one anchor, per quality.

    ``rows`` are the dataset's native-resolution ok rows (untrained included: they come out as
    ``excluded``), ``errors`` its error rows (counted per codec). ``anchor`` is a published
    anchor or per-image rows (a measured codec, or a measured anchor's ``per_image`` points).
    ``qualities`` are store columns or metric objects (``bd_column``, ``higher_is_better``).
    Images lacking a rate point are left out (:func:`complete_images`) and named
    (``images_left_out_<q>``). A codec whose BD fails gets ``status='error'`` and the reason; the
    table is never aborted by one codec. Qualities the anchor lacks are skipped. ``n_resamples=0``:
    no intervals. Wide result: one row per (codec, device).
    """
    frame = pd.concat([rows, errors], ignore_index=True) if len(errors) else rows
    wide: pd.DataFrame | None = None
    for metric in qualities:
        quality = getattr(metric, "bd_column", metric)
        if not anchor_has(anchor, quality) or quality not in frame.columns:
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
