"""The report's LOF section: each LOF configuration of the store against its base configuration.

The pairs and numbers come from :mod:`bench.lofresults` (through the results view): BD-rate of LOF
vs base with the BD section's machinery, method, averaging and bootstrap, the encode-time cost and
the decode-time ratio, and a per-rate-point table. Left out when the store has no LOF configuration;
a LOF configuration whose base is absent is named.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis.bd import DEFAULT_RESAMPLES, DEFAULT_SEED
from bench.lofresults import LOFFigures, lof_figures
from bench.report.bdsection import FEW_TEXT, _few, _with_ci
from bench.report.document import Document, fmt_duration, fmt_fixed, fmt_number, md_prose
from bench.results import ResultsView

TITLE = "Encoder-side latent overfitting (LOF)"
SUMMARY = {"lof": "LOF configuration", "base": "base", "lof_iterations": "LOF iterations", "cells": "cells",
           "n_images": "images", "bd_psnr": "BD-rate PSNR-RGB (%) [95 % CI]", "bd_msssim": "BD-rate MS-SSIM (%) [95 % CI]",
           "note": "status / note"}
TIMES = {"lof": "LOF configuration", "cells": "cells", "enc_time_base_s": "encode wall, base",
         "enc_time_lof_s": "encode wall, LOF", "enc_time_ratio": "wall ×", "enc_cpu_base_s": "encode CPU, base",
         "enc_cpu_lof_s": "encode CPU, LOF", "enc_cpu_ratio": "CPU ×", "dec_time_ratio": "decode wall ×",
         "dec_cpu_ratio": "decode CPU ×"}
PER_RATE = {"lof": "LOF configuration", "cells": "cells", "rate_label": "rate point", "n_images": "images",
            "bpp_base": "bpp, base", "bpp_lof": "bpp, LOF", "psnr_base": "PSNR-RGB, base", "psnr_lof": "PSNR-RGB, LOF",
            "enc_cpu_base_s": "encode CPU, base", "enc_cpu_lof_s": "encode CPU, LOF"}


def _cells(frame: pd.DataFrame) -> list[str]:
    """Where the pair was compared, in one column: dataset, size and device."""
    return [f"{r['dataset']} {r['resolution']} ({r['device']})" for _, r in frame.iterrows()]


def _note(row: pd.Series) -> str:
    parts = [f"{label}: {row[f'status_{s}']} — {row[f'reason_{s}']}"
             for s, label in (("psnr", "PSNR-RGB"), ("msssim", "MS-SSIM"))
             if row.get(f"status_{s}") != "ok" and row.get(f"reason_{s}")]
    return "; ".join(parts) or "ok"


def lof_section(doc: Document, data: ResultsView, options: Any, csv: Callable[[pd.DataFrame, str], str],
                figures: LOFFigures | None = None) -> LOFFigures:
    """Write the section (nothing when the store has no LOF configuration); returns its figures.
    ``options``: the report's (``method``, ``averaging``), so the BD here is computed as in the BD section."""
    if figures is None:
        figures = lof_figures(data, method=options.method, averaging=options.averaging)
    if figures.summary.empty and not figures.notes:
        return figures
    doc.heading(2, TITLE)
    doc.text("Each LOF configuration (its TOML names its base with `lof_of`: same adapter, same weights per rate "
             "point, LOF off) against its base, on the cells both have, over the images complete for both. BD-rate "
             f"of LOF with the base as anchor: method **{options.method}**, averaging **{options.averaging}**, 95 % "
             f"percentile bootstrap over images ({DEFAULT_RESAMPLES} resamples, seed {DEFAULT_SEED}, paired), as in "
             "the BD-rate section; negative = LOF saves bits at equal quality. Times are medians over those cells "
             "(each cell's time the median of its repeats); × = LOF ÷ base. LOF changes only the encoder, so the "
             "decode ratio should be about 1. On a loaded machine read CPU time.")
    if figures.notes:
        doc.text("\n".join(f"- {md_prose(n)}" for n in figures.notes))
    if figures.summary.empty:
        return figures
    summary = figures.summary
    name = csv(summary, "lof")
    shown = summary.assign(
        bd_psnr=[_with_ci(r["bd_rate_psnr_pct"], r["bd_rate_psnr_low"], r["bd_rate_psnr_high"], 2,
                          _few(r["n_images_psnr"])) for _, r in summary.iterrows()],
        bd_msssim=[_with_ci(r["bd_rate_msssim_pct"], r["bd_rate_msssim_low"], r["bd_rate_msssim_high"], 2,
                            _few(r["n_images_msssim"])) for _, r in summary.iterrows()],
        note=[_note(r) for _, r in summary.iterrows()], cells=_cells(summary))
    doc.table(shown, SUMMARY, {"n_images": fmt_number(3), "lof_iterations": fmt_number(6)})
    if any(_few(n) for n in summary["n_images"]):
        doc.text(FEW_TEXT)
    doc.heading(3, "LOF encode cost")
    ratio = fmt_fixed(2)
    doc.table(shown, TIMES, {**{c: fmt_duration() for c in TIMES if c.endswith("_s")},
                             **{c: ratio for c in TIMES if c.endswith("_ratio")}})
    doc.text(f"Data: [{Path(name).name}]({name}) (every column: the intervals, statuses, the images compared).")
    if figures.per_rate.empty:
        return figures
    doc.heading(3, "LOF per rate point")
    rates = csv(figures.per_rate, "lof_rates")
    doc.text("Mean bpp and PSNR-RGB over the same images (the dataset-average curve) and the median encode CPU time, "
             f"per rate point. Data: [{Path(rates).name}]({rates}).")
    per_rate = figures.per_rate.assign(cells=_cells(figures.per_rate))
    doc.table(per_rate, PER_RATE, {"n_images": fmt_number(3), "bpp_base": fmt_fixed(4), "bpp_lof": fmt_fixed(4),
                                   "psnr_base": fmt_fixed(3), "psnr_lof": fmt_fixed(3),
                                   "enc_cpu_base_s": fmt_duration(), "enc_cpu_lof_s": fmt_duration()})
    return figures

