"""LOF against its base configuration, read from a results store: the pairs and their figures.

A LOF configuration names the configuration it is the LOF variant of (``lof_of`` in its TOML,
checked when loaded: :func:`bench.codecs.registry.lof_problem`), and each run's manifest records
it. This module finds such pairs among the codecs of a :class:`~bench.results.ResultsView` and
computes, per (dataset, resolution, device) both were measured on, over the images complete for
both: the BD-rate of LOF against the base (the report's BD machinery,
:func:`bench.results_rd.bd_against`, with the base as a per-image anchor: paired bootstrap), the
encode-time cost and the decode-time ratio (the decoder is unchanged), and a per-rate-point table.
The report's LOF section (:mod:`bench.report.lofsection`) and ``python -m bench.lof_run`` present
these same numbers; nothing here writes.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.bd import DEFAULT_RESAMPLES, DEFAULT_SEED, average_curve, complete_images
from bench.errors import BDError, ConfigError
from bench.results import ResultsView
from bench.results_rd import bd_against, short_name

#: qualities the LOF BD is computed on (store columns)
LOF_QUALITIES = ("psnr_rgb", "ms_ssim_db")
#: (store column, median over the common cells) pairs of the time comparison
TIMES = ("enc_time_s", "enc_cpu_s", "dec_time_s", "dec_cpu_s")
GROUP = ["dataset", "resolution", "device"]


@dataclass(frozen=True)
class LOFPair:
    """A LOF configuration present in the store with its base; ``declared_in`` says where the pairing
    was read: ``manifest`` (the run recorded ``lof_of``) or the configuration file (older stores)."""

    lof: str
    base: str
    iterations: int | None
    declared_in: str


@dataclass
class LOFFigures:
    """What a store says about LOF: one ``summary`` row per pair and (dataset, resolution, device),
    one ``per_rate`` row per rate point of those, and notes (a missing base, a pair not compared)."""

    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_rate: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def _declared(view: ResultsView, codecs_dir: str | Path | None) -> dict[str, tuple[str, int | None, str]]:
    """``{lof codec: (base, iterations, where)}`` for the codecs of the view that declare ``lof_of``."""
    found: dict[str, tuple[str, int | None, str]] = {}
    for manifest in view.runs:  # in run order: a later run's declaration wins
        for name, entry in (manifest.get("codecs") or {}).items():
            if isinstance(entry, dict) and entry.get("lof_of"):
                iterations = (entry.get("params") or {}).get("lof_iterations")
                found[name] = (str(entry["lof_of"]), int(iterations) if iterations is not None else None, "manifest")
    codecs = set(view.rows["codec"])
    older = codecs - set(found)
    if older:  # runs from before manifests recorded lof_of: the current configuration of the same hash
        from bench.cells import config_hash
        from bench.codecs import registry

        try:
            configs = registry.load_configs(codecs_dir)
        except ConfigError:
            configs = {}
        for name in sorted(older):
            config = dict.get(configs, name)
            hashes = set(view.rows.loc[view.rows["codec"] == name, "config_hash"].dropna())
            if config is not None and config.lof_of and config_hash(config) in hashes:
                iterations = config.params.get("lof_iterations")
                found[name] = (config.lof_of, int(iterations) if iterations is not None else None, config.source)
    return {name: value for name, value in found.items() if name in codecs}


def lof_pairs(view: ResultsView, codecs_dir: str | Path | None = None) -> tuple[list[LOFPair], list[str]]:
    """The LOF configurations of the store whose base has rows too, and a note for each whose base has none."""
    codecs = set(view.rows["codec"])
    pairs, notes = [], []
    for name, (base, iterations, where) in sorted(_declared(view, codecs_dir).items()):
        if base in codecs:
            pairs.append(LOFPair(name, base, iterations, where))
        else:
            notes.append(f"{name} is the LOF variant of {base}, which has no successful rows in this store: "
                         f"run --codecs {base} on the same images to compare them")
    return pairs, notes


def _common(lof: pd.DataFrame, base: pd.DataFrame, quality: str) -> list[str]:
    """The images complete (:func:`complete_images`) for both codecs under ``quality``."""
    if quality not in lof.columns or quality not in base.columns:
        return []
    mine, theirs = complete_images(lof, quality)[0], complete_images(base, quality)[0]
    return sorted(set(mine["image"].astype(str)) & set(theirs["image"].astype(str)))


def _bd(lof: pd.DataFrame, base: pd.DataFrame, pair: LOFPair, quality: str, method: str, averaging: str,
        n_resamples: int, seed: int) -> dict[str, object]:
    """BD of LOF against its base on one quality, over the images complete for both (the report's machinery)."""
    s = short_name(quality)
    out: dict[str, object] = {f"bd_rate_{s}_pct": np.nan, f"bd_rate_{s}_low": np.nan, f"bd_rate_{s}_high": np.nan,
                              f"n_images_{s}": 0, f"status_{s}": "ok", f"reason_{s}": ""}
    images = _common(lof, base, quality)
    if not images:
        why = (f"no image has a finite {quality} at every rate point of both (a metric undefined at this size, "
               "e.g. MS-SSIM below 161 px a side, is NULL)")
        out.update({f"status_{s}": "error", f"reason_{s}": why})
        return out
    if (lof["trained"] == 0).any() or (base["trained"] == 0).any():
        out.update({f"status_{s}": "excluded", f"reason_{s}": "untrained weights: complexity only, no BD"})
        return out
    mine, theirs = lof[lof["image"].isin(images)], base[base["image"].isin(images)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # recorded per row by bd_table
            table = bd_against(mine, mine.iloc[0:0], theirs, f"codec:{pair.base}", method, averaging, [quality],
                               n_resamples, seed)
    except BDError as exc:
        out.update({f"status_{s}": "error", f"reason_{s}": str(exc)})
        return out
    row = table.iloc[0]
    for key in (f"bd_rate_{s}_pct", f"bd_rate_{s}_low", f"bd_rate_{s}_high", f"status_{s}", f"reason_{s}"):
        out[key] = row.get(key, out[key])
    out[f"n_images_{s}"] = len(images)
    return out


def _per_rate(lof: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Per rate point, each codec's mean bpp and PSNR-RGB over the same images and its median encode CPU time."""
    parts = {}
    for who, rows in (("base", base), ("lof", lof)):
        curve = average_curve(rows, "psnr_rgb").set_index("rate_label")
        cpu = rows.groupby("rate_label")["enc_cpu_s"].median()
        parts[who] = pd.DataFrame({f"bpp_{who}": curve["bpp"], f"psnr_{who}": curve["psnr_rgb"],
                                   f"enc_cpu_{who}_s": cpu, f"n_images_{who}": curve["n_images"]})
    table = parts["base"].join(parts["lof"], how="inner").sort_values("bpp_base")
    table["n_images"] = table["n_images_base"]
    return table.drop(columns=["n_images_base", "n_images_lof"]).reset_index()


def _stopped_early(rows: pd.DataFrame) -> list[str]:
    """``image rate: why`` for each LOF cell whose extras say it stopped before its iterations
    (:attr:`bench.models.lof.LOFResult.stopped`: a latent the coder cannot take)."""
    found = []
    for image, rate, text in zip(rows["image"], rows["rate_label"], rows.get("extras", pd.Series(dtype=object))):
        try:
            why = json.loads(text).get("lof_stopped") if isinstance(text, str) else None
        except (json.JSONDecodeError, AttributeError):
            why = None
        if why:
            found.append(f"{image} {rate}: {why}")
    return found


def lof_figures(view: ResultsView, pairs: Sequence[LOFPair] | None = None, method: str = "pchip",
                averaging: str = "average-curve", n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                codecs_dir: str | Path | None = None) -> LOFFigures:
    """The LOF figures of every pair (default: :func:`lof_pairs`) on every (dataset, resolution,
    device) both codecs have rows of. Timings are medians over the cells of the images complete for
    both under PSNR-RGB; ratios are LOF ÷ base. A group with no image complete for both is a note."""
    notes: list[str] = []
    if pairs is None:
        pairs, notes = lof_pairs(view, codecs_dir)
    rows, summary, per_rate = view.rows, [], []
    for pair in pairs:
        lof_all, base_all = rows[rows["codec"] == pair.lof], rows[rows["codec"] == pair.base]
        shared = lof_all[GROUP].drop_duplicates().merge(base_all[GROUP].drop_duplicates())
        for key in shared.itertuples(index=False):
            where = dict(zip(GROUP, key))
            pick = (lambda f: f[(f["dataset"] == where["dataset"]) & (f["resolution"] == where["resolution"])
                                & (f["device"] == where["device"])])
            lof, base = pick(lof_all), pick(base_all)
            images = _common(lof, base, "psnr_rgb")
            label = f"{pair.lof} vs {pair.base} on {where['dataset']} {where['resolution']} ({where['device']})"
            if not images:
                notes.append(f"{label}: no image has every rate point of both, nothing compared")
                continue
            lof, base = lof[lof["image"].isin(images)], base[base["image"].isin(images)]
            stopped = _stopped_early(lof)
            if stopped:
                notes.append(f"{label}: LOF stopped early in {len(stopped)} of {len(lof)} cells "
                             f"(e.g. {stopped[0]}); those cells keep the best stream coded before it stopped")
            row: dict[str, object] = {"lof": pair.lof, "base": pair.base, "lof_iterations": pair.iterations,
                                      **where, "n_images": len(images), "images": " ".join(images),
                                      "rate_points": int(lof["rate_label"].nunique())}
            for quality in LOF_QUALITIES:
                row.update(_bd(lof, base, pair, quality, method, averaging, n_resamples, seed))
            for column in TIMES:
                a = float(pd.to_numeric(base[column], errors="coerce").median())
                b = float(pd.to_numeric(lof[column], errors="coerce").median())
                stem = column.removesuffix("_s")
                row[f"{stem}_base_s"], row[f"{stem}_lof_s"] = a, b
                row[f"{stem}_ratio"] = b / a if a > 0 else np.nan
            row.update(method=method, averaging=averaging, declared_in=pair.declared_in)
            summary.append(row)
            try:
                table = _per_rate(lof, base)
            except BDError as exc:  # e.g. several rounds of a cell: no single average per rate point
                notes.append(f"{label}: no per-rate-point table ({exc})")
                continue
            for column, value in reversed(list({"lof": pair.lof, "base": pair.base, **where}.items())):
                table.insert(0, column, value)
            per_rate.append(table)
    return LOFFigures(pd.DataFrame(summary), pd.concat(per_rate, ignore_index=True) if per_rate else pd.DataFrame(),
                      notes)
