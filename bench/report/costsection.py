"""The report's cost sections: the complexity tables (time, memory), cross-decode and the scaling fits.

Times are shown with their unit (``16.5 ms``, not ``0.0165``); the CSVs keep seconds. A scaling
fit of wall time is flagged where the cells' wall time far exceeds their CPU time (the process
waited: a busy machine, not the codec), and the same fit on CPU time is given beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.scaling import decode_points, decode_scaling_fits, decode_speedups, fit_power_law_by
from bench.machine import UNRECORDED
from bench.report import figures as figs
from bench.report import tables
from bench.results import ResultsView
from bench.report.document import Document, fmt_duration, fmt_fixed, fmt_number, md_escape, md_prose

#: A wall-time fit is flagged when, at some ladder size, the median wall time is at least this many
#: times the median CPU time of the same cells (single-threaded work that waited, not computed).
WAIT_RATIO = 2.0
#: Wall-time cost → the CPU-time column of the same calls.
CPU_OF = {"enc_time_s": "enc_cpu_s", "dec_time_s": "dec_cpu_s"}
#: Complexity columns shown in the time table and in the memory table (column → header).
TIME_COLUMNS = {"megapixels": "MP", "cells": "cells", "enc_time_s": "encode", "dec_time_s": "decode"}
MEMORY_COLUMNS = {"mem_cells": "mem cells", "enc_mem_mib": "encode mem (MiB)", "dec_mem_mib": "decode mem (MiB)",
                  "enc_mem_peak_mib": "encode peak (MiB)", "dec_mem_peak_mib": "decode peak (MiB)"}

Csv = Callable[[pd.DataFrame, str], str]
Figure = Callable[[Any, str, str, list[str]], Any]


def dataset_label(dataset: str, images: set[str]) -> str:
    """What a row's ``dataset`` is, for a reader: ladder rows (``ladder:FOLDER``, the folder their
    image came from) become ``crops of FOLDER``, or ``crops of samples (scikit-image photographs)``
    for the bundled photographs the ladder falls back to (their folder is scikit-image's ``data``)."""
    if not dataset.startswith("ladder:"):
        return dataset
    folder = dataset[len("ladder:"):]
    if folder == "data" and images:
        from bench.datasets import SAMPLE_NAMES  # only here: bench.datasets imports the image libraries

        if images <= set(SAMPLE_NAMES):
            return "crops of samples (scikit-image photographs)"
    return f"crops of {folder}"


def complexity_section(doc: Document, data: ResultsView, csv: Csv) -> None:
    """Hardware line, then a time table and a memory table (one row per codec, device, machine
    class, dataset and resolution), both from ``data/complexity.csv``."""
    doc.heading(2, "Complexity")
    machines = sorted(set(data.rows["machine"]) - {UNRECORDED}) or sorted(
        {f"{m.get('cpu')}" + (f"; GPU {m['gpu']}" if m.get("gpu") else "") for m in data.runs})
    doc.text(f"Hardware (machine class: CPU model, logical CPUs, architecture): "
             f"{md_escape(' / '.join(machines)) or 'not recorded'}; timings compare only within a machine class, so "
             "the tables have one row per class. Times: median over the cells of each row (each cell's time is "
             "itself the median of its repeats). Memory is the codec's own, measured in a clean process (see "
             "Definitions): `mem` the growth during the call, `peak` that process's whole peak RSS (interpreter and "
             "libraries included), `model` a learned codec's weights; each the largest over the `mem cells` cells "
             "with a reading. `native` rows cover every rate point and image; ladder rows (WxH) the middle rate "
             "point on centre crops. Untrained codecs are included here: their timings are valid.")
    mixed = data.mixed_machines()
    if mixed:
        doc.text("**Warning: timings from different machine classes.** " + "; ".join(
            md_escape(f"{codec}: {' / '.join(classes)}") for codec, classes in mixed.items()) + ". Their rows below "
            "are split by machine class; the speed figures and scaling fits pool them, so compare those with care.")
    table = tables.complexity_table(data.rows)
    name = csv(table, "complexity")
    images = data.rows.groupby("dataset")["image"].agg(lambda s: set(s.astype(str)))
    table["dataset"] = [dataset_label(d, images.get(d, set())) for d in table["dataset"]]
    keys = {"codec": "codec", "device": "device", "machine": "machine class", "dataset": "dataset",
            "resolution": "resolution"}
    if table["machine"].nunique() < 2:  # one class: named in the text above, not on every row
        del keys["machine"]
    duration, mib = fmt_duration(3), fmt_fixed(1)
    formats = {"megapixels": fmt_number(3), "cells": fmt_number(4), "enc_time_s": duration, "dec_time_s": duration,
               "mem_cells": fmt_number(4), "enc_kmac_per_px": fmt_number(4), "dec_kmac_per_px": fmt_number(4),
               "params": lambda v: "" if pd.isna(v) else f"{v / 1e6:.1f} M", "dec_matmul_fraction": fmt_fixed(2)}
    timed = {**keys, **TIME_COLUMNS}
    if table["dec_kmac_per_px"].notna().any():  # learned codecs (bench.complexity)
        timed.update({"enc_kmac_per_px": "encode kMAC/px", "dec_kmac_per_px": "decode kMAC/px",
                      "params": "parameters", "dec_matmul_fraction": "decode / matmul rate"})
    timed["timer"] = "timer"
    doc.heading(3, "Time")
    doc.table(table, timed, formats)
    if table["dec_kmac_per_px"].notna().any():
        doc.text("kMAC/px: multiply-adds per image pixel counted with PyTorch's FLOP counter (convolutions and "
                 "matrix products; not entropy coding, element-wise ops or Python loops), encoder = analysis + "
                 "hyperprior + context, decoder = hyper-synthesis + context + synthesis. Decode / matmul rate: "
                 "the decoder's counted FLOPs per second of decode time over a float32 2048² matmul timed in the "
                 "same worker (1.0 = the decoder runs at the machine's arithmetic rate).")
    memory = {**keys, **MEMORY_COLUMNS}
    if table["model_mib"].notna().any():
        memory["model_mib"] = "model (MiB)"
    if table["enc_gpu_peak_mib"].notna().any() or table["dec_gpu_peak_mib"].notna().any():
        memory.update({"enc_gpu_peak_mib": "encode GPU peak (MiB)", "dec_gpu_peak_mib": "decode GPU peak (MiB)"})
    doc.heading(3, "Memory")
    doc.table(table, memory, {**formats, **{c: mib for c in memory if c.endswith("_mib")}})
    doc.text(f"Data: [{Path(name).name}]({name}) (times in seconds, memory in MiB).")


def _table_section(doc: Document, csv: Csv, table: pd.DataFrame, title: str, text: str, stem: str,
                   columns: dict[str, str], formats: dict) -> None:
    """A level-3 section of one table and its CSV; nothing when the table is empty."""
    if table.empty:
        return
    doc.heading(3, title)
    doc.text(text)
    name = csv(table, stem)
    doc.table(table, columns, formats)
    doc.text(f"Data: [{Path(name).name}]({name}).")


def overhead_section(doc: Document, data: ResultsView, csv: Csv) -> None:
    """How much of each codec's cell wall time its timed calls were (the rest is the suite's own work)."""
    _table_section(
        doc, csv, tables.overhead_table(data.rows), "Suite overhead",
        "Per codec: the cells' wall time in their workers (Σ `wall_s`: warm-up, timed calls, metrics, memory probe, "
        "complexity count, cross-decode) against the timed calls alone (Σ (encode + decode median) × repeats). "
        "`cell ÷ timed` near 1: the cells were spent measuring the codec; large: on the suite's own work. The run's "
        "own start-up and scheduling are outside every cell.", "overhead",
        {"codec": "codec", "device": "device", "cells": "cells", "cell_wall_s": "cells' wall (s)",
         "timed_s": "timed calls (s)", "overhead": "cell ÷ timed"},
        {"cells": fmt_number(4), "cell_wall_s": fmt_fixed(1), "timed_s": fmt_fixed(1), "overhead": fmt_fixed(2)})


def cross_decode_section(doc: Document, data: ResultsView, csv: Csv) -> None:
    """Cells decoded again in a fresh process at another thread count (only if any were)."""
    _table_section(
        doc, csv, tables.cross_decode_table(data.rows), "Cross-decode",
        "Each cell's stream decoded again in a fresh process with another thread count (and on the other device "
        "where a GPU exists); `identical`: the same uint8 image as the measured decode.", "cross_decode",
        {"codec": "codec", "device": "device", "cells": "cells", "identical": "identical", "differs": "differs",
         "not_cross_decoded": "not cross-decoded", "errors": "errors", "decoded_with": "decoded with"}, {})


def waiting(ladder: pd.DataFrame) -> pd.DataFrame:
    """Per (codec, device, wall-time cost): the ladder size where the cells' median wall time most
    exceeds their median CPU time, with both and their ratio; ``flagged`` where the ratio reaches
    :data:`WAIT_RATIO`. CPU cells only, and only where CPU time was recorded (not for subprocess
    codecs, whose work runs in a child the worker's CPU clock does not see, nor on a GPU)."""
    columns = ["codec", "device", "cost", "resolution", "megapixels", "wall_s", "cpu_s", "ratio", "flagged"]
    rows = []
    for cost, cpu in CPU_OF.items():
        if cpu not in ladder:
            continue
        cells = ladder[ladder["device"] == "cpu"].assign(
            _wall=pd.to_numeric(ladder[cost], errors="coerce"), _cpu=pd.to_numeric(ladder[cpu], errors="coerce"))
        cells = cells[(cells["_wall"] > 0) & (cells["_cpu"] > 0)]
        for (codec, device, pixels), group in cells.groupby(["codec", "device", "pixels"], sort=True):
            wall, cpu_s = float(group["_wall"].median()), float(group["_cpu"].median())
            rows.append({"codec": codec, "device": device, "cost": cost, "resolution": group["resolution"].iloc[0],
                         "megapixels": pixels / 1e6, "wall_s": wall, "cpu_s": cpu_s, "ratio": wall / cpu_s})
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    worst = frame.loc[frame.groupby(["codec", "device", "cost"])["ratio"].idxmax()].reset_index(drop=True)
    worst["flagged"] = worst["ratio"] >= WAIT_RATIO
    return worst[columns]


def cpu_fits(ladder: pd.DataFrame) -> pd.DataFrame:
    """The power-law fits of CPU time (``enc_cpu_s``, ``dec_cpu_s``) on the ladder, as :func:`tables.scaling_fits`."""
    parts = []
    for cpu in CPU_OF.values():
        if cpu not in ladder:
            continue
        points = ladder[ladder["device"] == "cpu"].assign(**{cpu: pd.to_numeric(ladder[cpu], errors="coerce")})
        points = points[points[cpu] > 0]
        if points.empty:
            continue
        parts.append(fit_power_law_by(points, cpu, by=("codec", "device"), aggregate="median"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def scaling_section(doc: Document, data: ResultsView, palette: dict, csv: Csv, figure: Figure) -> pd.DataFrame | None:
    """Time and memory vs pixels on the resolution ladder: figures, the fit table, and flags for
    wall-time fits that measure waiting rather than computing."""
    doc.heading(2, "Complexity scaling")
    ladder = data.ladder
    if ladder.empty or ladder["pixels"].nunique() < 2:
        doc.text("No resolution ladder in this store (at least two sizes are needed): no scaling fits.")
        return None
    sizes = ", ".join(ladder.drop_duplicates("pixels").sort_values("pixels")["resolution"])
    doc.text(f"Resolution ladder: {md_escape(sizes)} (centre crops, each codec's middle rate point). Log-log axes; "
             "markers are per-size medians over the ladder images, lines the fitted power law cost ∝ pixels^k with k "
             "and R² in the legend (k = 1: linear in the pixel count). Time fits use wall time; a fit marked ⚠ "
             f"rests on cells whose wall time is at least {WAIT_RATIO:g}× their CPU time (the process waited: a busy "
             "machine), and its CPU-time fit is given below the table.")
    fits = tables.scaling_fits(ladder)
    waits = waiting(ladder)
    cpu = cpu_fits(ladder)
    flagged = {(r["codec"], r["device"], r["cost"]) for _, r in waits[waits["flagged"]].iterrows()}
    points = pd.concat([tables.scaling_points(ladder, c) for c in tables.COSTS], ignore_index=True)
    names = [csv(fits, "scaling_fits"), csv(points, "scaling_points")]
    if len(waits):
        names.append(csv(waits, "scaling_wall_vs_cpu"))
    if len(cpu):
        names.append(csv(cpu, "scaling_cpu_fits"))
    codecs = sorted(ladder["codec"].unique())
    doc.figure(figure(figs.scaling_figure(points, fits, ("enc_time_s", "dec_time_s"), "Time vs image size", palette,
                                          codecs, flagged), "scaling_time", "encode and decode time vs megapixels",
                      names))
    doc.figure(figure(figs.scaling_figure(points, fits, ("enc_mem_bytes", "dec_mem_bytes"),
                                          "Memory growth (clean process) vs image size", palette, codecs),
                      "scaling_memory", "encode and decode memory vs megapixels", names))
    for cost in ("enc_mem_bytes", "dec_mem_bytes"):
        values = pd.to_numeric(ladder[cost], errors="coerce")
        flat = (~(values > 0)).groupby(ladder["codec"]).agg(["sum", "size"])
        flat = flat[flat["sum"] > 0]
        if len(flat):
            doc.text(f"{tables.COSTS[cost][0].capitalize()}: {int(flat['sum'].sum())} of {len(ladder)} ladder cells "
                     "have no positive clean-process reading (`mem_method` says why: `off`, `failed: …`, or a store "
                     "from before these columns); they are not drawn and not fitted: "
                     + ", ".join(md_escape(f"{c} {int(r['sum'])}/{int(r['size'])}") for c, r in flat.iterrows()) + ".")
    doc.table(*_fit_table(fits, flagged))
    doc.text("R² of a fit through 2 sizes is 1 by construction and says nothing; k then rests on two points.")
    _flag_notes(doc, fits, waits, cpu)
    errors = fits[fits["error"].astype(str) != ""]
    if len(errors):
        doc.text("\n".join(md_prose(f"- no fit for {r['codec']} {tables.COSTS[r['cost']][0]}: {r['error']}")
                           for _, r in errors.iterrows()))
    decode_scaling_part(doc, ladder, csv)
    return fits


def _steps_text(points: pd.DataFrame) -> str:
    """A codec's sequential steps per ladder size, smallest first: one number when constant."""
    steps = [f"{v:,.0f}" for v in points["sequential_steps"] if np.isfinite(v)]
    return steps[0] if len(set(steps)) == 1 else " · ".join(steps)


def decode_scaling_part(doc: Document, ladder: pd.DataFrame, csv: Csv) -> None:
    """Decode scaling from the ladder rows (``python -m bench.decode_scaling`` runs such cells):
    per codec the sequential decoding steps at each size and the exponents of steps, decode wall and
    CPU time against pixels; then each codec's speed-up over each serial decoder (mbt2018: steps
    growing with the pixels) at the largest size both decoded, wall and CPU. Left out when no ladder codec reports its steps."""
    points = decode_points(ladder)
    if not points["sequential_steps"].notna().any():
        return
    fits = decode_scaling_fits(ladder)
    fits = fits[fits["codec"].isin(points.loc[points["sequential_steps"].notna(), "codec"])].reset_index(drop=True)
    names = [csv(points, "decode_scaling_points"), csv(fits, "decode_scaling_fits")]
    doc.heading(3, "Decode scaling")
    doc.text("Sequential entropy-decoding steps as each learned codec reports them per cell (a serial context model: one "
             "per latent position, so they grow with the pixels; MSP: a constant (1 + k·S)·G), and the power-law "
             "exponents k of steps, decode wall time and decode CPU time against pixels (per-size medians of the "
             "ladder cells, as above). Steps are listed per ladder size, smallest first.")
    two = fmt_fixed(2)
    shown = fits.assign(steps=[_steps_text(points[(points["codec"] == c) & (points["device"] == d)])
                               for c, d in zip(fits["codec"], fits["device"])])
    doc.table(shown, {"codec": "codec", "device": "device", "sizes": "sizes", "steps": "steps per size",
                      "steps_k": "steps k", "dec_time_k": "decode wall k", "dec_cpu_k": "decode CPU k"},
              {"sizes": fmt_number(4), "steps_k": two, "dec_time_k": two, "dec_cpu_k": two})
    speed = decode_speedups(ladder)
    if speed.empty:
        doc.text("No speed-ups: no codec here has a serial decoder (steps growing with the pixels, e.g. mbt2018) "
                 "to compare with.")
    else:
        names.append(csv(speed, "decode_speedups"))
        duration = fmt_duration(3)
        ratio = lambda v: "" if pd.isna(v) else f"×{v:.1f}"  # noqa: E731
        doc.text("Speed-up over each serial decoder (its steps grow with the pixels: mbt2018, mbt2018-tiny) at the "
                 "largest size both decoded on the same device: the reference's median decode time ÷ the codec's, "
                 "wall and CPU (on a loaded machine read CPU).")
        doc.table(speed, {"codec": "codec", "reference": "over", "device": "device", "resolution": "size",
                          "reference_wall_s": "its wall", "wall_s": "wall", "wall_speedup": "speed-up (wall)",
                          "reference_cpu_s": "its CPU", "cpu_s": "CPU", "cpu_speedup": "speed-up (CPU)"},
                  {"reference_wall_s": duration, "wall_s": duration, "reference_cpu_s": duration, "cpu_s": duration,
                   "wall_speedup": ratio, "cpu_speedup": ratio})
    doc.text("Data: " + ", ".join(f"[{Path(n).name}]({n})" for n in names) + ".")


def _fit_table(fits: pd.DataFrame, flagged: set[tuple[str, str, str]]) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per (codec, device): sizes, then k and R² of each cost (k marked ⚠ where flagged)."""
    wide = fits.pivot_table(index=["codec", "device"], columns="cost", values=["exponent", "r2"], aggfunc="first")
    sizes = fits[fits["cost"] == "enc_time_s"].set_index(["codec", "device"])["n_sizes"]
    table = pd.DataFrame({"codec": [i[0] for i in wide.index], "device": [i[1] for i in wide.index],
                          "sizes": [int(sizes.get(i, 0)) for i in wide.index]})
    two = fmt_fixed(2)
    for cost, (label, _, _) in tables.COSTS.items():
        for stat in ("exponent", "r2"):
            key = (stat, cost)
            values = wide[key].to_numpy() if key in wide else np.full(len(table), np.nan)
            text = [two(v) for v in values]
            if stat == "exponent":
                text = [t + (" ⚠" if t and (c, d, cost) in flagged else "")
                        for t, c, d in zip(text, table["codec"], table["device"])]
            table[f"{label} {'k' if stat == 'exponent' else 'R²'}"] = text
    return table, {c: c for c in table.columns}


def _flag_notes(doc: Document, fits: pd.DataFrame, waits: pd.DataFrame, cpu: pd.DataFrame) -> None:
    """One line per flagged wall-time fit: the wall and CPU times that give it away, and the CPU-time fit."""
    lines = []
    duration = fmt_duration(3)
    for _, w in waits[waits["flagged"]].iterrows():
        fit = fits[(fits["codec"] == w["codec"]) & (fits["device"] == w["device"]) & (fits["cost"] == w["cost"])]
        k = f"k = {fit['exponent'].iloc[0]:.2f}" if len(fit) and np.isfinite(fit["exponent"].iloc[0]) else "the fit"
        line = (f"- ⚠ {md_escape(w['codec'])} {tables.COSTS[w['cost']][0]}: {k} rests on wall times far above CPU "
                f"time (at {md_escape(w['resolution'])}: wall {duration(w['wall_s'])}, CPU {duration(w['cpu_s'])}, "
                f"×{w['ratio']:.1f}): it measures waiting on a busy machine, not the codec")
        alt = cpu[(cpu["codec"] == w["codec"]) & (cpu["device"] == w["device"])
                  & (cpu["cost"] == CPU_OF[w["cost"]])] if len(cpu) else cpu
        if len(alt) and np.isfinite(alt["exponent"].iloc[0]):
            r2 = alt["r2"].iloc[0]
            line += (f"; on CPU time k = {alt['exponent'].iloc[0]:.2f}"
                     + (f" (R² {r2:.2f})" if np.isfinite(r2) and alt["n_sizes"].iloc[0] > 2 else ""))
        lines.append(line + ".")
    if lines:
        doc.text("\n".join(lines))
