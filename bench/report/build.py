"""Assemble the report: read the store, compute the tables, draw the figures, write the files.

Out folder layout::

    report.md, report.html          the report (the HTML page is self-contained)
    figures/<name>.png, .svg         every figure
    data/<name>.csv                  the numbers behind every figure and table
"""

from __future__ import annotations

import warnings
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
from bench.report.data import ReportData, load
from bench.report.document import Document, FigureRef, fmt_fixed, fmt_number

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
    definitions, source = prov.readme_definitions()
    if definitions:
        doc.text(f"Quoted from {source}:")
        lines = ["| column | meaning |", "|---|---|"] + [f"| {d.column} | {d.meaning} |" for d in definitions]
        doc.text("\n".join(lines))
    else:
        doc.text(f"Definitions: {source}.")
    doc.text(
        "Derived in this report:\n\n"
        "- **dataset-average curve**: per codec and rate point, the mean bpp and the mean of the per-image quality "
        "(PSNR in dB, MS-SSIM in dB) over the images present at every rate point of that codec, native resolution;\n"
        f"- **BD-rate** ({options.method}): {METHOD_TEXT[options.method]}; averaging `{options.averaging}`: "
        f"{AVERAGING_TEXT[options.averaging]}. Negative = fewer bits than the anchor at equal quality;\n"
        "- **memory** (`*_mem`): growth of the worker's resident set during the calls = peak RSS over the "
        "encode (decode) calls minus the RSS before the cell; a lower bound, since memory the allocator had "
        "freed and reuses does not show as growth (then it is 0). Subprocess codecs: the child's own peak RSS;\n"
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
    doc.heading(2, "BD-rate")
    if bd_anchor is None:
        doc.text("No BD-rate table: no anchor for the datasets in this store (see the notes above).")
        return None
    doc.text(f"Against {bd_anchor.description}, on **{bd_anchor.dataset}** (native resolution)."
             f"{anchor_difference(bd_anchor, options.method)}\n\n"
             f"Method **{options.method}**: {METHOD_TEXT[options.method]}. Averaging **{options.averaging}**: "
             f"{AVERAGING_TEXT[options.averaging]}. BD-rate in percent (negative = saving); BD-PSNR / BD-MS-SSIM in "
             "dB (positive = better); overlap = shared fraction of the shorter curve's quality range. A codec whose "
             "BD cannot be computed shows the reason; the others are unaffected.")
    native = data.native[data.native["dataset"] == bd_anchor.dataset]
    errors = data.errors[(data.errors["dataset"] == bd_anchor.dataset) & (data.errors["resolution"] == "native")] \
        if len(data.errors) else data.errors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bd_table records its warnings per row
        table = tables.bd_against(native, errors, bd_anchor.target, bd_anchor.name, options.method, options.averaging)
    csv = _csv(table, out, "bd_rate", written)
    shown = table.copy()
    shown["note"] = [_bd_note(r) for _, r in shown.iterrows()]
    columns = {"codec": "codec", "device": "device", "bd_rate_psnr_pct": "BD-rate PSNR-RGB (%)",
               "bd_psnr_db": "BD-PSNR (dB)", "bd_rate_msssim_pct": "BD-rate MS-SSIM (%)",
               "bd_msssim_db": "BD-MS-SSIM (dB)", "overlap_psnr": "overlap", "n_points_psnr": "points",
               "n_images_psnr": "images", "note": "status / note"}
    columns = {k: v for k, v in columns.items() if k in shown.columns}
    doc.table(shown, columns, {"bd_rate_psnr_pct": fmt_fixed(2, True), "bd_rate_msssim_pct": fmt_fixed(2, True),
                               "bd_psnr_db": fmt_fixed(3, True), "bd_msssim_db": fmt_fixed(3, True),
                               "overlap_psnr": fmt_fixed(2), "n_points_psnr": fmt_number(3),
                               "n_images_psnr": fmt_number(3)})
    doc.text(f"Data: [{Path(csv).name}]({csv}) (every column, including warnings, per quality).")
    return table


def _bd_note(row: pd.Series) -> str:
    """The status column of the shown BD table: ok, excluded, or each quality's error / warnings."""
    if row.get("status_psnr") == "excluded":
        return "excluded: untrained weights (complexity only)"
    parts = []
    for short, name in (("psnr", "PSNR"), ("msssim", "MS-SSIM")):
        status, warned = row.get(f"status_{short}"), row.get(f"warnings_{short}")
        if isinstance(status, str) and status != "ok":
            parts.append(f"{name}: {status} — {row.get(f'reason_{short}')}")
        elif isinstance(warned, str) and warned:
            parts.append(f"{name}: {warned}")
    if row.get("n_error_rows", 0):
        parts.append(f"{int(row['n_error_rows'])} error cell(s) left out")
    return "; ".join(parts) or "ok"


def _complexity_section(doc: Document, data: ReportData, out: Path, written: list[Path]) -> None:
    doc.heading(2, "Complexity")
    machines = sorted({f"{m.get('cpu')}" + (f"; GPU {m['gpu']}" if m.get("gpu") else "") for m in data.runs})
    doc.text(f"Hardware: {' / '.join(machines) or 'not recorded'}. Times: median over the cells of each row (each "
             "cell's time is itself the median of its repeats); memory: the largest value over the cells. `native` "
             "rows cover every rate point and image; ladder rows (WxH) the middle rate point on centre crops. "
             "Untrained codecs are included here: their timings are valid.")
    table = tables.complexity_table(data.rows)
    csv = _csv(table, out, "complexity", written)
    columns = {"codec": "codec", "device": "device", "dataset": "dataset", "resolution": "resolution",
               "megapixels": "MP", "cells": "cells", "enc_time_s": "encode (s)", "dec_time_s": "decode (s)",
               "enc_mem_mib": "encode mem (MiB)", "dec_mem_mib": "decode mem (MiB)",
               "enc_peak_rss_mib": "encode peak RSS (MiB)", "dec_peak_rss_mib": "decode peak RSS (MiB)"}
    if table["enc_gpu_peak_mib"].notna().any() or table["dec_gpu_peak_mib"].notna().any():
        columns.update({"enc_gpu_peak_mib": "encode GPU peak (MiB)", "dec_gpu_peak_mib": "decode GPU peak (MiB)"})
    columns["timer"] = "timer"
    mib = fmt_fixed(1)
    doc.table(table, columns, {"megapixels": fmt_number(3), "cells": fmt_number(4), "enc_time_s": fmt_number(3),
                               "dec_time_s": fmt_number(3), "enc_mem_mib": mib, "dec_mem_mib": mib,
                               "enc_peak_rss_mib": mib, "dec_peak_rss_mib": mib, "enc_gpu_peak_mib": mib,
                               "dec_gpu_peak_mib": mib})
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
                                           "Memory (RSS growth) vs image size", palette,
                                           sorted(ladder["codec"].unique())),
                       out, "scaling_memory", "encode and decode memory vs megapixels", csv, written))
    for cost in ("enc_mem_bytes", "dec_mem_bytes"):
        values = pd.to_numeric(ladder[cost], errors="coerce")
        flat = (~(values > 0)).groupby(ladder["codec"]).agg(["sum", "size"])
        flat = flat[flat["sum"] > 0]
        if len(flat):
            doc.text(f"{tables.COSTS[cost][0].capitalize()}: {int(flat['sum'].sum())} of {len(ladder)} ladder cells "
                     "show no RSS growth (the worker reused memory it already held, so growth is 0 and cannot go on a "
                     "log axis; those cells are not drawn and not fitted): "
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
    frame = tables.tradeoff(bd, native, adapters)
    csv = _csv(frame, out, "tradeoff", written)
    doc.text(f"Each codec at its BD-rate (PSNR-RGB, against `{bd_anchor.name}`) and its median decode time per "
             f"{bd_anchor.dataset} image (over all its rate points). Codecs sharing an adapter (profiles of one "
             "codec family) share a marker and are joined by a line. Lower and further left is better.")
    fig = figs.tradeoff_figure(frame, bd_anchor.name, palette)
    doc.figure(_figure(fig, out, "tradeoff", "decode time vs BD-rate", [csv], written))


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
