"""Output files written safely: atomically, never over a results store, and CSV that no spreadsheet runs.

Every file the suite writes for people (exports, the report's pages, figures and ``data/*.csv``,
the gate's JSON) goes through :func:`write_atomically`: a temporary file in the same folder, then
renamed, so an interrupted write leaves either the old file or the new one; it refuses to
overwrite an existing file without ``force``, and never writes over a results store or the files
beside one. :func:`write_csv` neutralises spreadsheet formulas (OWASP's advice): a text cell
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``.
A low module: the report and the exports both write through it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bench.errors import UsageError

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


#: the files SQLite and the store's lock (:mod:`bench.storelock`) keep beside a store
STORE_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")


def _is_store_file(path: Path) -> bool:
    """Whether ``path`` is an SQLite database or one of the files beside one (journal, WAL, lock)."""
    base = next((path.with_name(path.name[:-len(s)]) for s in STORE_COMPANIONS if path.name.endswith(s)), path)
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
