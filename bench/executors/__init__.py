"""Executors: cells in, rows out, as they finish.

An executor runs :class:`~bench.cells.Cell` objects somewhere — worker processes on this machine
(``local``, :mod:`bench.executors.local`) or a Dask cluster (``dask``, :mod:`bench.executors.dask`)
— and yields one row per cell. It never writes the store: the driver (:mod:`bench.runner`) is the
single writer, and the same driver code serves every executor, so resume, ``--retry-errors`` and
the progress bar behave identically whichever one runs the cells.

Contract of :meth:`Executor.run`:

- yields one row (a dict of store columns) per cell, in the order cells *finish*, each cell exactly
  once — an ``ok`` row or an ``error`` row with the reason (crash, timeout, out of memory);
- never raises for one cell's failure;
- raises :class:`bench.errors.ExecutorError` when the engine itself is lost (e.g. the Dask
  scheduler is gone); the driver then stops cleanly, keeping every row already stored.

:meth:`Executor.close` releases workers and clusters; it is safe to call twice.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bench.errors import UsageError

if TYPE_CHECKING:  # annotations only: ``bench --help`` imports EXECUTORS without numpy
    from bench.cells import Cell, Settings

#: the names ``bench run --executor`` accepts
EXECUTORS = ("local", "dask")


class Executor(Protocol):
    """Runs cells and yields their rows as they finish (see the module docstring for the contract)."""

    name: str  # 'local' | 'dask'

    def run(self, cells: Sequence[Cell]) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


def executor_class(name: str, **options: Any) -> type:
    """The class of the executor called ``name``, after checking ``options`` — without starting
    anything, so a command can refuse bad options before it opens a store.

    Raises :class:`UsageError` for an unknown name, an option the executor does not take (the
    local executor takes none), or an executor whose module cannot be imported here.
    """
    given = sorted(k for k, v in options.items() if v is not None)
    if name == "local":
        if given:
            raise UsageError(f"--executor local takes no {', '.join('--' + k.replace('_', '-') for k in given)} "
                             "(those are for --executor dask)")
        from bench.executors.local import LocalExecutor

        return LocalExecutor
    if name == "dask":
        try:
            module = importlib.import_module("bench.executors.dask")
        except ImportError as exc:
            raise UsageError(f"--executor dask is not available here ({exc}); install dask and distributed "
                             "(pip install 'dask[distributed]') or use --executor local") from None
        return module.DaskExecutor
    raise UsageError(f"--executor {name!r}: unknown executor; choose one of {', '.join(EXECUTORS)}")


def make_executor(name: str, settings: Settings, jobs: int, **options: Any) -> Executor:
    """The executor called ``name``, running ``jobs`` cells at a time with ``settings``.

    ``options`` (``None`` values dropped) go to its constructor; for ``dask``: ``scheduler``
    (``tcp://HOST:PORT``) and ``cluster`` (a spec such as ``local:2``). Errors as
    :func:`executor_class`.
    """
    cls = executor_class(name, **options)
    return cls(settings, jobs, **{k: v for k, v in options.items() if v is not None})
