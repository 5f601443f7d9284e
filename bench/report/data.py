"""What the report reads: the results store's rows and run manifests, cleaned for analysis.

Selection rules (each one is written into the report as a note when it changes anything):

- only ``status == 'ok'`` rows carry numbers; error rows are counted per codec and listed;
- when a codec name was run with several configurations (its TOML changed between runs), only the
  most recent configuration's rows are kept — mixing two ladders would corrupt the curves;
- every row's machine class (:func:`bench.machine.class_label`) is in column ``machine``; a codec
  timed on several classes gets a note, and the complexity table one row per class;
- rows with ``trained == 0`` (learned codecs on random weights) are valid for complexity only:
  they are kept in :attr:`ReportData.rows` but left out of :attr:`ReportData.rd_rows`;
- a store without one of :data:`REQUIRED` columns is refused with a :class:`ReportError`; any other
  column it lacks (an older store) is read as NULL, and a NULL in a grouping column
  (:data:`LABELS`, e.g. ``device``) reads as ``unrecorded``, so no row silently drops out of a
  ``groupby`` and no sort meets a NULL beside text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import ReportError
from bench.machine import UNRECORDED, class_label
from bench.store import MEASUREMENT_COLUMNS, db_path, read_measurements, read_runs

MIB = 1024.0 * 1024.0
#: Columns without which rows are not measurements the report can read.
REQUIRED = ("codec", "status", "rate_label", "dataset", "image", "resolution")
#: Text columns the report groups or sorts by: a NULL there reads as :data:`NOT_RECORDED`.
LABELS = ("device", "adapter")
NOT_RECORDED = "unrecorded"


@dataclass
class ReportData:
    """Rows of one results store, split the way the report's sections need them."""

    results_dir: Path
    rows: pd.DataFrame  # ok rows of the latest configuration per codec (trained and untrained)
    errors: pd.DataFrame  # error rows of the same configurations
    runs: list[dict[str, Any]]  # manifests of the runs whose rows are shown, oldest first
    untrained: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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


def _latest_configuration(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Per codec, keep the rows of the configuration (``config_hash``) stored most recently."""
    if frame.empty:
        return frame
    keep = []
    for codec, group in frame.groupby("codec", sort=True):
        hashes = group["config_hash"].fillna("")
        if hashes.nunique() > 1:
            latest = hashes.loc[group["id"].idxmax()]
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


def _complete(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The rows with every store column: refuse a store lacking a :data:`REQUIRED` one, add any
    other missing column as NULL, and read NULL in a :data:`LABELS` column as ``unrecorded``."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ReportError(f"{path}: the measurements table has no column {', '.join(missing)}; it is not a lic-bench "
                          "results store or it is damaged (write a new one with `python -m bench run`)")
    frame = frame.assign(**{c: np.nan for c in MEASUREMENT_COLUMNS if c not in frame.columns})
    for column in LABELS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), NOT_RECORDED).astype(str)
    return frame


def load(results_dir: str | Path) -> ReportData:
    """Read a results directory (or ``.sqlite`` file) for the report.

    Raises ``FileNotFoundError`` when there is no store and ``ValueError`` when it holds no
    successful measurement at all (a report of nothing would only hide the problem).
    """
    path = db_path(results_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no results store at {path}; run `python -m bench run --out {results_dir}` first")
    everything = _complete(read_measurements(results_dir, status=None), path)
    notes: list[str] = []
    everything = _latest_configuration(everything, notes)
    ok = everything[everything["status"] == "ok"].copy()
    errors = everything[everything["status"] != "ok"].copy()
    if ok.empty:
        detail = f" ({len(errors)} error rows, e.g. {errors['error'].iloc[0]!r})" if len(errors) else ""
        raise ValueError(f"{path} holds no successful measurements{detail}")
    ok = add_memory_columns(ok)
    ok["megapixels"] = pd.to_numeric(ok["pixels"], errors="coerce") / 1e6
    ok["machine"] = [class_label(r) for r in ok.to_dict("records")]  # timings compare only within a class
    untrained = sorted(ok.loc[ok["trained"] == 0, "codec"].unique())
    run_ids = {int(r) for r in everything["run_id"].dropna().unique()}
    data = ReportData(Path(results_dir), ok, errors, _manifests(Path(results_dir), run_ids), untrained, notes)
    for codec, classes in data.mixed_machines().items():
        notes.append(f"{codec}: cells timed on {len(classes)} machine classes ({' / '.join(classes)}); timings "
                     "compare only within one, so the complexity table shows one row per class")
    return data
