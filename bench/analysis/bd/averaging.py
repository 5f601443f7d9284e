"""Averaging conventions: per-image rows -> curves -> one BD value for a dataset.

Per-image rows have the results store's columns (``image``, ``rate_label``, ``bpp`` and a quality
column). Two conventions:

    ``average-curve``      BD of the dataset-average curve (mean bpp and mean quality per rate
                           point over the same images) — the usual convention in papers and ours;
    ``mean-of-per-image``  arithmetic mean of the per-image BD values, each image's curve against
                           the anchor's curve on the same image (needs per-image anchor rows) —
                           the JPEG AI convention (see README, "Anchors and BD-rate").

:func:`complete_images` is the one rule for which images a curve or a BD rests on when some cells
failed (the results view, :mod:`bench.results`, applies it to RD curves and BD rows alike).
Pure functions, no I/O.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from bench.analysis.bd.core import (DEFAULT_MIN_OVERLAP, BDResult, Curve, HasCurve, Kind, LowOverlapWarning, Method,
                                    bd)
from bench.errors import BDError

Averaging = Literal["average-curve", "mean-of-per-image"]
AVERAGE_CURVE = "average-curve"
MEAN_OF_PER_IMAGE = "mean-of-per-image"
AVERAGINGS: tuple[str, ...] = (AVERAGE_CURVE, MEAN_OF_PER_IMAGE)



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
    higher_is_better: bool = True,
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
            kind, method, convex_hull, min_overlap=min_overlap, higher_is_better=higher_is_better,
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
    higher_is_better: bool = True,
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
                res = bd(a[rate], a[quality], t[rate], t[quality], kind, method, convex_hull, min_overlap=0.0,
                         higher_is_better=higher_is_better)
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


def complete_images(
    df: pd.DataFrame,
    quality: str,
    *,
    rate: str = "bpp",
    rate_label: str = "rate_label",
    image: str = "image",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The rows of the images that have every rate point with a finite rate and quality, and the rest.

    An average over images needs the same images at every rate point (else it is biased), so an
    image that lacks a point — an error cell, a metric undefined for its size — is left out of the
    curve, the BD and its bootstrap, and named in the second value (``{image: why}``). Rate points
    no image has (the encoder failed on all of them; a lossless point, PSNR infinite) are simply not
    part of the curve: leaving every image out instead would drop the codec for one point.
    """
    _require_columns(df, [rate_label, image, rate, quality], "complete_images")
    r = pd.to_numeric(df[rate], errors="coerce")
    q = pd.to_numeric(df[quality], errors="coerce")
    usable = df[np.isfinite(r) & (r > 0) & np.isfinite(q)]
    labels = set(usable[rate_label])
    have = usable.groupby(image)[rate_label].agg(set)
    left_out: dict[str, str] = {}
    for name in sorted(set(df[image]), key=str):
        missing = labels - have.get(name, set())
        if missing:
            shown = ", ".join(sorted(map(str, missing))[:3]) + (" …" if len(missing) > 3 else "")
            left_out[str(name)] = f"no finite {quality} at rate point(s) {shown}"
    return usable[~usable[image].astype(str).isin(left_out)], left_out


def image_matrix(
    df: pd.DataFrame,
    quality: str,
    *,
    rate: str = "bpp",
    rate_label: str = "rate_label",
    image: str = "image",
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Complete per-image rows as matrices: image names, rates and qualities (images × rate points).

    Columns (rate points) are ordered by their mean rate, as :func:`average_curve` orders them.
    Raises :class:`BDError` on an incomplete grid (see :func:`complete_images`).
    """
    _require_columns(df, [rate_label, image, rate, quality], "image_matrix")
    _check_grid(df, "image_matrix", rate_label, image)
    order = df.groupby(rate_label, sort=False)[rate].mean().sort_values(kind="stable").index
    rates = df.pivot(index=image, columns=rate_label, values=rate).loc[:, order]
    quals = df.pivot(index=image, columns=rate_label, values=quality).loc[rates.index, order]
    return ([str(i) for i in rates.index], rates.to_numpy(dtype=float), quals.to_numpy(dtype=float))
