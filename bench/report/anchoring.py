"""The report's BD anchor: which curve every codec is compared with, and how it is described.

``--anchor`` names a published curve (by default the measured ``kodak/vtm-23.13``, or CompressAI's
``kodak/vtm`` while that file is not generated) or a measured codec of the store
(``codec:NAME``, per image). When none was given and the default published curve does not fit
the store's data (another dataset, e.g. the scikit-image photographs a run falls back to), the
anchor is the measured ``jpeg-420`` — part of every default run — so the default report always
has a BD table; the report says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.analysis.bd import AVERAGE_CURVE, AVERAGINGS, MEAN_OF_PER_IMAGE, METHODS, BDError, bd_curves
from bench.anchors import Anchor, AnchorError, list_anchors, load_anchor
from bench.errors import ReportError
from bench.report.document import md_code, md_escape
from bench.results import ResultsView, anchor_has, measured_anchor, present_metrics

#: The measured VTM 23.13 anchor (python -m bench.tools.vtm anchor); CompressAI's published
#: ``kodak/vtm`` (VTM version unrecorded) is the fallback while it is not generated.
DEFAULT_ANCHOR = "kodak/vtm-23.13"
FALLBACK_ANCHOR = "kodak/vtm"
#: The BD anchor when no published one fits the data (and no --anchor was given): a measured codec
#: that every default run has. Without it, the first trained codec of the store (by name).
FALLBACK_MEASURED = "jpeg-420"
#: Published curves drawn beside the measured ones by default (when the dataset has them):
#: MLIC++, the learned state of the art this project implements.
DEFAULT_PLOT_EXTRAS = ("mlicpp",)
MEASURED_PREFIX = "codec:"


@dataclass(frozen=True)
class ReportOptions:
    """What the report compares with and how (the options of ``python -m bench.report``)."""

    anchor: str | None = None  # None: kodak/vtm-23.13, else kodak/vtm (when the store has Kodak)
    method: str = "pchip"
    averaging: str = AVERAGE_CURVE
    plot_anchors: tuple[str, ...] = ()  # published curves drawn in addition to the BD anchor
    dataset: str | None = None  # dataset compared with the anchor (default: the anchor's)
    training: Path | None = None  # folder of shipped weights' training curves (bench.report.training)


@dataclass
class BDAnchor:
    """The BD anchor, published or measured, and how to name it."""

    name: str
    dataset: str
    target: Any  # bench.anchors.Anchor or per-image rows
    published: Anchor | None
    description: str


def check_options(options: ReportOptions) -> None:
    """Refuse option combinations that cannot work, before anything is read (:class:`ReportError`)."""
    if options.method not in METHODS:
        raise ReportError(f"unknown BD method {options.method!r}; choose one of {', '.join(METHODS)}")
    if options.averaging not in AVERAGINGS:
        raise ReportError(f"unknown averaging {options.averaging!r}; choose one of {', '.join(AVERAGINGS)}")
    measured = (options.anchor or "").startswith(MEASURED_PREFIX)
    if options.averaging == MEAN_OF_PER_IMAGE and not measured:
        name = options.anchor or DEFAULT_ANCHOR
        try:
            per_image = bool(load_anchor(name).per_image)
        except AnchorError:
            per_image = False  # an unknown name is reported by resolve_anchor
        if not per_image:
            raise ReportError(f"averaging 'mean-of-per-image' needs per-image anchor rows: anchor {name!r} is a "
                              "dataset average without per-image points; use a measured anchor file with per-image "
                              f"points (e.g. {DEFAULT_ANCHOR}) or a measured codec (--anchor {MEASURED_PREFIX}NAME)")


def describe_published(anchor: Anchor) -> str:
    """One Markdown sentence: the published anchor, its codec version and where its numbers come from."""
    codec = anchor.codec
    version = codec.get("version", "unrecorded")
    text = f"`{anchor.name}` — {codec.get('name', anchor.label)}, version **{version}**"
    if codec.get("version_note"):
        text += f" ({codec['version_note']})"
    p = anchor.provenance
    files = ", ".join(f"`{f.get('path')}`" for f in p.get("files", []) if f.get("path"))
    if p.get("repository"):
        text += f"; numbers from {p['repository']} at commit `{p.get('commit', '?')}`" + (f", {files}" if files else "")
    elif p.get("paper"):
        text += f"; numbers from {p['paper']}, {p.get('table', '')}"
    elif p.get("source") == "measured":
        text += (f"; measured by this suite (commit `{p.get('suite_git_commit')}`, store sha256 "
                 f"`{p.get('store', {}).get('sha256', '?')[:12]}`; regenerate: `{p.get('regenerate', '')}`)")
    conditions = anchor.conditions
    if conditions.get("metric_reference"):
        text += f". Note: {conditions['metric_reference']}"
    return text


def default_anchor(notes: list[str]) -> str:
    """The measured ``kodak/vtm-23.13`` when generated, else CompressAI's ``kodak/vtm`` (with a note)."""
    if DEFAULT_ANCHOR in list_anchors(DEFAULT_ANCHOR.split("/")[0]):
        return DEFAULT_ANCHOR
    notes.append(f"default anchor `{DEFAULT_ANCHOR}` is not generated yet (python -m bench.tools.vtm anchor): "
                 f"using CompressAI's `{FALLBACK_ANCHOR}` instead")
    return FALLBACK_ANCHOR


def anchor_difference(bd_anchor: BDAnchor, method: str) -> str:
    """How far CompressAI's ``kodak/vtm`` lies from the measured ``kodak/vtm-23.13`` (BD-rate, PSNR-RGB),
    stated beside the BD table whenever one of them is the anchor: what an unrecorded VTM version costs."""
    if bd_anchor.name not in (DEFAULT_ANCHOR, FALLBACK_ANCHOR):
        return ""
    try:
        measured, published = load_anchor(DEFAULT_ANCHOR), load_anchor(FALLBACK_ANCHOR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = bd_curves(measured.curve("psnr_rgb"), published.curve("psnr_rgb"), "rate", method)
    except (AnchorError, BDError) as exc:
        return f"\n\nThe two VTM anchors could not be compared: {exc}."
    return (f"\n\nThe two Kodak VTM anchors differ: CompressAI's `{FALLBACK_ANCHOR}` (VTM version unrecorded, PSNR "
            f"against the colour-converted input) has a BD-rate of **{result.value:+.2f} %** (PSNR-RGB, {method}, "
            f"overlap {result.overlap:.2f}) against the measured `{DEFAULT_ANCHOR}`.")


def resolve_anchor(data: ResultsView, options: ReportOptions, notes: list[str]) -> BDAnchor | None:
    """The BD anchor the options ask for; :class:`ReportError` if it cannot be used, or the fallback."""
    name = options.anchor or default_anchor(notes)
    if name.startswith(MEASURED_PREFIX):
        codec = name[len(MEASURED_PREFIX):]
        datasets = data.datasets()
        dataset = options.dataset or ("kodak" if "kodak" in datasets else datasets[0] if datasets else None)
        if dataset not in datasets:
            raise ReportError(f"dataset {dataset!r} has no native-resolution rows; the store has {datasets}")
        rows = data.rd_rows[data.rd_rows["dataset"] == dataset]
        try:
            target = measured_anchor(rows, codec)
        except BDError as exc:
            raise ReportError(str(exc)) from None
        version = "; ".join(sorted(target["codec_version"].dropna().astype(str).unique())) or "unknown"
        return BDAnchor(name, dataset, target, None,
                       f"the measured codec {md_code(codec)} of this store (version **{md_escape(version)}**), per image")
    try:
        anchor = load_anchor(name)
    except AnchorError as exc:
        raise ReportError(str(exc)) from None
    dataset = options.dataset or anchor.dataset
    if dataset not in data.datasets():
        message = (f"anchor {name!r} is for dataset {dataset!r}, but the store's native-resolution rows are of "
                   f"{data.datasets() or 'no dataset'}")
        if options.anchor or options.dataset:
            raise ReportError(message + "; pick another --anchor (python -m bench.anchors list) or --dataset")
        return fallback_anchor(data, options, message, notes)
    native = data.rd_rows[(data.rd_rows["dataset"] == dataset) & (data.rd_rows["resolution"] == "native")]
    measured = present_metrics(native)
    if measured and not any(anchor_has(anchor, m.bd_column) for m in measured):
        codecs = ", ".join(sorted(native["codec"].unique()))
        message = (f"anchor {name!r} has none of the qualities this store measured on {dataset!r} "
                   f"({', '.join(m.label for m in measured)}; the anchor has {', '.join(anchor.qualities)})")
        if options.anchor:
            raise ReportError(message + f"; compare with a codec of the store instead: --anchor "
                              f"{MEASURED_PREFIX}NAME (codecs: {codecs})")
        return fallback_anchor(data, options, message, notes)
    return BDAnchor(name, dataset, anchor, anchor, describe_published(anchor))


def fallback_anchor(data: ResultsView, options: ReportOptions, why: str, notes: list[str]) -> BDAnchor | None:
    """No published anchor fits (and none was asked for): BD against a measured codec, and say so."""
    trained = data.rd_rows[data.rd_rows["resolution"] == "native"]
    codecs = sorted(trained["codec"].unique())
    codec = FALLBACK_MEASURED if FALLBACK_MEASURED in codecs else codecs[0] if codecs else None
    if codec is None:
        notes.append(why + ": no BD-rate table (no trained codec at native size to compare against)")
        return None
    datasets = sorted(trained.loc[trained["codec"] == codec, "dataset"].unique())
    dataset = "kodak" if "kodak" in datasets else datasets[0]
    try:
        anchor = resolve_anchor(data, replace(options, anchor=MEASURED_PREFIX + codec, dataset=dataset), notes)
    except ReportError as exc:
        notes.append(f"{why}: no BD-rate table ({exc})")
        return None
    notes.append(f"{why}: BD-rate against the measured codec {codec!r} instead, since no published anchor fits "
                 f"these data (pass --anchor to choose another)")
    anchor.description += " — used because no published anchor fits these data (see the notes; `--anchor` chooses)"
    return anchor


def plot_anchors(dataset: str, bd_anchor: BDAnchor | None, extra: tuple[str, ...], notes: list[str]) -> list[Anchor]:
    """Published curves drawn on ``dataset``'s RD figure: the BD anchor, the defaults, ``--plot-anchors``."""
    chosen: list[Anchor] = []
    if bd_anchor is not None and bd_anchor.published is not None and bd_anchor.dataset == dataset:
        chosen.append(bd_anchor.published)
    names = [n for n in extra if n.startswith(dataset + "/")]
    available = set(list_anchors(dataset)) if dataset else set()
    names += [f"{dataset}/{n}" for n in DEFAULT_PLOT_EXTRAS if f"{dataset}/{n}" in available]
    for name in dict.fromkeys(names):
        if any(a.name == name for a in chosen):
            continue
        try:
            chosen.append(load_anchor(name))
        except AnchorError as exc:
            notes.append(f"plot anchor {name!r} skipped: {exc}")
    return chosen
