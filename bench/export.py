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
from codec names through :func:`safe_file_name`, so a name can never place a file outside the
export folder. Every CSV the suite writes (here and the report's ``data/*.csv``) goes through
:func:`write_csv`, which neutralises spreadsheet formulas: a text cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading ``'`` (OWASP's advice), so a codec named
``=HYPERLINK(…)`` is shown, not evaluated; numbers are written as numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bench.errors import UsageError
from bench.metrics.registry import METRICS
from bench.store import db_path, read_measurements

if TYPE_CHECKING:
    import pandas as pd

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: First characters that make a spreadsheet read a cell as a formula (or start one after a tab/CR).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_file_name(name: str) -> str:
    """``name`` as a plain file name: every character outside ``[A-Za-z0-9._-]`` becomes ``_``, runs
    of dots become ``_`` and leading dots are dropped, so the result has no path separator, is never
    ``.``/``..`` and is never hidden. Raises :class:`UsageError` when nothing usable is left."""
    safe = re.sub(r"\.{2,}", "_", _UNSAFE.sub("_", name)).lstrip(".")
    if not safe or set(safe) <= {"_", "-"}:
        raise UsageError(f"{name!r} gives no usable file name (use letters, digits, '.', '_' or '-')")
    return safe


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


#: the files SQLite and the store's lock (:mod:`bench.storelock`) keep beside a store
_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")


def _protected(results: str | Path) -> set[Path]:
    store = db_path(results).resolve()
    return {store, *(store.with_name(store.name + s) for s in _COMPANIONS)}


def _is_store_file(path: Path) -> bool:
    """Whether ``path`` is an SQLite database or one of the files beside one (journal, WAL, lock)."""
    base = next((path.with_name(path.name[:-len(s)]) for s in _COMPANIONS if path.name.endswith(s)), path)
    try:
        with open(base, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _new_file_mode() -> int:
    """The mode an ordinary new file gets here (0666 less the umask); ``mkstemp`` would leave 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: Path, write: Callable[[IO[Any]], None], force: bool = False,
                     protected: Collection[Path] = (), binary: bool = False) -> None:
    """Write ``path`` through ``write(handle)`` into a temporary file beside it, then rename it over.

    Refuses (:class:`UsageError`) when ``path`` is in ``protected`` (always) or exists without
    ``force``, so nothing is lost by accident; the folder is created when missing. A failed write
    (a full disk) leaves no partial file and raises the ``OSError`` with ``path`` as its file name.
    ``binary``: the handle takes bytes (a figure), else UTF-8 text.
    """
    path = Path(path)
    if path.resolve() in protected or _is_store_file(path):
        raise UsageError(f"{path} is the results store itself, or one of its files (journal, lock): "
                         "export to another file")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _new_file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename in (None, tmp) and exc.errno is not None:  # a failed write names no file: name ours
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def formula_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot run as spreadsheet formulas: a string starting
    with one of :data:`FORMULA_START` gets a leading ``'``. Numbers (also negative ones) are kept."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = [("'" + v) if isinstance(v, str) and v.startswith(FORMULA_START) else v
                           for v in out[column]]
    out.columns = [("'" + c) if isinstance(c, str) and c.startswith(FORMULA_START) else c for c in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: str | Path, force: bool = False, protected: Collection[Path] = ()) -> None:
    """``frame`` (without its index) as a formula-safe CSV at ``path``, written atomically."""
    safe = formula_safe(frame)
    write_atomically(Path(path), lambda fh: safe.to_csv(fh, index=False), force, protected)


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

    The anchor is chosen as the report chooses it (``anchor`` as ``--anchor``; default the measured
    Kodak VTM anchor, else the measured ``jpeg-420``).
    """
    from bench.report.anchoring import ReportOptions, check_options, resolve_anchor
    from bench.results import load

    options = ReportOptions(anchor=anchor, method=method, averaging=averaging, dataset=dataset)
    check_options(options)
    view = load(results)
    bd_anchor = resolve_anchor(view, options, [])
    if bd_anchor is None:
        raise UsageError(f"{results}: no BD anchor fits these data; pass --anchor")
    table = view.bd(bd_anchor.dataset, bd_anchor.target, bd_anchor.name, method, averaging).table
    table = table.assign(dataset=bd_anchor.dataset)
    write_csv(table, out, force, _protected(results))
    return len(table)
