"""Kept bitstreams (``bench run --keep-streams``): content-addressed files beside the results store.

A cell's bitstream — exactly the bytes its decode and metrics were measured on — is stored once as
``<store folder>/streams/<first 2 hex digits>/<sha256>``, and the row records that sha256 in
``stream_sha256``. Equal streams (a deterministic codec run twice, rounds) share one file. Files
are written atomically (a temporary file in the same folder, fsynced, then renamed), so a killed
run leaves whole files or none; the row is committed only after its file, so a row never points to
a file that was not written. Reading a stream checks its sha256: a missing or changed file is a
:class:`~bench.errors.StreamError` naming the cell and the file, never bytes used as they are.

The runner is the one writer (a Dask worker on another machine returns the bytes with its row; the
driver writes them here), so streams live wherever the store lives.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from bench.errors import StreamError
from bench.store import db_path

FOLDER = "streams"
_SHA = re.compile(r"[0-9a-f]{64}")


def streams_dir(results: str | Path) -> Path:
    """The folder of the kept streams of the store in ``results`` (a folder or ``.sqlite`` file)."""
    return db_path(results).parent / FOLDER


def stream_path(folder: Path, sha256: str) -> Path:
    """Where the stream ``sha256`` lives under ``folder``; a value that is not a sha256 (a damaged
    or foreign row) is refused, so it can never name a path outside ``folder``."""
    if not isinstance(sha256, str) or not _SHA.fullmatch(sha256):
        raise StreamError(f"{sha256!r} is not a stream sha256 (64 lowercase hex digits)")
    return folder / sha256[:2] / sha256


def _valid(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def write_stream(folder: Path, data: bytes) -> str:
    """Store ``data`` under ``folder`` by its sha256 (once; an existing file with the right content
    is kept, a damaged one replaced); returns the sha256. An ``OSError`` (full disk) names the file."""
    sha = hashlib.sha256(data).hexdigest()
    path = stream_path(folder, sha)
    if path.is_file() and _valid(path, sha):
        return sha
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{sha[:16]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename in (None, tmp) and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sha


def read_stream(folder: Path, sha256: str, what: str = "") -> bytes:
    """The stream ``sha256`` from ``folder``, its content checked; :class:`StreamError` naming
    ``what`` (the cell) and the file when it is missing, unreadable or not the recorded bytes."""
    path = stream_path(folder, sha256)
    cell = f"{what}: " if what else ""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StreamError(f"{cell}kept stream {path} is missing") from None
    except OSError as exc:
        raise StreamError(f"{cell}kept stream {path} cannot be read ({exc.strerror})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise StreamError(f"{cell}kept stream {path} is corrupt: its sha256 is {actual}, the row records {sha256}")
    return data
