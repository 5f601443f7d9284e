"""README tables of learned decoders' speed, for :mod:`bench.tools.readme_tables`: a pair's decode against
MSP's arithmetic floor, the decoders split into parts, the portable path's cost against float32 (all
from a store's ``decode_parts`` rows, :mod:`bench.tools.decode_parts`), the portable path's cross-decode
counts (a :mod:`bench.tools.portable_paths` store) and two codecs' decode time in a benchmark store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import ReportError
from bench.tools.readme_data import markdown

if TYPE_CHECKING:
    import pandas as pd

#: the parts' order in a table (a decoder's own extra parts follow, then ``total``)
PART_ORDER = ("g_s", "h_s", "context", "entropy_coding", "rest")


def decode_parts_table(results: Path, fast: str, slow: str, size: str, mode: str = "default") -> str:
    """Per thread count: ``fast``'s decode and its arithmetic floor, ``slow``'s decode and the ratios, wall /
    CPU, from the store's ``decode_parts`` total rows (latest run of each, :func:`bench.results.decode_parts_rows`)."""
    import pandas as pd

    rows = _stored_rows(results)
    total = rows[(rows["part"] == "total") & (rows["size"] == size) & (rows["mode"] == mode)]
    by = {}
    for codec in (fast, slow):
        mine = total[total["codec"] == codec]
        if mine.empty:
            raise ReportError(f"{results}: no decode_parts rows of {codec} at {size}, mode {mode}")
        _one_machine(mine, results, f"{codec} at {size}")
        by[codec] = mine.set_index("threads")
    a, b = by[fast], by[slow]
    cpu_floor = pd.to_numeric(a["gflop"]) / pd.to_numeric(a.get("matmul_gflop_per_cpu_s"))

    def pair(x: float, y: float, spec: str, unit: str = "", times: str = "") -> str:
        text = [f"{times}{v:{spec}}{unit}" if pd.notna(v) else "-" for v in (x, y)]
        return " / ".join(text)

    out = []
    for t in sorted(set(a.index) & set(b.index)):
        ra, rb, cf = a.loc[t], b.loc[t], cpu_floor.loc[t]
        out.append([str(int(t)), pair(ra["seconds"], ra["cpu_seconds"], ".1f", " s"),
                    pair(ra["floor_s"], cf, ".1f", " s"), f"{ra['decode_over_floor']:.1f}",
                    pair(rb["seconds"], rb["cpu_seconds"], ".1f", " s"),
                    pair(rb["seconds"] / ra["seconds"], rb["cpu_seconds"] / ra["cpu_seconds"], ".2f", times="×"),
                    pair(rb["seconds"] / ra["floor_s"], rb["cpu_seconds"] / cf, ".1f", times="×")])
    return markdown(["threads", f"{fast} decode", "its floor", "decode/floor", f"{slow} decode", f"{slow} ÷ {fast}",
                     f"{slow} ÷ {fast}'s floor"], out)


def decode_versus_table(results: Path, fast: str, slow: str) -> str:
    """Per cell size and thread count of a benchmark store: the decode CPU seconds and wall seconds of
    ``fast`` and ``slow`` (the range over the images and rounds) and the ratio of their median CPU seconds.
    Read through the results view (its latest configuration of each codec)."""
    from bench.results import load

    rows = load(results).rows
    out = []
    for (size, threads), group in rows.groupby(["resolution", "threads"], sort=True):
        mine = {c: group[group["codec"] == c] for c in (fast, slow)}
        if any(m.empty for m in mine.values()):
            continue

        def span(frame, column: str, spec: str) -> str:
            low, high = frame[column].min(), frame[column].max()
            return f"{low:{spec}}" if f"{low:{spec}}" == f"{high:{spec}}" else f"{low:{spec}}–{high:{spec}}"
        a, b = mine[fast], mine[slow]
        out.append([size, str(int(threads)), f"{span(a, 'dec_cpu_s', '.2f')} ({span(a, 'dec_time_s', '.1f')} s wall)",
                    f"{span(b, 'dec_cpu_s', '.2f')} ({span(b, 'dec_time_s', '.1f')} s wall)",
                    f"×{b['dec_cpu_s'].median() / a['dec_cpu_s'].median():.1f}", str(len(a)), str(len(b))])
    if not out:
        raise ReportError(f"{results}: no cell size and thread count with rows of both {fast} and {slow}")
    return markdown(["size", "threads", f"{fast} decode CPU-s", f"{slow} decode CPU-s", "CPU ratio (medians)",
                     f"{fast} cells", f"{slow} cells"], out)




def _stored_rows(results: Path) -> pd.DataFrame:
    """The store's decode_parts rows as the results view presents them (latest run of each unit)."""
    from bench.results import decode_parts_rows
    from bench.store import read_decode_parts

    rows = decode_parts_rows(read_decode_parts(results))
    if rows.empty:
        raise ReportError(f"{results}: no decode_parts rows (python -m bench.tools.decode_parts --results {results})")
    return rows


def _one_machine(rows: pd.DataFrame, results: Path, what: str) -> None:
    """Refuse rows of one unit timed on several machines (the table would mix them)."""
    if rows[["part", "threads", "mode"]].duplicated().any():
        raise ReportError(f"{results}: {what} was measured on several machines "
                          f"({', '.join(sorted(rows['cpu_model'].astype(str).unique()))})")


def _seconds(row) -> str:
    return f"{row['seconds']:.2f} / {row['cpu_seconds']:.2f}"


def parts_table(results: Path, fast: str, slow: str, size: str, mode: str = "default", threads: int = 1) -> str:
    """Both decoders of a pair split into parts at one thread count: counted GFLOP, wall / CPU seconds and the
    fraction of the same run's matmul rate per part (``-`` where a part does no counted arithmetic)."""
    import pandas as pd

    rows = _stored_rows(results)
    rows = rows[(rows["size"] == size) & (rows["mode"] == mode) & (rows["threads"] == threads)]
    by = {}
    for codec in (fast, slow):
        mine = rows[rows["codec"] == codec]
        if mine.empty:
            raise ReportError(f"{results}: no decode_parts rows of {codec} at {size}, mode {mode}, {threads} thread(s)")
        _one_machine(mine, results, f"{codec} at {size}")
        by[codec] = mine.set_index("part")
    seen = list(dict.fromkeys([*by[fast].index, *by[slow].index]))
    parts = [p for p in PART_ORDER if p in seen] + [p for p in seen if p not in (*PART_ORDER, "total")] + ["total"]

    def cells(frame: pd.DataFrame, part: str) -> list[str]:
        if part not in frame.index:
            return ["-", "-", "-"]
        r = frame.loc[part]
        gflop, fraction = pd.to_numeric(r["gflop"]), pd.to_numeric(r["matmul_fraction"])
        counted = pd.notna(gflop) and gflop > 0
        return [f"{gflop:.1f}" if counted else "-", _seconds(r), f"{fraction:.2f}" if counted and pd.notna(fraction) else "-"]
    out = [[part, *cells(by[fast], part), *cells(by[slow], part)] for part in parts]
    header = ["part"]
    for codec in (fast, slow):
        header += [f"{codec} GFLOP", f"{codec} s (wall / CPU)", f"{codec} of matmul"]
    return markdown(header, out)


def portable_cost_table(results: Path, codecs: Sequence[str], size: str, modes: Sequence[str]) -> str:
    """Per codec and thread count: the whole decode (wall / CPU seconds) in each of ``modes`` and the first
    mode's cost over each other's, from one store's interleaved ``decode_parts`` rows."""
    rows = _stored_rows(results)
    rows = rows[(rows["part"] == "total") & (rows["size"] == size)]
    out = []
    for codec in codecs:
        mine = rows[(rows["codec"] == codec) & rows["mode"].isin(list(modes))]
        _one_machine(mine, results, f"{codec} at {size}")
        missing = [m for m in modes if m not in set(mine["mode"])]
        if missing:
            raise ReportError(f"{results}: no decode_parts rows of {codec} at {size} in mode(s) {', '.join(missing)}")
        for threads in sorted(set(mine["threads"])):
            by_mode = {m: mine[(mine["mode"] == m) & (mine["threads"] == threads)] for m in modes}
            if any(f.empty for f in by_mode.values()):
                continue
            first = by_mode[modes[0]].iloc[0]
            ratios = [f"×{first['seconds'] / f.iloc[0]['seconds']:.2f} / ×{first['cpu_seconds'] / f.iloc[0]['cpu_seconds']:.2f}"
                      for f in list(by_mode.values())[1:]]
            out.append([codec, str(int(threads)), *(_seconds(f.iloc[0]) for f in by_mode.values()), *ratios])
    if not out:
        raise ReportError(f"{results}: no thread count of {', '.join(codecs)} at {size} with every mode")
    return markdown(["codec", "threads", *(f"{m} decode s (wall / CPU)" for m in modes),
                     *(f"{modes[0]} ÷ {m}" for m in modes[1:])], out)


def portable_paths_table(results: Path) -> str:
    """Per codec of a :mod:`bench.tools.portable_paths` store and path (float32, portable): the streams decoded
    again in a fresh 1-thread process, those that decode differently, their differing uint8 values, the bytes,
    and the portable path's rate change against float32 over the cells both stored."""
    from bench.results import load
    from bench.tools.portable_paths import PATHS, rate_change, tally

    view = load(results)
    stored = [frame for frame in (view.rows, view.errors) if len(frame)]
    planned: dict[str, set[str]] = {}
    for frame in stored:
        for name, key in zip(frame["codec"], frame["cell_key"]):
            if str(name).rpartition("+")[2] in PATHS:
                planned.setdefault(name, set()).add(key)
    if not planned:
        raise ReportError(f"{results}: no cells of derived NAME+float32 / NAME+portable configurations "
                          "(python -m bench.tools.portable_paths)")
    table = tally(view.rows, view.errors, planned)
    out = []
    for _, t in table.iterrows():
        change = ""
        if t["path"] == "portable":
            pct, pairs = rate_change(view.rows, t["codec"])
            change = "-" if pct is None else f"{pct:+.3f} % ({pairs} streams)"
        out.append([t["codec"], t["path"], f"{t['ok']} of {t['cells']}", str(t["streams"]), str(t["differ"]),
                    str(t["values"]), str(t["bytes"]), change])
    return markdown(["codec", "path", "cells", "streams decoded again (1 thread, forced)", "decode differently",
                     "differing uint8 values", "bytes", "rate vs float32"], out)
