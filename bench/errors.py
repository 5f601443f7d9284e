"""Every exception type of the package, in one low module that imports nothing from ``bench``.

Each layer raises these and may import this module; none imports another layer for its errors.
``BenchError`` is the common base, so a caller can catch "a lic-bench error" in one clause; the
second base keeps each type catchable as the builtin it used to be (``ValueError`` for bad input,
``RuntimeError`` for failures at run time). :func:`describe` is the one line a command's ``main``
prints for any of them (and for an ``OSError``) before it exits with status 2.
"""

from __future__ import annotations

import errno
import os
import sys


class BenchError(Exception):
    """Base of every lic-bench error."""


class UsageError(BenchError, ValueError):
    """The user asked for something that cannot be done; the command prints one line and exits 2."""


class ConfigError(BenchError, ValueError):
    """A codec configuration (TOML) is malformed or out of range; the message names file and key."""


class CodecError(BenchError, RuntimeError):
    """A codec failed on one input (corrupt bitstream, encoder error). The cell is an error."""


class CodecUnavailable(BenchError, RuntimeError):
    """The codec cannot run here (missing library, binary or checkpoint); the message says why."""


class CheckpointError(BenchError, ValueError):
    """A weights file cannot be used (wrong layout, unsafe content, wrong sha256); the message says why."""


class ImageError(BenchError, ValueError):
    """A test image cannot be used; the message names the file and the reason."""


class StoreError(BenchError, RuntimeError):
    """The results store cannot be opened, locked or written; the message names the path and the cause."""


class StreamError(BenchError, RuntimeError):
    """A kept bitstream is missing, unreadable or not the bytes its row records (sha256); the message
    names the cell and the file."""


class BDError(BenchError, ValueError):
    """BD metrics cannot be computed from these curves (the message says which point and why)."""


class ScalingError(BenchError, ValueError):
    """The points cannot support a power-law fit (too few sizes, non-positive or missing values)."""


class AnchorError(BenchError, ValueError):
    """An anchor file or source file is malformed, or a name is unknown."""


class ReportError(BenchError, ValueError):
    """The report cannot be made as asked (unknown anchor, dataset absent, bad option)."""


class GateError(BenchError, RuntimeError):
    """The gate cannot run or compare (the message says why); exit status 2."""


class BuildError(BenchError, RuntimeError):
    """Building a third-party tool failed (missing compiler, bad source, failed compile); the message says why."""


class ExecutorError(BenchError, RuntimeError):
    """The execution engine itself is lost (e.g. the Dask scheduler is gone, the cluster cannot start);
    the run stops cleanly, keeping every cell already stored. One cell's failure is never this."""


class DatasetError(BenchError, FileNotFoundError):
    """A named image set is not there (no folder, no images); the message says where it looked and what to do."""


#: Exit status after the reader of our output went away: 128 + SIGPIPE, as a shell reports it.
BROKEN_PIPE_STATUS = 141


def quiet_broken_pipe() -> int:
    """The program reading our output stopped early (``… | head``): stop without a message, as
    POSIX tools do. Standard output is pointed at /dev/null so that the interpreter's final flush
    does not fail again. Returns :data:`BROKEN_PIPE_STATUS` for the command to exit with."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return BROKEN_PIPE_STATUS


def describe(exc: BaseException, where: object = None) -> str:
    """The one line a command prints for an error the user can act on (a lic-bench error or an OS error).

    An ``OSError`` (disk full, read-only file system, no permission) names the path — its own, or
    ``where`` when the error carries none (a failed write reports no file name) — and the cause,
    and says what to do. Every message is folded onto one line.
    """
    if isinstance(exc, OSError) and not isinstance(exc, BenchError) and exc.strerror:
        path = exc.filename if exc.filename is not None else where
        path = f"{path}" + (f" → {exc.filename2}" if exc.filename2 else "") if path is not None else "(path unknown)"
        hint = _OS_HINTS.get(exc.errno or 0, "check the path and try again")
        text = f"{path}: {exc.strerror} ({errno.errorcode.get(exc.errno or 0, exc.errno)}); {hint}"
    else:
        text = str(exc) or type(exc).__name__
        text = f"{where}: {text}" if where is not None and not isinstance(exc, BenchError) else text
    return " ".join(text.split())


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space or write elsewhere (e.g. another --out)",
    errno.EDQUOT: "the disk quota is exhausted: free space or write elsewhere (e.g. another --out)",
    errno.EFBIG: "the file size limit was reached: write elsewhere or raise the limit (ulimit -f)",
    errno.EROFS: "the file system is read-only: write elsewhere (e.g. another --out)",
    errno.EACCES: "no permission: write elsewhere (e.g. another --out) or fix the permissions",
    errno.EPERM: "not permitted: write elsewhere (e.g. another --out) or fix the permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.ENOENT: "no such file or folder: check the path",
}
