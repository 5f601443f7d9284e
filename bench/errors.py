"""Every exception type of the package, in one low module that imports nothing from ``bench``.

Each layer raises these and may import this module; none imports another layer for its errors.
``BenchError`` is the common base, so a caller can catch "a lic-bench error" in one clause; the
second base keeps each type catchable as the builtin it used to be (``ValueError`` for bad input,
``RuntimeError`` for failures at run time).
"""

from __future__ import annotations


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
