"""The report's decode-parts section: learned decoders split into parts, against the arithmetic floor.

Rows come from the store's ``decode_parts`` table (``python -m bench.tools.decode_parts``) through
the results view (:func:`bench.results.decode_parts_rows`); the section is left out when the store
has none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.report.document import Document, fmt_duration, fmt_fixed, fmt_number
from bench.results import ResultsView

#: table columns (the CSV has every column of the rows, rate point, matmul rate and load included)
COLUMNS = {"codec": "codec", "mode": "mode (dtype)", "size": "size", "threads": "threads", "part": "part",
           "seconds": "wall", "cpu_seconds": "CPU", "gflop": "GFLOP", "matmul_fraction": "of matmul",
           "floor_s": "floor", "decode_over_floor": "decode/floor"}


def decode_parts_section(doc: Document, data: ResultsView, csv: Callable[[pd.DataFrame, str], str]) -> None:
    """One table row per codec, mode, size, thread count and part, the whole decode (``total``) last."""
    rows = data.decode_parts
    if rows.empty:
        return
    doc.heading(3, "Decode parts")
    doc.text("Each learned decoder split into its parts (`g_s` synthesis, `h_s` hyper-synthesis, `context` the "
             "probability model's networks, `entropy_coding` rANS and CDF-index work, `rest` everything else, so the "
             "parts sum to `total`), the fastest of interleaved decodes in one process "
             "(`python -m bench.tools.decode_parts`). GFLOP are counted (2 per direct multiply-add; entropy coding is "
             "not counted); *of matmul* is GFLOP ÷ seconds ÷ the rate of a 2048² matmul of the mode's dtype timed in "
             "the same run; *floor* = GFLOP ÷ that rate, the decode's time at the machine's arithmetic rate, and "
             "*decode/floor* how far the whole decode is from it. Wall and process CPU time (all threads); on a "
             "loaded machine read CPU time.")
    name = csv(rows, "decode_parts")
    shown = rows.assign(mode=[f"{m} ({d})" for m, d in zip(rows["mode"], rows["dtype"])])
    doc.table(shown[list(COLUMNS)], COLUMNS,
              {"seconds": fmt_duration(), "cpu_seconds": fmt_duration(), "gflop": fmt_number(4),
               "matmul_fraction": fmt_fixed(3), "floor_s": fmt_duration(), "decode_over_floor": fmt_fixed(1)})
    doc.text(f"Data: [{Path(name).name}]({name}).")
