"""The report's BD-rate section: one table per metric family with bootstrap intervals, the JPEG AI
summary and the sensitivity table.

The table itself comes from the results view (:meth:`bench.results.ResultsView.bd`): the metrics the
store has, the anchor used per image when it can be (a measured codec of the store, or a published
anchor file with ``per_image`` points for every tested image: then BD and interval are paired, on
the same images); otherwise the anchor's average curve is fixed and the interval says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from bench.analysis.bd import DEFAULT_RESAMPLES, DEFAULT_SEED, jpeg_ai_summary, sensitivity_table
from bench.analysis.bd.bootstrap import FIXED_ANCHOR_NOTE, MIN_BOOTSTRAP_IMAGES
from bench.metrics.registry import METRICS, Metric
from bench.report.anchoring import anchor_description
from bench.report.document import Document, fmt_number
from bench.results import ResultsView
from bench.results_rd import anchor_has, short_name


#: Marks an interval over fewer than MIN_BOOTSTRAP_IMAGES images; explained under each table.
FEW = "†"
FEW_TEXT = (f"{FEW} fewer than {MIN_BOOTSTRAP_IMAGES} images: a bootstrap interval over so few is not meaningful "
            "(with 3 images the 95 % interval is about the range of the per-image values); read the value alone.")
OVERLAP_TEXT = (
    "`overlap`: the part of the quality range that both curves cover, divided by the **shorter** curve's quality "
    "range (1.00 = one curve lies wholly inside the other's range, so the BD-rate integral uses all of the shorter "
    "one); below 0.75 the note warns. FAU's `bjontegaard` package divides by the *union* of the two ranges "
    "instead, which reads below 1 whenever the curves differ in extent — a test curve lying inside a wider anchor "
    "curve gets e.g. 0.5 although the integral uses its whole range — and so warns about ladders rather than "
    "about the data a BD rests on; we ask how much of the less-covered curve the integral uses. Under "
    "`mean-of-per-image` each image's overlap is computed and warned by the same rule, and the table shows the "
    "smallest.")


def _with_ci(value: float, low: float, high: float, digits: int, few: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return ""
    text = f"{value:+.{digits}f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:+.{digits}f}, {high:+.{digits}f}]" + (FEW if few else "")
    return text


def _few(images: Any) -> bool:
    try:
        return math.isfinite(float(images)) and float(images) < MIN_BOOTSTRAP_IMAGES
    except (TypeError, ValueError):
        return False


def _note(row: pd.Series, members: Sequence[Any]) -> str:
    """Status of one codec for one family: the anchor itself, excluded, errors, warnings, images left out."""
    if row.get("anchor") == f"codec:{row.get('codec')}":
        return "the anchor itself (0 by definition)"
    parts = []
    for m in members:
        short = short_name(m.bd_column)
        status = row.get(f"status_{short}")
        if status == "excluded":
            return "excluded: untrained weights (complexity only)"
        if isinstance(status, str) and status != "ok":
            parts.append(f"{m.label}: {status} — {row.get(f'reason_{short}')}")
            continue
        for key in ("warnings", "images_left_out"):
            text = row.get(f"{key}_{short}")
            if isinstance(text, str) and text:
                parts.append(f"{m.label}: {'left out ' if key == 'images_left_out' else ''}{text}")
        failed = row.get(f"ci_failed_{short}")
        if isinstance(failed, (int, float)) and failed and math.isfinite(failed):
            parts.append(f"{m.label}: {int(failed)} resamples without a BD")
    if row.get("n_error_rows", 0):
        parts.append(f"{int(row['n_error_rows'])} error cell(s) left out")
    return "; ".join(dict.fromkeys(parts)) or "ok"


def family_tables(doc: Document, table: pd.DataFrame, metrics: Sequence[Any]) -> None:
    """One Markdown table per metric family: BD-rate and BD-quality with their intervals."""
    families: dict[str, list[Any]] = {}
    for m in metrics:
        if f"status_{short_name(m.bd_column)}" in table.columns:
            families.setdefault(m.family or m.name, []).append(m)
    for family, members in families.items():
        doc.heading(3, f"{family.upper() if family == 'psnr' else family.capitalize()} family")
        shown = pd.DataFrame({"codec": table["codec"], "device": table["device"]})
        columns = {"codec": "codec", "device": "device"}
        few_any = False
        for m in members:
            s = short_name(m.bd_column)
            rate, qual, overlap = f"rate_{s}", f"quality_{s}", f"overlap_{s}"
            few = [_few(n) for n in table[f"n_images_{s}"]]
            few_any = few_any or any(few)
            shown[rate] = [_with_ci(r[f"bd_rate_{s}_pct"], r[f"bd_rate_{s}_low"], r[f"bd_rate_{s}_high"], 2, f)
                           for f, (_, r) in zip(few, table.iterrows())]
            shown[qual] = [_with_ci(r[f"bd_{s}_db"], r[f"bd_{s}_low"], r[f"bd_{s}_high"], 3, f)
                           for f, (_, r) in zip(few, table.iterrows())]
            shown[overlap] = table[f"overlap_{s}"]
            columns[rate] = f"BD-rate {m.label} (%) [95 % CI]"
            columns[qual] = f"BD-{m.label} [95 % CI]" + ("" if m.higher_is_better else " (lower is better)")
            columns[overlap] = f"overlap {m.label}"
        first = short_name(members[0].bd_column)
        shown["images"] = table[f"n_images_{first}"]
        shown["note"] = [_note(r, members) for _, r in table.iterrows()]
        columns.update(images="images", note="status / note")
        doc.table(shown, columns, {"images": fmt_number(3),
                                   **{c: _fixed2 for c in columns if c.startswith("overlap_")}})
        if few_any:
            doc.text(FEW_TEXT)


def _fixed2(value: Any) -> str:
    return "" if value is None or not math.isfinite(float(value)) else f"{float(value):.2f}"


def full_set_size(dataset: str, anchor: Any) -> int | None:
    """How many images a published anchor's average is over: its ``conditions.n_images`` when it records
    it, the 24 of Kodak for ``kodak``, else None (unknown)."""
    recorded = (getattr(anchor, "conditions", None) or {}).get("n_images")
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    if dataset == "kodak":
        from bench.datasets import kodak_pixel_hashes

        return len(kodak_pixel_hashes())
    return None


def left_out_text(native: pd.DataFrame, bd_anchor: Any, target: Any, metrics: Sequence[Metric]) -> str:
    """What the BD tables leave out, in sentences: metrics the anchor lacks, and a subset of the images
    compared with a published average over the full set ('' when nothing)."""
    parts = []
    lacking = [m.label for m in metrics if not anchor_has(target, m.bd_column)]
    if lacking:
        parts.append(f"**Not in the BD tables:** {', '.join(lacking)} — measured here, but the anchor "
                     f"`{bd_anchor.name}` has no values for them. Compare them against a codec of this store "
                     "(`--anchor codec:NAME`).")
    if bd_anchor.published is not None and not isinstance(target, pd.DataFrame):
        tested, full = native["image"].nunique(), full_set_size(bd_anchor.dataset, bd_anchor.published)
        if full is not None and tested < full:
            parts.append(f"**Subset of the images:** the store has {tested} of the {full} {bd_anchor.dataset} "
                         f"images, but `{bd_anchor.name}` is an average over all {full}: the BD compares averages "
                         "over different images, so it mixes the codecs' difference with the difference between "
                         "the image sets. Measure the full set, or compare with a codec of this store.")
    return "\n\n".join(parts)


def bd_section(doc: Document, data: ResultsView, bd_anchor: Any, options: Any, csv: Callable[[pd.DataFrame, str], str],
               method_text: dict[str, str], averaging_text: dict[str, str],
               difference: str = "") -> pd.DataFrame | None:
    """The BD-rate section; returns the wide BD table (``data/bd_rate.csv``) or None without an anchor.

    ``difference``: a sentence on how far this anchor lies from the other Kodak VTM anchor.
    """
    doc.heading(2, "BD-rate")
    if bd_anchor is None:
        doc.text("No BD-rate table: no anchor for the datasets in this store (see the notes above).")
        return None
    bd = data.bd(bd_anchor.dataset, bd_anchor.target, bd_anchor.name, options.method, options.averaging)
    table, native, errors, target, metrics = bd.table, bd.native, bd.errors, bd.target, bd.metrics
    paired = isinstance(target, pd.DataFrame)
    how = (f" Its per-image points are used for the {native['image'].nunique()} tested images, so BD values and "
           "intervals are paired (same images, same draws).") if bd.paired_published else ""
    doc.text(f"Against {anchor_description(bd_anchor)}, on **{bd_anchor.dataset}** (native resolution).{how}"
             f"{difference}\n\n"
             f"Method **{options.method}**: {method_text[options.method]}. Averaging **{options.averaging}**: "
             f"{averaging_text[options.averaging]}. BD-rate in percent (negative = saving); BD-quality in the metric's "
             "units (dB for PSNR and MS-SSIM; positive = better unless marked lower-is-better). In brackets: the 95 % "
             f"percentile bootstrap interval over images ({DEFAULT_RESAMPLES} resamples of the images with "
             f"replacement, seed {DEFAULT_SEED}, recomputed under the same averaging and method; "
             + ("paired: the anchor is resampled with the same draws" if paired else FIXED_ANCHOR_NOTE) +
             "). Two codecs whose intervals overlap widely cannot be told apart on these images. Images lacking a "
             "rate point (error cells) are left out of the BD and its interval and named. A codec whose BD cannot "
             "be computed shows the reason; the others are unaffected.\n\n" + OVERLAP_TEXT)
    if text := left_out_text(native, bd_anchor, target, metrics):
        doc.text(text)
    name = csv(table, "bd_rate")
    family_tables(doc, table, metrics)
    doc.text(f"Data: [{name.split('/')[-1]}]({name}) (every column, including intervals, warnings and the "
             "images left out, per metric).")
    trained = native[native["trained"] != 0]
    _jpeg_ai_section(doc, trained, errors, target, metrics, options, csv)
    _sensitivity_section(doc, trained, errors, target, metrics, bd_anchor.name, csv)
    return table


def _jpeg_ai_section(doc: Document, rows: pd.DataFrame, errors: pd.DataFrame, target: Any, metrics: Sequence[Any],
                     options: Any, csv: Callable[[pd.DataFrame, str], str]) -> None:
    doc.heading(3, "JPEG AI summary")
    frame = pd.concat([rows, errors], ignore_index=True) if len(errors) else rows
    chosen = {m.label: (m.bd_column, m.higher_is_better) for m in METRICS if m.jpeg_ai}
    summary = jpeg_ai_summary(frame, target, chosen, method=options.method,
                              expected=tuple(m.label for m in METRICS if m.jpeg_ai))
    text = ("JPEG AI reports the mean of the BD-rates over seven metrics (MS-SSIM, VIF, FSIM, NLPD, IW-SSIM, VMAF, "
            "PSNR-HVS-M), each computed per image and averaged over the images (`mean-of-per-image`); shown beside "
            "it, the same mean under our `average-curve` convention. ")
    if summary.empty or (summary["status"] == "incomplete").all():
        reason = summary["reason"].iloc[0] if len(summary) else "no trained codec"
        advice = []
        if "(not measured)" in reason:
            advice.append("Measure the missing ones with `--metrics jpeg-ai` (`python -m bench metrics` says which "
                          "cannot run here and why).")
        if "(the anchor lacks it" in reason:
            advice.append("This store has what the anchor lacks: compare with a codec of the store measured with the "
                          "same metrics (`--anchor codec:NAME`).")
        doc.text(text + f"Not computed: {reason}. " + " ".join(advice))
        return
    name = csv(summary, "jpeg_ai_summary")
    shown = summary.assign(mean=[_with_ci(r.get("bd_rate_mean_pct", math.nan), r["bd_rate_low"], r["bd_rate_high"], 2,
                                          _few(r.get("n_images")))
                                 for _, r in summary.iterrows()])
    doc.text(text + ("Without per-image anchor points only `average-curve` can be computed." if
                     not isinstance(target, pd.DataFrame) else ""))
    doc.table(shown, {"codec": "codec", "device": "device", "averaging": "averaging",
                      "mean": "mean BD-rate of 7 (%) [95 % CI]", "n_images": "images", "reason": "status / note"},
              {"n_images": fmt_number(3)})
    if any(_few(n) for n in shown.get("n_images", [])):
        doc.text(FEW_TEXT)
    doc.text(f"Data: [{name.split('/')[-1]}]({name}) (every metric's BD-rate).")


def _sensitivity_section(doc: Document, rows: pd.DataFrame, errors: pd.DataFrame, target: Any, metrics: Sequence[Any],
                         anchor_name: str, csv: Callable[[pd.DataFrame, str], str]) -> None:
    doc.heading(3, "Sensitivity to the BD method and averaging")
    frame = pd.concat([rows, errors], ignore_index=True) if len(errors) else rows
    parts = []
    for m in metrics:
        if isinstance(target, pd.DataFrame) and m.bd_column not in target.columns:
            continue
        if not isinstance(target, pd.DataFrame) and m.bd_column not in target.qualities:
            continue
        parts.append(sensitivity_table(frame, target, m.bd_column, higher_is_better=m.higher_is_better,
                                       anchor_name=anchor_name).assign(metric=m.label))
    if not parts:
        doc.text("No metric shared with the anchor.")
        return
    table = pd.concat(parts, ignore_index=True)
    name = csv(table, "bd_sensitivity")
    first = table[table["metric"] == parts[0]["metric"].iloc[0]]
    cells = [c for c in table.columns if " / " in c]
    doc.text(f"BD-rate {first['metric'].iloc[0]} (%) of each codec under every interpolation method and averaging "
             "convention (no interval); `spread` = largest minus smallest. A spread near a difference between two "
             "codecs means the choice of method decides their order. "
             + ("" if any("mean-of-per-image" in c for c in cells) else
                "Only `average-curve`: the anchor has no per-image points. ")
             + f"Every metric: [{name.split('/')[-1]}]({name}).")
    formats = {c: (lambda v: "" if v is None or not math.isfinite(v) else f"{v:+.2f}") for c in [*cells, "spread"]}
    formats["spread"] = lambda v: "" if v is None or not math.isfinite(v) else f"{v:.2f}"
    doc.table(first, {"codec": "codec", "device": "device", **{c: c for c in cells}, "spread": "spread"}, formats)
