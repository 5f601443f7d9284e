"""The environment every process of a cell runs with: thread pins and the run's time limit.

:class:`bench.cells.Settings` is the only owner of these values; this module is how they reach
the processes that do the work. A worker applies them to itself (:func:`pin`), and every process a
cell starts — the memory zygote and its children, the cross-decode process, an external tool such
as VTM's encoder — gets them through :func:`child_env`, so no module sets a thread count or a time
limit of its own. A low module: it imports nothing from the package.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: variables that size the math libraries' thread pools (OpenMP, MKL, OpenBLAS); read when they load
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: the run's per-cell time limit in seconds, for the tools a cell starts (a bound on each call)
TIMEOUT_VAR = "BENCH_TIMEOUT_S"


def environment(threads: int, timeout_s: float | None = None) -> dict[str, str]:
    """The variables a process of a cell needs: every thread pool at ``threads``, and the time limit."""
    env = dict.fromkeys(THREAD_VARS, str(int(threads)))
    if timeout_s is not None:
        env[TIMEOUT_VAR] = f"{float(timeout_s):g}"
    return env


def pin(threads: int, timeout_s: float | None = None) -> None:
    """Pin this process: the variables (before torch or numpy start their pools) and torch's own
    count if torch is already imported."""
    os.environ.update(environment(threads, timeout_s))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(threads))


def pinned() -> int:
    """The thread count this process was pinned to (by :func:`pin` or its parent); 1 if none."""
    try:
        return max(1, int(os.environ.get(THREAD_VARS[0], "1") or 1))
    except ValueError:
        return 1


def timeout_s(default: float) -> float:
    """The run's per-cell time limit as this process received it; ``default`` outside a run."""
    try:
        return float(os.environ[TIMEOUT_VAR])
    except (KeyError, ValueError):
        return default


def child_env(threads: int | None = None, python: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a process a cell starts: this one's, pinned to ``threads`` (default: this
    process's own pin), plus ``extra``. ``python``: the package root goes first on ``PYTHONPATH``,
    so ``python -m bench.…`` runs this very code."""
    env = {**os.environ, **environment(pinned() if threads is None else threads), **extra}
    if python:
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@contextmanager
def pinned_for(threads: int) -> Iterator[None]:
    """:func:`pin` ``threads`` for a block, then restore the previous variables and torch count."""
    saved = {var: os.environ.get(var) for var in (*THREAD_VARS, TIMEOUT_VAR)}
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    pin(threads)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        torch = sys.modules.get("torch")
        if torch is not None and before is not None:
            torch.set_num_threads(before)
