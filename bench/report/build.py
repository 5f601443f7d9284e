"""Assemble the report: read the store, compute the tables, draw the figures, write the files.

Out folder layout::

    report.md, report.html          the report (the HTML page is self-contained)
    figures/<name>.png, .svg         every figure
    data/<name>.csv                  the numbers behind every figure and table
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.bd import AVERAGE_CURVE, MEAN_OF_PER_IMAGE
from bench.anchor_choice import BDAnchor, check_bd_options, choose_anchor
from bench.codeversion import git_commit
from bench.outfiles import write_atomically, write_csv
from bench.report import costsection as costs
from bench.report import figures as figs
from bench.report import provenance as prov
from bench.report import tables
from bench.report.anchoring import ReportOptions, anchor_difference, plot_anchors
from bench.report.bdsection import bd_section
from bench.report.decodeparts import decode_parts_section
from bench.report.document import Document, FigureRef, fmt_code, md_code, md_escape, md_prose
from bench.report.lofsection import lof_section
from bench.report.metricchecks import metric_checks_section
from bench.report.progress import STEPS, Step, quiet
from bench.report.training import training_section
from bench.results import ResultsView, load
from bench.results_rd import QUALITIES, present_metrics

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

#: The one line standing for the sections a store of side-table rows only cannot fill.
SIDE_ONLY = ("This store holds only {tables}, no benchmark cells: the rate-distortion, BD-rate, "
             "complexity-table, scaling and trade-off sections are left out.")
#: The tool that writes each side table.
SIDE_TOOLS = {"decode_parts": "python -m bench.tools.decode_parts", "metric_checks": "python -m bench.tools.metrics_check"}

__all__ = ["Report", "ReportOptions", "build_report"]


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


def _csv(frame: pd.DataFrame, name: str, out: Path, written: list[Path]) -> str:
    path = out / "data" / f"{name}.csv"
    write_csv(frame, path, force=True)  # atomic (a full disk leaves no partial file), formula-safe
    written.append(path)
    return path.relative_to(out).as_posix()


def _figure(fig, out: Path, name: str, alt: str, csv: list[str], written: list[Path]) -> FigureRef:
    paths = figs.save(fig, out / "figures" / name)
    written.extend(paths)
    return FigureRef(paths[0].relative_to(out).as_posix(), paths[1].relative_to(out).as_posix(), alt, csv)


# --- sections ------------------------------------------------------------------------------------

def _provenance_section(doc: Document, data: ResultsView, options: ReportOptions, notes: list[str], out: Path,
                        written: list[Path]) -> None:
    doc.heading(2, "Provenance")
    doc.text(f"Results store: {md_code(data.results_dir)} · report written "
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} by lic-bench at commit "
             f"`{prov.short_commit(git_commit())}` · BD method `{options.method}`, averaging `{options.averaging}`.")
    doc.heading(3, "Runs")
    runs = prov.runs_table(data.runs)
    csv = _csv(runs, "runs", out, written)
    doc.text("The manifests of the runs whose measurements are shown (each run stores one); commits shortened to "
             f"{prov.SHORT_COMMIT} digits, full values in [{Path(csv).name}]({csv}).")
    doc.table(prov.runs_shown(runs))
    if len(runs):
        doc.text("Commands:\n\n" + "\n".join(f"- run {md_escape(r['run'])}: {md_code(r['command'] or 'not recorded')}"
                                             for _, r in runs.iterrows()))
    doc.heading(4, "Package versions")
    doc.table(prov.package_versions(data.runs))
    doc.heading(3, "Codecs")
    doc.table(prov.codecs_table(data.rows, data.errors, data.runs), formats={"adapter": fmt_code})
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
        "RSS. Cells without a reading (`--memory mid` and `size`: only the middle rate point is measured; `size`, the "
        "default, measures once per image size and the other cells of that size repeat that reading) are left out;\n"
        "- **scaling fit**: least-squares line of log(cost) on log(pixels) through the per-size medians of the "
        "resolution-ladder cells (centre crops, the codec's middle rate point); `k` is the exponent "
        "(cost ∝ pixels^k, 1 = linear), R² that of the line. Sizes with no positive value are left out.")
    doc.heading(3, "Excluded from rate-distortion")
    if data.untrained:
        doc.text(f"**{md_escape(', '.join(data.untrained))}** ran with untrained (random) weights (`trained = 0`): their rate "
                 "and quality mean nothing, so they are left out of every RD curve, BD table and the trade-off plot, "
                 "and appear only in the complexity tables and scaling plots.")
    else:
        doc.text("No untrained codec in this store: learned codecs on random weights (`trained = 0`) would be "
                 "shown in complexity tables and plots only, never in RD curves or BD tables.")
    doc.heading(3, "Errors and notes")
    doc.table(prov.error_summary(data.errors), empty="No error cells.")
    if notes:
        doc.text("\n".join(f"- {md_prose(n)}" for n in notes))


def _rd_section(doc: Document, data: ResultsView, bd_anchor: BDAnchor | None, options: ReportOptions,
                notes: list[str], palette: dict, out: Path, written: list[Path]) -> None:
    doc.heading(2, "Rate-distortion")
    doc.text("Dataset-average curves of every trained codec at native resolution (solid, markers) with published "
             "anchor curves (dashed, grey, labelled `label [repository@commit]`). The x axis spans the measured "
             "rates; anchors are clipped to it.")
    curves = {q: data.curves(q) for q in QUALITIES}
    for dataset in data.datasets():
        anchors = plot_anchors(dataset, bd_anchor, options.plot_anchors, notes)
        points = {q: tables.anchor_points(anchors, q) for q in QUALITIES}
        doc.heading(3, md_escape(dataset))
        csv = []
        for q in QUALITIES:
            measured = curves[q][curves[q]["dataset"] == dataset].assign(source="measured")
            published = points[q].assign(source="published").rename(columns={"anchor": "codec"})
            both = pd.concat([measured, published], ignore_index=True)
            csv.append(_csv(both, f"rd_{_slug(dataset)}_{q}", out, written))
        fig = figs.rd_figure(curves, points, dataset, palette)
        doc.figure(_figure(fig, out, f"rd_{_slug(dataset)}", f"RD curves on {dataset}", csv, written))
        partial = curves["psnr_rgb"]
        partial = partial[(partial["dataset"] == dataset) & (partial["n_images"] < partial["n_images_total"])]
        for label, g in partial.groupby("label"):
            doc.text(f"- {md_code(label)}: averaged over {g['n_images'].iloc[0]} of {g['n_images_total'].iloc[0]} images "
                     "(the others miss a rate point)")


def _bd_section(doc: Document, data: ResultsView, bd_anchor: BDAnchor | None, options: ReportOptions,
                out: Path, written: list[Path]) -> pd.DataFrame | None:
    difference = anchor_difference(bd_anchor, options.method) if bd_anchor is not None else ""
    return bd_section(doc, data, bd_anchor, options, lambda frame, name: _csv(frame, name, out, written),
                      METHOD_TEXT, AVERAGING_TEXT, difference)


def _tradeoff_section(doc: Document, data: ResultsView, bd: pd.DataFrame | None, bd_anchor: BDAnchor | None,
                      palette: dict, out: Path, written: list[Path]) -> None:
    doc.heading(2, "Decode time vs BD-rate")
    if bd is None or bd_anchor is None:
        doc.text("No BD-rate table, so no trade-off plot.")
        return
    native = data.rd_rows[(data.rd_rows["dataset"] == bd_anchor.dataset) & (data.rd_rows["resolution"] == "native")]
    adapters = data.rows.drop_duplicates("codec").set_index("codec")["adapter"].to_dict()
    frame = tables.tradeoff(bd, native, adapters, present_metrics(native))
    csv = _csv(frame, "tradeoff", out, written)
    metric = frame["bd_metric"].iloc[0] if len(frame) else "PSNR-RGB"
    doc.text(f"Each codec at its BD-rate ({metric}, against {md_code(bd_anchor.name)}) and its median decode time per "
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


def build_report(results_dir: str | Path, out: str | Path, options: ReportOptions = ReportOptions(),
                 step: Step = quiet) -> Report:
    """Write the report for ``results_dir`` into ``out`` and return what was written.

    ``step(name)`` is called as each of :data:`bench.report.progress.STEPS` starts (progress display)."""
    check_bd_options(options.anchor, options.method, options.averaging)
    step(STEPS[0])
    data = load(results_dir, side_tables_only=True)
    notes = list(data.notes)
    parts_only = data.rows.empty  # only side-table rows (load refuses a store with nothing to show)
    bd_anchor = None if parts_only else choose_anchor(data, options.anchor, options.dataset, notes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    palette = figs.colours(list(data.rows["codec"].unique()))
    title = f"lic-bench report — {Path(results_dir).name or results_dir}"

    body = Document(title)
    if parts_only:
        step(STEPS[3])
        body.heading(2, "Side measurements")
        tables = [t for t in SIDE_TOOLS if not getattr(data, t).empty]
        body.text(SIDE_ONLY.format(tables=" and ".join(f"`{t}` rows (`{SIDE_TOOLS[t]}`)" for t in tables)))
        decode_parts_section(body, data, partial(_csv, out=out, written=written))
        metric_checks_section(body, data, partial(_csv, out=out, written=written))
        step(STEPS[6])
        return _write(out, title, data, options, notes, body, written, None, None)
    step(STEPS[1])
    with np.errstate(divide="ignore"):  # an anchor's MS-SSIM of 1 is +inf dB: kept in the CSV, not drawn
        _rd_section(body, data, bd_anchor, options, notes, palette, out, written)
    step(STEPS[2])
    bd = _bd_section(body, data, bd_anchor, options, out, written)
    csv = partial(_csv, out=out, written=written)
    step(STEPS[3])
    costs.complexity_section(body, data, csv)
    costs.overhead_section(body, data, csv)
    costs.cross_decode_section(body, data, csv)
    decode_parts_section(body, data, csv)
    metric_checks_section(body, data, csv)
    step(STEPS[4])
    fits = costs.scaling_section(body, data, palette, csv,
                                 lambda fig, name, alt, names: _figure(fig, out, name, alt, names, written))
    step(STEPS[5])
    _tradeoff_section(body, data, bd, bd_anchor, palette, out, written)
    lof_section(body, data, options, csv)
    training_section(body, options.training, sorted(data.rows["codec"].unique()), csv,
                     lambda fig, name, alt, names: _figure(fig, out, name, alt, names, written))
    step(STEPS[6])
    return _write(out, title, data, options, notes, body, written, bd, fits)


def _write(out: Path, title: str, data: ResultsView, options: ReportOptions, notes: list[str], body: Document,
           written: list[Path], bd: pd.DataFrame | None, fits: pd.DataFrame | None) -> Report:
    """The provenance section, then ``body``, then the file list: written as Markdown and HTML."""
    doc = Document(title)
    _provenance_section(doc, data, options, notes, out, written)  # after the body: it lists the body's notes
    doc.blocks += body.blocks
    files = sorted(p.relative_to(out).as_posix() for p in written)
    doc.heading(2, "Files")
    doc.text("\n".join(f"- [{f}]({f})" for f in files))

    md_path, html_path = out / "report.md", out / "report.html"
    for path, text in ((md_path, doc.markdown()), (html_path, doc.html(out))):
        write_atomically(path, lambda fh, text=text: fh.write(text), force=True)
    return Report(out, md_path, html_path, [p for p in written if p.suffix in (".png", ".svg")],
                  [p for p in written if p.suffix == ".csv"], bd, fits, notes)
