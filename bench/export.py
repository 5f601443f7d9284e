"""Export a results store to CSV and to CompressAI's results-JSON shape.

CompressAI's plotting scripts read ``{"name", "description", "results": {"psnr-rgb", "ms-ssim-rgb",
"bpp", "encoding_time", "decoding_time"}}`` with one entry per rate point, averaged over images.
We write one such file per codec, from the native-resolution, successful cells of one dataset;
every other registry metric measured in those cells is added under its registry name (``vmaf``,
``ms-ssim-y``, ...).

The JSON is strict (no ``NaN``/``Infinity``, which ``json.loads`` elsewhere rejects): a value that
is not a finite number is written as ``null`` — a lossless rate point (PSNR infinite) has
``"psnr-rgb": null``, a metric that was not measured has ``null`` too. Exports never overwrite an
existing file unless ``force`` is given, never the results store itself, and are written
atomically (a temporary file in the same folder, then renamed), so an interrupted export leaves
either the old file or the new one; a failed write names the file it was writing. File names come
from codec names through :func:`bench.outfiles.safe_file_name`, so a name can never place a file
outside the export folder. Every CSV the suite writes (here and the report's ``data/*.csv``) goes
through :func:`bench.outfiles.write_csv`, which neutralises spreadsheet formulas: a text cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading ``'`` (OWASP's advice), so a codec named
``=HYPERLINK(…)`` is shown, not evaluated; numbers are written as numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from bench.metrics.registry import METRICS
from bench.outfiles import STORE_COMPANIONS, safe_file_name, write_atomically, write_csv
from bench.store import db_path, read_measurements


def _finite_or_none(values: list[Any]) -> list[float | None]:
    """Finite numbers as floats; NaN, ±inf and missing values as ``None`` (JSON ``null``)."""
    out: list[float | None] = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        out.append(f if math.isfinite(f) else None)
    return out


def _protected(results: str | Path) -> set[Path]:
    store = db_path(results).resolve()
    return {store, *(store.with_name(store.name + s) for s in STORE_COMPANIONS)}


def to_csv(results: str | Path, out: str | Path, force: bool = False) -> int:
    """Every measurement row (errors included) to ``out``; returns the row count."""
    frame = read_measurements(results, status=None)
    write_csv(frame, out, force, _protected(results))
    return len(frame)


def to_compressai_json(results: str | Path, folder: str | Path, dataset: str | None = None,
                       force: bool = False) -> list[Path]:
    """One CompressAI results JSON per codec into ``folder``; returns the files written.

    The rows are the results view's (:mod:`bench.results`): the latest configuration of each codec;
    each point is the mean over the images that have a stored bitstream at every rate point
    (:func:`~bench.analysis.bd.complete_images` on the rate, the one rule of the view: all the file's
    metrics share its ``bpp``, so a lossless point — PSNR infinite, written as ``null`` — is kept).
    Every target is checked before the first is written, so a refusal writes nothing.
    """
    from bench.analysis.bd import complete_images
    from bench.results import from_frame

    frame = from_frame(read_measurements(results, status=None), where=results).native
    if frame.empty:
        raise UsageError(f"{results}: no successful native-resolution cells to export")
    dataset = dataset or sorted(frame["dataset"].unique())[0]
    if dataset not in set(frame["dataset"]):
        raise UsageError(f"{results}: no native-resolution cells of dataset {dataset!r} "
                         f"(there are: {', '.join(sorted(frame['dataset'].unique()))})")
    frame = frame[frame["dataset"] == dataset]
    folder = Path(folder)
    docs: dict[Path, dict[str, Any]] = {}
    names: dict[Path, str] = {}
    for codec, group in frame.groupby("codec"):
        group, left_out = complete_images(group, "bpp")
        if group.empty:
            raise UsageError(f"{codec}: no image of {dataset!r} has every rate point, so no point of its curve is an "
                             f"average over the same images (e.g. {next(iter(left_out.items()))})")
        path = folder / f"{safe_file_name(str(codec))}.json"
        if path in names:
            raise UsageError(f"codecs {names[path]!r} and {codec!r} would both be exported to {path}; rename one")
        if path.exists() and not force:
            raise UsageError(f"{path} already exists; pass --force to overwrite it")
        names[path] = str(codec)
        # every registry metric with a value (CompressAI's own keys for PSNR-RGB and MS-SSIM, else the metric's name)
        measured = [m for m in METRICS if m.columns[0] in group and group[m.columns[0]].notna().any()]
        mean = group.groupby("rate_label", sort=False)[
            ["bpp", *{"psnr_rgb", "ms_ssim"} | {m.columns[0] for m in measured}, "enc_time_s", "dec_time_s"]
        ].mean().sort_values("bpp")
        images = group["image"].nunique()
        docs[path] = {
            "name": codec,
            "description": f"lic-bench: {codec} ({group['codec_version'].iloc[0]}) on {dataset}, "
                           f"mean over {images} images; times are medians per image, in seconds; "
                           "null where a value is not a finite number (psnr-rgb: lossless)",
            "results": {
                "psnr-rgb": _finite_or_none(mean["psnr_rgb"].tolist()),
                "ms-ssim-rgb": _finite_or_none(mean["ms_ssim"].tolist()),
                **{m.name: _finite_or_none(mean[m.columns[0]].tolist()) for m in measured
                   if m.name not in ("psnr-rgb", "ms-ssim")},
                "bpp": _finite_or_none(mean["bpp"].tolist()),
                "encoding_time": _finite_or_none(mean["enc_time_s"].tolist()),
                "decoding_time": _finite_or_none(mean["dec_time_s"].tolist()),
            },
        }
    protected = _protected(results)
    for path, doc in docs.items():
        write_atomically(path, lambda fh, doc=doc: json.dump(doc, fh, indent=2, allow_nan=False), force, protected)
    return list(docs)


def to_bd_csv(results: str | Path, out: str | Path, anchor: str | None = None, dataset: str | None = None,
              method: str = "pchip", averaging: str = "average-curve", force: bool = False) -> int:
    """The report's BD table — every codec's BD-rate and BD-quality per metric, each with its 95 % bootstrap
    interval over images (resamples and seed in the ``ci_*`` columns) — to ``out``; returns the row count.

    The anchor is chosen by the rule the report uses (:func:`bench.anchor_choice.choose_anchor`:
    ``anchor`` as ``--anchor``; default the measured Kodak VTM anchor, else the measured ``jpeg-420``).
    """
    from bench.anchor_choice import check_bd_options, choose_anchor
    from bench.results import load

    check_bd_options(anchor, method, averaging)
    view = load(results)
    bd_anchor = choose_anchor(view, anchor, dataset, [])
    if bd_anchor is None:
        raise UsageError(f"{results}: no BD anchor fits these data; pass --anchor")
    table = view.bd(bd_anchor.dataset, bd_anchor.target, bd_anchor.name, method, averaging).table
    table = table.assign(dataset=bd_anchor.dataset)
    write_csv(table, out, force, _protected(results))
    return len(table)


#: the columns of the index ``streams.csv`` written beside exported streams
STREAM_INDEX = ("cell_key", "run_id", "codec", "rate_label", "dataset", "image", "resolution", "device", "round",
                "bytes", "stream_sha256")


def to_streams(results: str | Path, folder: str | Path, force: bool = False) -> int:
    """Copy the kept bitstream of every stored row that has one (``run --keep-streams``) into ``folder``
    (``ab/<sha256>``, the store's layout) with an index ``streams.csv`` (cell, codec, rate, image, sha256);
    returns the number of streams. Every stream is read and its sha256 checked before anything is
    written: a missing or corrupt one is a :class:`StreamError` naming the cells, and nothing is written."""
    from bench.errors import StreamError
    from bench.streams import read_stream, stream_path, streams_dir

    frame = read_measurements(results, status=None)
    if "stream_sha256" not in frame or frame["stream_sha256"].isna().all():
        raise UsageError(f"{results}: no kept streams in this store (run with --keep-streams)")
    frame = frame[frame["stream_sha256"].notna()]
    source, target = streams_dir(results), Path(folder)
    index = target / "streams.csv"
    if index.exists() and not force:
        raise UsageError(f"{index} already exists; pass --force to overwrite it")
    streams: dict[str, bytes] = {}
    problems = []
    for key, sha in zip(frame["cell_key"], frame["stream_sha256"]):
        if sha not in streams:
            try:
                streams[sha] = read_stream(source, sha, key)
            except StreamError as exc:
                problems.append(str(exc))
    if problems:
        raise StreamError(f"{len(problems)} kept stream(s) cannot be exported: {'; '.join(problems[:5])}"
                          + (" …" if len(problems) > 5 else ""))
    for sha, data in streams.items():
        path = stream_path(target, sha)
        if path.is_file() and path.read_bytes() == data:
            continue  # content-addressed: the same file is already there
        write_atomically(path, lambda fh, data=data: fh.write(data), force, _protected(results), binary=True)
    write_csv(frame[[c for c in STREAM_INDEX if c in frame]].assign(
        path=[str(stream_path(Path("."), sha)) for sha in frame["stream_sha256"]]), index, force, _protected(results))
    return len(streams)
