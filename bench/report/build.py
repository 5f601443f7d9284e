"""Assemble the report: read the store, compute the tables, draw the figures, write the files.

Out folder layout::

    report.md, report.html          the report (the HTML page is self-contained)
    figures/<name>.png, .svg         every figure
    data/<name>.csv                  the numbers behind every figure and table
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.analysis.bd import AVERAGE_CURVE, MEAN_OF_PER_IMAGE
from bench.errors import ReportError
from bench.report import figures as figs
from bench.report import provenance as prov
from bench.report import tables
from bench.report.anchoring import (BDAnchor, ReportOptions, anchor_difference, check_options, plot_anchors,
                                    resolve_anchor)
from bench.report.bdsection import bd_section, present_metrics
from bench.machine import UNRECORDED
from bench.report.data import ReportData, load
from bench.report.document import Document, FigureRef, fmt_fixed, fmt_number
from bench.report.training import training_section

METHOD_TEXT = {
    "pchip": "piecewise cubic Hermite interpolation of log-rate over quality, integrated exactly (JVET common "
             "test conditions)",
    "cubic": "third-order polynomial fit of log-rate over quality, integrated exactly (Bjøntegaard, VCEG-M33)",
    "akima": "Akima spline of log-rate over quality, integrated exactly",
}
AVERAGING_TEXT = {
    AVERAGE_CURVE: "BD of the dataset-average curve (mean bpp and mean per-image quality at each rate point over "
                   "the same images) against the anchor's curve — the usual convention in papers",
    MEAN_OF_PER_IMAGE: "arithmetic mean of per-image BD values, each image's curve against the anchor codec's "
                       "curve on the same image",
}

__all__ = ["Report", "ReportError", "ReportOptions", "build_report"]


@dataclass
class Report:
    out: Path
    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    csv: list[Path] = field(default_factory=list)
    bd: pd.DataFrame | None = None
    fits: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def _csv(frame: pd.DataFrame, out: Path, name: str, written: list[Path]) -> str:
    path = out / "data" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    written.append(path)
    return path.relative_to(out).as_posix()


def _figure(fig, out: Path, name: str, alt: str, csv: list[str], written: list[Path]) -> FigureRef:
    paths = figs.save(fig, out / "figures" / name)
    written.extend(paths)
    return FigureRef(paths[0].relative_to(out).as_posix(), paths[1].relative_to(out).as_posix(), alt, csv)


# --- sections ------------------------------------------------------------------------------------

def _provenance_section(doc: Document, data: ReportData, options: ReportOptions, notes: list[str]) -> None:
    doc.heading(2, "Provenance")
    doc.text(f"Results store: `{data.results_dir}` · report written "
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} by lic-bench at commit "
             f"`{prov.git_commit() or 'unknown'}` · BD method `{options.method}`, averaging `{options.averaging}`.")
    doc.heading(3, "Runs")
    doc.text("The manifests of the runs whose measurements are shown (each run stores one).")
    doc.table(prov.runs_table(data.runs))
    doc.heading(4, "Package versions")
    doc.table(prov.package_versions(data.runs))
    doc.heading(3, "Codecs")
    doc.table(prov.codecs_table(data.rows, data.errors, data.runs))
    doc.heading(3, "Definitions")
    doc.text("From the metric registry (bench/metrics/registry.py) and the runs' manifests:")
    lines = ["| column | meaning |", "|---|---|"] + [f"| {d.column} | {d.meaning} |" for d in prov.definitions(
        data.runs, {c for c in data.rows.columns if data.rows[c].notna().any()})]
    doc.text("\n".join(lines))
    doc.text(
        "Derived in this report:\n\n"
        "- **dataset-average curve**: per codec and rate point, the mean bpp and the mean of the per-image quality "
        "(PSNR in dB, MS-SSIM in dB) over the images present at every rate point of that codec, native resolution;\n"
        f"- **BD-rate** ({options.method}): {METHOD_TEXT[options.method]}; averaging `{options.averaging}`: "
        f"{AVERAGING_TEXT[options.averaging]}. Negative = fewer bits than the anchor at equal quality. Each BD value "
        "carries a 95 % percentile bootstrap interval over images (images resampled with replacement, recomputed "
        "under the same averaging and method; resamples and seed in the BD section and `data/bd_rate.csv`);\n"
        "- **memory** (`*_mem`): each cell's encode and decode run once more, untimed, each in a fresh fork of a "
        "clean process that loaded the codec (and its model) but touched no image; growth = that process's peak RSS "
        "during the call minus its RSS right before it (shared-library pages the call mapped not counted), peak = its "
        "whole peak RSS, model = a learned codec's parameters + buffers. Subprocess codecs: the child's own peak "
        "RSS. Cells without a reading (`--memory mid`: only the middle rate point is measured) are left out;\n"
        "- **scaling fit**: least-squares line of log(cost) on log(pixels) through the per-size medians of the "
        "resolution-ladder cells (centre crops, the codec's middle rate point); `k` is the exponent "
        "(cost ∝ pixels^k, 1 = linear), R² that of the line. Sizes with no positive value are left out.")
    doc.heading(3, "Excluded from rate-distortion")
    if data.untrained:
        doc.text(f"**{', '.join(data.untrained)}** ran with untrained (random) weights (`trained = 0`): their rate "
                 "and quality mean nothing, so they are left out of every RD curve, BD table and the trade-off plot, "
                 "and appear only in the complexity tables and scaling plots.")
    else:
        doc.text("No untrained codec in this store: learned codecs on random weights (`trained = 0`) would be "
                 "shown in complexity tables and plots only, never in RD curves or BD tables.")
    doc.heading(3, "Errors and notes")
    doc.table(prov.error_summary(data.errors), empty="No error cells.")
    if notes:
        doc.text("\n".join(f"- {n}" for n in notes))


def _rd_section(doc: Document, data: ReportData, bd_anchor: BDAnchor | None, options: ReportOptions,
                notes: list[str], palette: dict, out: Path, written: list[Path]) -> None:
    doc.heading(2, "Rate-distortion")
    doc.text("Dataset-average curves of every trained codec at native resolution (solid, markers) with published "
             "anchor curves (dashed, grey, labelled `label [repository@commit]`). The x axis spans the measured "
             "rates; anchors are clipped to it.")
    rd = data.rd_rows
    curves = {q: tables.rd_curves(rd, q) for q in tables.QUALITIES}
    for dataset in data.datasets():
        anchors = plot_anchors(dataset, bd_anchor, options.plot_anchors, notes)
        points = {q: tables.anchor_points(anchors, q) for q in tables.QUALITIES}
        doc.heading(3, f"{dataset}")
        csv = []
        for q in tables.QUALITIES:
            measured = curves[q][curves[q]["dataset"] == dataset].assign(source="measured")
            published = points[q].assign(source="published").rename(columns={"anchor": "codec"})
            both = pd.concat([measured, published], ignore_index=True)
            csv.append(_csv(both, out, f"rd_{_slug(dataset)}_{q}", written))
        fig = figs.rd_figure(curves, points, dataset, palette)
        doc.figure(_figure(fig, out, f"rd_{_slug(dataset)}", f"RD curves on {dataset}", csv, written))
        partial = curves["psnr_rgb"]
        partial = partial[(partial["dataset"] == dataset) & (partial["n_images"] < partial["n_images_total"])]
        for label, g in partial.groupby("label"):
            doc.text(f"- `{label}`: averaged over {g['n_images'].iloc[0]} of {g['n_images_total'].iloc[0]} images "
                     "(the others miss a rate point)")


def _bd_section(doc: Document, data: ReportData, bd_anchor: BDAnchor | None, options: ReportOptions,
                out: Path, written: list[Path]) -> pd.DataFrame | None:
    difference = anchor_difference(bd_anchor, options.method) if bd_anchor is not None else ""
    return bd_section(doc, data, bd_anchor, options, lambda frame, name: _csv(frame, out, name, written),
                      METHOD_TEXT, AVERAGING_TEXT, difference)


def _complexity_section(doc: Document, data: ReportData, out: Path, written: list[Path]) -> None:
    doc.heading(2, "Complexity")
    machines = sorted(set(data.rows["machine"]) - {UNRECORDED}) or sorted(
        {f"{m.get('cpu')}" + (f"; GPU {m['gpu']}" if m.get("gpu") else "") for m in data.runs})
    doc.text(f"Hardware (machine class: CPU model, logical CPUs, architecture): {' / '.join(machines) or 'not recorded'}; "
             "timings compare only within a machine class, so the table has one row per class. Times: median over "
             "the cells of each row (each cell's time is itself the median of its repeats). Memory is the codec's "
             "own, measured in a clean process (see Definitions): `mem` the growth during the call, `peak` that "
             "process's whole peak RSS (interpreter and libraries included), `model` a learned codec's weights; each "
             "the largest over the `mem cells` cells with a reading. `native` rows cover every rate point and image; "
             "ladder rows (WxH) the middle rate point on centre crops. Untrained codecs are included here: their "
             "timings are valid.")
    mixed = data.mixed_machines()
    if mixed:
        doc.text("**Warning: timings from different machine classes.** " + "; ".join(
            f"{codec}: {' / '.join(classes)}" for codec, classes in mixed.items()) + ". Their rows below are split "
            "by machine class; the speed figures and scaling fits pool them, so compare those with care.")
    table = tables.complexity_table(data.rows)
    csv = _csv(table, out, "complexity", written)
    columns = {"codec": "codec", "device": "device", "machine": "machine class", "dataset": "dataset",
               "resolution": "resolution",
               "megapixels": "MP", "cells": "cells", "enc_time_s": "encode (s)", "dec_time_s": "decode (s)",
               "mem_cells": "mem cells", "enc_mem_mib": "encode mem (MiB)", "dec_mem_mib": "decode mem (MiB)",
               "enc_mem_peak_mib": "encode peak (MiB)", "dec_mem_peak_mib": "decode peak (MiB)"}
    if table["model_mib"].notna().any():
        columns["model_mib"] = "model (MiB)"
    if table["machine"].nunique() < 2:  # one class: named in the text above, not on every row
        del columns["machine"]
    if table["enc_gpu_peak_mib"].notna().any() or table["dec_gpu_peak_mib"].notna().any():
        columns.update({"enc_gpu_peak_mib": "encode GPU peak (MiB)", "dec_gpu_peak_mib": "decode GPU peak (MiB)"})
    if table["dec_kmac_per_px"].notna().any():  # learned codecs (bench.complexity)
        columns.update({"enc_kmac_per_px": "encode kMAC/px", "dec_kmac_per_px": "decode kMAC/px",
                        "params": "parameters", "dec_matmul_fraction": "decode / matmul rate"})
    columns["timer"] = "timer"
    mib = fmt_fixed(1)
    doc.table(table, columns, {"megapixels": fmt_number(3), "cells": fmt_number(4), "enc_time_s": fmt_number(3),
                               "dec_time_s": fmt_number(3), "enc_mem_mib": mib, "dec_mem_mib": mib,
                               "mem_cells": fmt_number(4), "enc_mem_peak_mib": mib, "dec_mem_peak_mib": mib,
                               "model_mib": mib, "enc_gpu_peak_mib": mib,
                               "dec_gpu_peak_mib": mib, "enc_kmac_per_px": fmt_number(4),
                               "dec_kmac_per_px": fmt_number(4),
                               "params": lambda v: "" if pd.isna(v) else f"{v / 1e6:.1f} M",
                               "dec_matmul_fraction": fmt_fixed(2)})
    if table["dec_kmac_per_px"].notna().any():
        doc.text("kMAC/px: multiply-adds per image pixel counted with PyTorch's FLOP counter (convolutions and "
                 "matrix products; not entropy coding, element-wise ops or Python loops), encoder = analysis + "
                 "hyperprior + context, decoder = hyper-synthesis + context + synthesis. Decode / matmul rate: "
                 "the decoder's counted FLOPs per second of decode time over a float32 2048² matmul timed in the "
                 "same worker (1.0 = the decoder runs at the machine's arithmetic rate).")
    doc.text(f"Data: [{Path(csv).name}]({csv}).")


def _cross_decode_section(doc: Document, data: ReportData, out: Path, written: list[Path]) -> None:
    """Cells decoded again in a fresh process at another thread count (only if any were)."""
    table = tables.cross_decode_table(data.rows)
    if table.empty:
        return
    doc.heading(3, "Cross-decode")
    doc.text("Each cell's stream decoded again in a fresh process with another thread count (and on the other "
             "device where a GPU exists); `identical`: the same uint8 image as the measured decode.")
    csv = _csv(table, out, "cross_decode", written)
    doc.table(table, {"codec": "codec", "device": "device", "cells": "cells", "identical": "identical",
                      "differs": "differs", "not_cross_decoded": "not cross-decoded", "errors": "errors",
                      "decoded_with": "decoded with"}, {})
    doc.text(f"Data: [{Path(csv).name}]({csv}).")


def _scaling_section(doc: Document, data: ReportData, palette: dict, out: Path,
                     written: list[Path]) -> pd.DataFrame | None:
    doc.heading(2, "Complexity scaling")
    ladder = data.ladder
    if ladder.empty or ladder["pixels"].nunique() < 2:
        doc.text("No resolution ladder in this store (at least two sizes are needed): no scaling fits.")
        return None
    sizes = ", ".join(ladder.drop_duplicates("pixels").sort_values("pixels")["resolution"])
    doc.text(f"Resolution ladder: {sizes} (centre crops, each codec's middle rate point). Log-log axes; markers are "
             "per-size medians over the ladder images, lines the fitted power law cost ∝ pixels^k with k and R² in "
             "the legend (k = 1: linear in the pixel count).")
    fits = tables.scaling_fits(ladder)
    points = pd.concat([tables.scaling_points(ladder, c) for c in tables.COSTS], ignore_index=True)
    csv = [_csv(fits, out, "scaling_fits", written), _csv(points, out, "scaling_points", written)]
    doc.figure(_figure(figs.scaling_figure(points, fits, ("enc_time_s", "dec_time_s"), "Time vs image size", palette,
                                           sorted(ladder["codec"].unique())),
                       out, "scaling_time", "encode and decode time vs megapixels", csv, written))
    doc.figure(_figure(figs.scaling_figure(points, fits, ("enc_mem_bytes", "dec_mem_bytes"),
                                           "Memory growth (clean process) vs image size", palette,
                                           sorted(ladder["codec"].unique())),
                       out, "scaling_memory", "encode and decode memory vs megapixels", csv, written))
    for cost in ("enc_mem_bytes", "dec_mem_bytes"):
        values = pd.to_numeric(ladder[cost], errors="coerce")
        flat = (~(values > 0)).groupby(ladder["codec"]).agg(["sum", "size"])
        flat = flat[flat["sum"] > 0]
        if len(flat):
            doc.text(f"{tables.COSTS[cost][0].capitalize()}: {int(flat['sum'].sum())} of {len(ladder)} ladder cells "
                     "have no positive clean-process reading (`mem_method` says why: `off`, `failed: …`, or a store "
                     "from before these columns); they are not drawn and not fitted: "
                     + ", ".join(f"{c} {int(r['sum'])}/{int(r['size'])}" for c, r in flat.iterrows()) + ".")
    wide = fits.pivot_table(index=["codec", "device"], columns="cost", values=["exponent", "r2"], aggfunc="first")
    sizes = fits[fits["cost"] == "enc_time_s"].set_index(["codec", "device"])["n_sizes"]
    table = pd.DataFrame({"codec": [i[0] for i in wide.index], "device": [i[1] for i in wide.index],
                          "sizes": [int(sizes.get(i, 0)) for i in wide.index]})
    for cost, (label, _, _) in tables.COSTS.items():
        for stat in ("exponent", "r2"):
            key = (stat, cost)
            column = f"{label} {'k' if stat == 'exponent' else 'R²'}"
            table[column] = wide[key].to_numpy() if key in wide else float("nan")
    doc.table(table, formats={c: fmt_fixed(2) for c in table.columns if c not in ("codec", "device", "sizes")})
    doc.text("R² of a fit through 2 sizes is 1 by construction and says nothing; k then rests on two points.")
    errors = fits[fits["error"].astype(str) != ""]
    if len(errors):
        doc.text("\n".join(f"- no fit for {r['codec']} {tables.COSTS[r['cost']][0]}: {r['error']}"
                           for _, r in errors.iterrows()))
    return fits


def _tradeoff_section(doc: Document, data: ReportData, bd: pd.DataFrame | None, bd_anchor: BDAnchor | None,
                      palette: dict, out: Path, written: list[Path]) -> None:
    doc.heading(2, "Decode time vs BD-rate")
    if bd is None or bd_anchor is None:
        doc.text("No BD-rate table, so no trade-off plot.")
        return
    native = data.rd_rows[(data.rd_rows["dataset"] == bd_anchor.dataset) & (data.rd_rows["resolution"] == "native")]
    adapters = data.rows.drop_duplicates("codec").set_index("codec")["adapter"].to_dict()
    frame = tables.tradeoff(bd, native, adapters, present_metrics(native))
    csv = _csv(frame, out, "tradeoff", written)
    metric = frame["bd_metric"].iloc[0] if len(frame) else "PSNR-RGB"
    doc.text(f"Each codec at its BD-rate ({metric}, against `{bd_anchor.name}`) and its median decode time per "
             f"{bd_anchor.dataset} image (over all its rate points). Codecs sharing an adapter (profiles of one "
             "codec family) share a marker and are joined by a line. Lower and further left is better.")
    fig = figs.tradeoff_figure(frame, bd_anchor.name, palette)
    doc.figure(_figure(fig, out, "tradeoff", "decode time vs BD-rate", [csv], written))
    if frame["dec_kmac_per_px"].notna().any():  # learned codecs: counted decoder multiply-adds
        doc.text("Decoder multiply-adds per pixel (counted, machine-independent) vs the same BD-rates; "
                 "codecs without a count (classical) are not drawn.")
        fig = figs.tradeoff_figure(frame, bd_anchor.name, palette, x="dec_kmac_per_px")
        doc.figure(_figure(fig, out, "tradeoff_kmac", "decoder kMAC/pixel vs BD-rate", [csv], written))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def build_report(results_dir: str | Path, out: str | Path, options: ReportOptions = ReportOptions()) -> Report:
    """Write the report for ``results_dir`` into ``out`` and return what was written."""
    check_options(options)
    data = load(results_dir)
    notes = list(data.notes)
    bd_anchor = resolve_anchor(data, options, notes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    palette = figs.colours(list(data.rows["codec"].unique()))
    title = f"lic-bench report — {Path(results_dir).name or results_dir}"

    body = Document(title)
    _rd_section(body, data, bd_anchor, options, notes, palette, out, written)
    bd = _bd_section(body, data, bd_anchor, options, out, written)
    _complexity_section(body, data, out, written)
    _cross_decode_section(body, data, out, written)
    fits = _scaling_section(body, data, palette, out, written)
    _tradeoff_section(body, data, bd, bd_anchor, palette, out, written)
    training_section(body, options.training, sorted(data.rows["codec"].unique()),
                     lambda frame, name: _csv(frame, out, name, written),
                     lambda fig, name, alt, csv: _figure(fig, out, name, alt, csv, written))

    doc = Document(title)
    _provenance_section(doc, data, options, notes)  # after the body: it lists the notes the body made
    doc.blocks += body.blocks
    files = sorted(p.relative_to(out).as_posix() for p in written)
    doc.heading(2, "Files")
    doc.text("\n".join(f"- [{f}]({f})" for f in files))

    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(doc.markdown(), encoding="utf-8")
    html_path.write_text(doc.html(out), encoding="utf-8")
    return Report(out, md_path, html_path, [p for p in written if p.suffix in (".png", ".svg")],
                  [p for p in written if p.suffix == ".csv"], bd, fits, notes)
