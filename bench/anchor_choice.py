"""The BD anchor rule: which curve every codec of a store is compared with, for every presenter.

The report's BD table and ``bench export --bd`` both ask this module, so for the same results
and the same options they compare with the same anchor on the same dataset.

``anchor`` names a published curve (by default the measured ``kodak/vtm-23.13``, or CompressAI's
``kodak/vtm`` while that file is not generated) or a measured codec of the store
(``codec:NAME``, per image). When none was given and the default published curve does not fit
the store's data (another dataset, e.g. the scikit-image photographs a run falls back to), the
anchor is the measured ``jpeg-420`` — part of every default run — so the default report always
has a BD table; a note says so. What the choice means in words (Markdown) is the presenter's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.analysis.bd import AVERAGINGS, MEAN_OF_PER_IMAGE, METHODS, BDError
from bench.anchors import Anchor, AnchorError, list_anchors, load_anchor
from bench.errors import ReportError
from bench.results import ResultsView
from bench.results_rd import anchor_has, measured_anchor, present_metrics

#: The measured VTM 23.13 anchor (python -m bench.tools.vtm anchor); CompressAI's published
#: ``kodak/vtm`` (VTM version unrecorded) is the fallback while it is not generated.
DEFAULT_ANCHOR = "kodak/vtm-23.13"
FALLBACK_ANCHOR = "kodak/vtm"
#: The BD anchor when no published one fits the data (and no anchor was asked for): a measured
#: codec that every default run has. Without it, the first trained codec of the store (by name).
FALLBACK_MEASURED = "jpeg-420"
MEASURED_PREFIX = "codec:"


@dataclass
class BDAnchor:
    """The chosen BD anchor, published or measured."""

    name: str
    dataset: str
    target: Any  # bench.anchors.Anchor or per-image rows
    published: Anchor | None
    codec_version: str | None = None  # a measured codec's version(s) in the store
    fallback: bool = False  # chosen because no published anchor fits (a note says why)


def check_bd_options(anchor: str | None, method: str, averaging: str) -> None:
    """Refuse BD options that cannot work, before anything is read (:class:`ReportError`)."""
    if method not in METHODS:
        raise ReportError(f"unknown BD method {method!r}; choose one of {', '.join(METHODS)}")
    if averaging not in AVERAGINGS:
        raise ReportError(f"unknown averaging {averaging!r}; choose one of {', '.join(AVERAGINGS)}")
    measured = (anchor or "").startswith(MEASURED_PREFIX)
    if averaging == MEAN_OF_PER_IMAGE and not measured:
        name = anchor or DEFAULT_ANCHOR
        try:
            per_image = bool(load_anchor(name).per_image)
        except AnchorError:
            per_image = False  # an unknown name is reported by choose_anchor
        if not per_image:
            raise ReportError(f"averaging 'mean-of-per-image' needs per-image anchor rows: anchor {name!r} is a "
                              "dataset average without per-image points; use a measured anchor file with per-image "
                              f"points (e.g. {DEFAULT_ANCHOR}) or a measured codec (--anchor {MEASURED_PREFIX}NAME)")


def default_anchor(notes: list[str]) -> str:
    """The measured ``kodak/vtm-23.13`` when generated, else CompressAI's ``kodak/vtm`` (with a note)."""
    if DEFAULT_ANCHOR in list_anchors(DEFAULT_ANCHOR.split("/")[0]):
        return DEFAULT_ANCHOR
    notes.append(f"default anchor `{DEFAULT_ANCHOR}` is not generated yet (python -m bench.tools.vtm anchor): "
                 f"using CompressAI's `{FALLBACK_ANCHOR}` instead")
    return FALLBACK_ANCHOR


def choose_anchor(data: ResultsView, anchor: str | None, dataset: str | None, notes: list[str]) -> BDAnchor | None:
    """The BD anchor ``anchor`` (None: the default) asks for on ``dataset`` (None: the anchor's);
    :class:`ReportError` if it cannot be used; the measured fallback when none was asked for and
    the default does not fit; None when nothing fits (with a note)."""
    name = anchor or default_anchor(notes)
    if name.startswith(MEASURED_PREFIX):
        codec = name[len(MEASURED_PREFIX):]
        datasets = data.datasets()
        dataset = dataset or ("kodak" if "kodak" in datasets else datasets[0] if datasets else None)
        if dataset not in datasets:
            raise ReportError(f"dataset {dataset!r} has no native-resolution rows; the store has {datasets}")
        rows = data.rd_rows[data.rd_rows["dataset"] == dataset]
        try:
            target = measured_anchor(rows, codec)
        except BDError as exc:
            raise ReportError(str(exc)) from None
        version = "; ".join(sorted(target["codec_version"].dropna().astype(str).unique())) or "unknown"
        return BDAnchor(name, dataset, target, None, codec_version=version)
    try:
        published = load_anchor(name)
    except AnchorError as exc:
        raise ReportError(str(exc)) from None
    asked = bool(anchor or dataset)
    dataset = dataset or published.dataset
    if dataset not in data.datasets():
        message = (f"anchor {name!r} is for dataset {dataset!r}, but the store's native-resolution rows are of "
                   f"{data.datasets() or 'no dataset'}")
        if asked:
            raise ReportError(message + "; pick another --anchor (python -m bench.anchors list) or --dataset")
        return fallback_anchor(data, message, notes)
    native = data.rd_rows[(data.rd_rows["dataset"] == dataset) & (data.rd_rows["resolution"] == "native")]
    measured = present_metrics(native)
    if measured and not any(anchor_has(published, m.bd_column) for m in measured):
        codecs = ", ".join(sorted(native["codec"].unique()))
        message = (f"anchor {name!r} has none of the qualities this store measured on {dataset!r} "
                   f"({', '.join(m.label for m in measured)}; the anchor has {', '.join(published.qualities)})")
        if anchor:
            raise ReportError(message + f"; compare with a codec of the store instead: --anchor "
                              f"{MEASURED_PREFIX}NAME (codecs: {codecs})")
        return fallback_anchor(data, message, notes)
    return BDAnchor(name, dataset, published, published)


def fallback_anchor(data: ResultsView, why: str, notes: list[str]) -> BDAnchor | None:
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
        chosen = choose_anchor(data, MEASURED_PREFIX + codec, dataset, notes)
    except ReportError as exc:
        notes.append(f"{why}: no BD-rate table ({exc})")
        return None
    notes.append(f"{why}: BD-rate against the measured codec {codec!r} instead, since no published anchor fits "
                 f"these data (pass --anchor to choose another)")
    chosen.fallback = True
    return chosen
