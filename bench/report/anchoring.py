"""The report's side of the BD anchor: its options, how the chosen anchor is described, what is
drawn beside it. Which anchor is chosen is the results view's rule (:mod:`bench.anchor_choice`),
shared with ``bench export --bd``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from bench.analysis.bd import AVERAGE_CURVE, BDError, bd_curves
from bench.anchor_choice import DEFAULT_ANCHOR, FALLBACK_ANCHOR, MEASURED_PREFIX, BDAnchor
from bench.anchors import Anchor, AnchorError, list_anchors, load_anchor
from bench.report.document import md_code, md_escape

#: Published curves drawn beside the measured ones by default (when the dataset has them):
#: MLIC++, the learned state of the art this project implements.
DEFAULT_PLOT_EXTRAS = ("mlicpp",)


@dataclass(frozen=True)
class ReportOptions:
    """What the report compares with and how (the options of ``python -m bench.report``)."""

    anchor: str | None = None  # None: kodak/vtm-23.13, else kodak/vtm (when the store has Kodak)
    method: str = "pchip"
    averaging: str = AVERAGE_CURVE
    plot_anchors: tuple[str, ...] = ()  # published curves drawn in addition to the BD anchor
    dataset: str | None = None  # dataset compared with the anchor (default: the anchor's)
    training: Path | None = None  # folder of shipped weights' training curves (bench.report.training)


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


def anchor_description(bd_anchor: BDAnchor) -> str:
    """One Markdown phrase naming the BD anchor: a published curve with its source, or the measured
    codec with its version, and why it was chosen when it is the fallback."""
    if bd_anchor.published is not None:
        text = describe_published(bd_anchor.published)
    else:
        codec = bd_anchor.name[len(MEASURED_PREFIX):]
        text = (f"the measured codec {md_code(codec)} of this store (version "
                f"**{md_escape(bd_anchor.codec_version or 'unknown')}**), per image")
    if bd_anchor.fallback:
        text += " — used because no published anchor fits these data (see the notes; `--anchor` chooses)"
    return text


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
