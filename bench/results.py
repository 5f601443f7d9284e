"""The results view: the one read path from the store to every presenter (summary, report, export, gate).

It loads rows and run manifests and applies the selection rules once, so that every number shown
anywhere rests on the same rows (each rule is written into the report as a note when it changes
anything):

- only ``status == 'ok'`` rows carry numbers; error rows are kept apart and counted per codec;
- when a codec name was run with several configurations (its TOML changed between runs), only the
  most recent configuration's rows are kept — mixing two ladders would corrupt the curves;
- every row's machine class (:func:`bench.machine.class_label`) is in column ``machine``; a codec
  timed on several classes gets a note, and the complexity table one row per class;
- rows with ``trained == 0`` (learned codecs on random weights) are valid for complexity only:
  they are kept in :attr:`ResultsView.rows` but left out of :attr:`ResultsView.rd_rows`;
- an RD curve and a BD value rest on the same images: those complete under the one rule,
  :func:`bench.analysis.bd.complete_images` (a finite positive bpp and a finite quality at every
  rate point that any image of the codec has). A rate point no image has — a lossless point whose
  PSNR is infinite — is not part of the curve, rather than taking every image (and so the codec)
  off the figure while its BD row stands;
- a store without one of :data:`REQUIRED` columns is refused with a :class:`ReportError`; any other
  column it lacks (an older store) is read as NULL, and a NULL in a grouping column
  (:data:`LABELS`, e.g. ``device``) reads as ``unrecorded``.

Curves and BD tables (:meth:`ResultsView.rd_curves`, :meth:`ResultsView.bd`) are built by
:mod:`bench.results_rd` from the pure functions of :mod:`bench.analysis.bd`; presenters only format them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.bd import DEFAULT_RESAMPLES, MEAN_OF_PER_IMAGE
from bench.errors import ReportError
from bench.machine import UNRECORDED, class_label
from bench.store import db_path, read_decode_parts, read_measurements, read_metric_checks, read_runs
from bench.results_rd import bd_against, per_image_anchor, present_metrics, rd_curves
from bench.store_schema import MEASUREMENT_COLUMNS

MIB = 1024.0 * 1024.0
#: Columns without which rows are not measurements that can be read.
REQUIRED = ("codec", "status", "rate_label", "dataset", "image", "resolution")
#: Text columns grouped or sorted by: a NULL there reads as :data:`NOT_RECORDED`.
LABELS = ("device", "adapter")
NOT_RECORDED = "unrecorded"


@dataclass
class ResultsView:
    """Rows of one results store (or of one run), selected by the rules of the module docstring."""

    results_dir: Path | None
    rows: pd.DataFrame  # ok rows of the latest configuration per codec (trained and untrained)
    errors: pd.DataFrame  # error rows of the same configurations
    runs: list[dict[str, Any]] = field(default_factory=list)  # manifests of the runs whose rows are shown
    untrained: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the store's per-part decode benchmarks (:func:`decode_parts_rows`), empty when it has none
    decode_parts: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the store's metric cross-checks (:func:`metric_check_rows`), empty when it has none
    metric_checks: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def rd_rows(self) -> pd.DataFrame:
        """Rows valid for rate-distortion: trained codecs only."""
        return self.rows[self.rows["trained"] != 0]

    @property
    def native(self) -> pd.DataFrame:
        return self.rows[self.rows["resolution"] == "native"]

    @property
    def ladder(self) -> pd.DataFrame:
        """Resolution-ladder rows (centre crops), used for the scaling fits."""
        return self.rows[self.rows["resolution"] != "native"]

    def mixed_machines(self) -> dict[str, list[str]]:
        """Codecs whose cells were timed on more than one machine class, with those classes."""
        known = self.rows[self.rows["machine"] != UNRECORDED]
        classes = known.groupby("codec")["machine"].unique()
        return {codec: sorted(v) for codec, v in classes.items() if len(v) > 1}

    def datasets(self) -> list[str]:
        """Datasets with native-resolution rows, in name order."""
        return sorted(self.native["dataset"].unique())

    def all_rows(self) -> pd.DataFrame:
        """The ok rows and the error rows together (the latest configurations only), e.g. for the gate,
        which judges a codec with an error cell as failed."""
        return pd.concat([self.rows, self.errors], ignore_index=True) if len(self.errors) else self.rows

    def curves(self, quality: str) -> pd.DataFrame:
        """Dataset-average RD curves of the trained codecs (:func:`bench.results_rd.rd_curves`)."""
        return rd_curves(self.rd_rows, quality)

    def bd(self, dataset: str, anchor: Any, anchor_name: str, method: str = "pchip",
           averaging: str = "average-curve", metrics: Sequence[Any] | None = None,
           n_resamples: int = DEFAULT_RESAMPLES) -> BDTable:
        """Every codec's BD against ``anchor`` on ``dataset``'s native rows (:func:`bench.results_rd.bd_against`).

        ``anchor``: per-image rows (a measured codec, :func:`bench.results_rd.measured_anchor`) or a published
        anchor; a published anchor with ``per_image`` points for every tested image is used per
        image, so that values and intervals are paired. ``metrics`` default: :func:`bench.results_rd.present_metrics`.
        """
        native = self.native[self.native["dataset"] == dataset]
        errors = self.errors[(self.errors["dataset"] == dataset) & (self.errors["resolution"] == "native")] \
            if len(self.errors) else self.errors
        target, paired_published = anchor, False
        if not isinstance(anchor, pd.DataFrame):
            per_image = per_image_anchor(anchor, set(native["image"].astype(str)))
            if per_image is not None:
                target, paired_published = per_image, True
            elif averaging == MEAN_OF_PER_IMAGE:
                raise ReportError(f"averaging {MEAN_OF_PER_IMAGE!r} needs per-image anchor points for every tested "
                                  f"image; anchor {anchor_name!r} has them for {len(anchor.per_image or {})} images, "
                                  f"not for all {native['image'].nunique()} of {dataset!r} in the store")
        metrics = present_metrics(native) if metrics is None else list(metrics)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bd_table records its warnings per row
            table = bd_against(native, errors, target, anchor_name, method, averaging, metrics, n_resamples)
        return BDTable(table, native, errors, target, paired_published, metrics)


@dataclass
class BDTable:
    """A wide BD table (one row per codec and device) and what it rests on."""

    table: pd.DataFrame
    native: pd.DataFrame  # the dataset's native-resolution ok rows
    errors: pd.DataFrame  # its native error rows
    target: Any  # the anchor as used: per-image rows or a published curve
    paired_published: bool  # a published anchor used through its per-image points
    metrics: list[Any]


# --- loading ---------------------------------------------------------------------------------------

def add_memory_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``enc_mem_bytes`` / ``dec_mem_bytes``: memory the call itself needed.

    The growth measured in a clean process (``*_mem_growth_bytes``, :mod:`bench.memory`): peak RSS
    during the call over the RSS right before it. NaN where the cell has no clean reading (stores
    from before these columns, ``--memory off``, or not the middle rate point with ``--memory mid``):
    the worker's own figures (``*_peak_rss_bytes``) are not a substitute, so they are not used.
    """
    out = rows.copy()
    for side in ("enc", "dec"):
        column = f"{side}_mem_growth_bytes"
        out[f"{side}_mem_bytes"] = pd.to_numeric(out[column], errors="coerce") if column in out else np.nan
    return out


def sequential_steps(extras: pd.Series) -> pd.Series:
    """Each row's sequential entropy-decoding steps as its codec reported them in ``extras``
    (``sequential_steps``: constant for MSP, one per latent position for a serial context model);
    NaN where the codec reports none (classical codecs) or the extras cannot be read."""
    def steps(text: Any) -> float:
        try:
            value = json.loads(text).get("sequential_steps") if isinstance(text, str) else None
        except (json.JSONDecodeError, AttributeError):
            return np.nan
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan

    return pd.Series([steps(t) for t in extras], index=extras.index, dtype=float)


def _latest_configuration(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Per codec, keep the rows of the configuration (``config_hash``) stored most recently
    (highest ``id``; rows not yet stored count in their order)."""
    if frame.empty:
        return frame
    keep = []
    for codec, group in frame.groupby("codec", sort=True):
        hashes = group["config_hash"].fillna("")
        if hashes.nunique() > 1:
            ids = pd.to_numeric(group["id"], errors="coerce")
            latest = hashes.loc[ids.idxmax()] if ids.notna().any() else hashes.iloc[-1]
            dropped = int((hashes != latest).sum())
            notes.append(f"{codec}: the store holds {hashes.nunique()} configurations of this name; "
                         f"only the latest ({latest or 'unknown'}) is shown, {dropped} older rows left out")
            group = group[hashes == latest]
        keep.append(group)
    return pd.concat(keep, ignore_index=True)


def _manifests(results_dir: Path, run_ids: set[int]) -> list[dict[str, Any]]:
    runs = read_runs(results_dir)
    out = []
    for _, run in runs.sort_values("run_id").iterrows():
        if int(run["run_id"]) not in run_ids:
            continue
        try:
            manifest = json.loads(run["manifest"]) if run["manifest"] else {}
        except json.JSONDecodeError:
            manifest = {"manifest_error": "the stored manifest is not valid JSON"}
        manifest.update({k: run[k] for k in ("run_id", "started_at", "finished_at") if k in run})
        out.append(manifest)
    return out


def _complete(frame: pd.DataFrame, where: Any) -> pd.DataFrame:
    """The rows with every store column: refuse rows lacking a :data:`REQUIRED` one, add any
    other missing column as NULL, and read NULL in a :data:`LABELS` column as ``unrecorded``."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ReportError(f"{where}: the measurements table has no column {', '.join(missing)}; it is not a lic-bench "
                          "results store or it is damaged (write a new one with `python -m bench run`)")
    frame = frame.assign(**{c: np.nan for c in MEASUREMENT_COLUMNS if c not in frame.columns})
    for column in LABELS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), NOT_RECORDED).astype(str)
    return frame


def from_frame(frame: pd.DataFrame, results_dir: Path | None = None, where: Any = "rows") -> ResultsView:
    """The view of measurement rows of any status (a store's, or one run's before the report reads them)."""
    everything = _complete(frame, where)
    notes: list[str] = []
    everything = _latest_configuration(everything, notes)
    ok = everything[everything["status"] == "ok"].copy()
    errors = everything[everything["status"] != "ok"].copy()
    ok = add_memory_columns(ok)
    ok["megapixels"] = pd.to_numeric(ok["pixels"], errors="coerce") / 1e6
    ok["sequential_steps"] = sequential_steps(ok["extras"])
    ok["machine"] = [class_label(r) for r in ok.to_dict("records")]  # timings compare only within a class
    untrained = sorted(ok.loc[ok["trained"] == 0, "codec"].unique())
    runs: list[dict[str, Any]] = []
    if results_dir is not None:
        runs = _manifests(results_dir, {int(r) for r in everything["run_id"].dropna().unique()})
    view = ResultsView(results_dir, ok, errors, runs, untrained, notes)
    for codec, classes in view.mixed_machines().items():
        notes.append(f"{codec}: cells timed on {len(classes)} machine classes ({' / '.join(classes)}); timings "
                     "compare only within one, so the complexity table shows one row per class")
    return view


def load(results_dir: str | Path, side_tables_only: bool = False) -> ResultsView:
    """Read a results directory (or ``.sqlite`` file).

    Raises ``FileNotFoundError`` when there is no store and ``ValueError`` when it holds no
    successful measurement at all (a report of nothing would only hide the problem). With
    ``side_tables_only`` (the report) a store whose only rows are ``decode_parts`` rows
    (``python -m bench.tools.decode_parts``) and/or ``metric_checks`` rows
    (``python -m bench.tools.metrics_check``) is read too: empty measurement rows, those rows, and
    the manifests of their runs.
    """
    path = db_path(results_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no results store at {path}; run `python -m bench run --out {results_dir}` first")
    view = from_frame(read_measurements(results_dir, status=None), Path(results_dir), path)
    view.decode_parts = decode_parts_rows(read_decode_parts(results_dir))
    view.metric_checks = metric_check_rows(read_metric_checks(results_dir))
    if view.rows.empty:
        errors = view.errors
        detail = f" ({len(errors)} error rows, e.g. {errors['error'].iloc[0]!r})" if len(errors) else ""
        side = [t for t, frame in (("decode_parts", view.decode_parts), ("metric_checks", view.metric_checks))
                if not frame.empty]
        if side and side_tables_only:
            shown = {int(r["run_id"]) for r in view.runs}
            for t in side:
                shown |= {int(r) for r in getattr(view, t)["run_id"].dropna()}
            view.runs = _manifests(Path(results_dir), shown)
            return view
        if side:
            detail += (f"; it has {' and '.join(side)} rows only: python -m bench.report shows them, or give "
                       "the tool the --results of a benchmark store")
        raise ValueError(f"{path} holds no successful measurements{detail}")
    return view


# --- decode parts ----------------------------------------------------------------------------------

#: what identifies one measured decoder in the decode_parts table (the latest run of each is shown)
DECODE_UNIT = ("codec", "mode", "size", "threads", "cpu_model")


def decode_parts_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-part decode rows to present: per :data:`DECODE_UNIT` those of its latest run, in
    stored order, with ``floor_s`` (counted FLOPs ÷ the same run's matmul rate) and, on ``total``
    rows, ``decode_over_floor`` (1.0 = the decode runs at the machine's matmul rate)."""
    if frame.empty:
        return frame
    frame = frame.copy()
    for column in ("mode", "cpu_model"):  # NULL would drop out of the grouping
        frame[column] = frame[column].fillna(NOT_RECORDED)
    frame["rate"] = frame["rate"].fillna("") if "rate" in frame else ""
    latest = frame.groupby(list(DECODE_UNIT))["run_id"].transform("max")
    frame = frame[frame["run_id"] == latest].copy()
    gflop, rate = pd.to_numeric(frame["gflop"], errors="coerce"), pd.to_numeric(frame["matmul_gflops"], errors="coerce")
    frame["floor_s"] = gflop / rate
    total = frame["part"] == "total"
    frame["decode_over_floor"] = np.where(total & (frame["floor_s"] > 0), frame["seconds"] / frame["floor_s"], np.nan)
    return frame.reset_index(drop=True)


#: what identifies one check in the metric_checks table: the latest run of each is shown, all its images
METRIC_CHECK_UNIT = ("metric", "distortion", "cpu_model")


def metric_check_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The metric cross-checks to present: per :data:`METRIC_CHECK_UNIT` the rows of its latest run,
    in stored order (a metric that could not run has one row with no image)."""
    if frame.empty:
        return frame
    frame = frame.copy()
    for column in ("distortion", "cpu_model"):  # NULL would drop out of the grouping
        frame[column] = frame[column].fillna("")
    latest = frame.groupby(list(METRIC_CHECK_UNIT))["run_id"].transform("max")
    return frame[frame["run_id"] == latest].reset_index(drop=True)
