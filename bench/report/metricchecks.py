"""The report's metric cross-checks section: each metric beside a second implementation, and its time.

Rows come from the store's ``metric_checks`` table (``python -m bench.tools.metrics_check --results``)
through the results view (:func:`bench.results.metric_check_rows`); the section is left out when the
store has none. Per metric it shows the largest difference over the checked images, so one bad image
is not averaged away, and the median seconds of one call of ours.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.report.document import Document, fmt_duration, fmt_number
from bench.results import ResultsView

COLUMNS = {"metric": "metric", "implementation": "ours", "second": "second implementation", "images": "images",
           "ours_mean": "ours (mean)", "theirs_mean": "theirs (mean)", "max_abs_diff": "max |Δ|",
           "wall_s": "wall / image", "cpu_s": "CPU / image", "note": "note"}


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per metric (and distortion, machine): images checked, means, the largest |Δ|, median seconds."""
    out = []
    for (metric, distortion, cpu), g in rows.groupby(["metric", "distortion", "cpu_model"], sort=False):
        checked = g[g["image"] != ""]
        notes = sorted({str(n) for n in g["note"].dropna()})
        out.append({"metric": metric, "distortion": distortion, "cpu_model": cpu,
                    "implementation": g["implementation"].iloc[0], "second": g["second"].iloc[0],
                    "images": len(checked), "ours_mean": pd.to_numeric(checked["ours"]).mean(),
                    "theirs_mean": pd.to_numeric(checked["theirs"]).mean(),
                    "max_abs_diff": pd.to_numeric(checked["abs_diff"]).max(),
                    "wall_s": pd.to_numeric(checked["wall_s"]).median(),
                    "cpu_s": pd.to_numeric(checked["cpu_s"]).median(), "note": "; ".join(notes)})
    return pd.DataFrame(out)


def metric_checks_section(doc: Document, data: ResultsView, csv: Callable[[pd.DataFrame, str], str]) -> None:
    """The cross-check table, one row per metric; every image's values in the CSV."""
    rows = data.metric_checks
    if rows.empty:
        return
    doc.heading(3, "Metric cross-checks")
    distortions = ", ".join(sorted({str(d) for d in rows["distortion"] if d}))
    doc.text("Each quality metric as this suite computes it (*ours*, with its implementation and version) beside a "
             "second implementation on the same image pairs (`python -m bench.tools.metrics_check`; distorted by "
             f"{distortions or 'an unrecorded distortion'}): the means over the checked images, the largest "
             "absolute difference on any one image, and the median wall and CPU seconds of one call of ours after an "
             "untimed one (indicative on a loaded machine). A metric that cannot run here, or has no second "
             "implementation, says so in *note*.")
    name = csv(rows, "metric_checks")
    doc.table(summary(rows)[list(COLUMNS)], COLUMNS,
              {"ours_mean": fmt_number(6), "theirs_mean": fmt_number(6), "max_abs_diff": fmt_number(3),
               "wall_s": fmt_duration(), "cpu_s": fmt_duration()})
    doc.text(f"Data: [{Path(name).name}]({name}).")
