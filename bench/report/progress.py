"""Progress of a report build on stderr: what it is doing now, step k of n, and for how long.

On a terminal a rich status line (spinner, bar, elapsed time) that disappears when done; in a log
(stderr not a terminal) one plain line per step as it starts, so a log shows where a slow build is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

#: The steps of :func:`bench.report.build.build_report`, in order.
STEPS = ("reading the store", "rate-distortion curves and figures",
         "BD-rate tables (bootstrap intervals, JPEG AI summary, sensitivity)", "complexity tables",
         "scaling fits and figures", "trade-off figure", "writing report.md and report.html")


class Step(Protocol):
    def __call__(self, name: str) -> None: ...


def quiet(_name: str) -> None:
    """A :class:`Step` that shows nothing (the library default)."""


@contextmanager
def stderr_progress(steps: tuple[str, ...] = STEPS) -> Iterator[Step]:
    """A :class:`Step` callback showing ``steps`` on stderr (see the module docstring)."""
    from rich.console import Console

    console = Console(stderr=True)
    started = time.monotonic()
    if not console.is_terminal:
        def line(name: str) -> None:
            k = steps.index(name) + 1 if name in steps else 0
            console.print(f"report [{k}/{len(steps)}] {name} ({time.monotonic() - started:.0f} s)",
                          highlight=False, markup=False, soft_wrap=True)
        yield line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("report: {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(steps[0], total=len(steps))

        def update(name: str) -> None:
            bar.update(task, description=name, completed=steps.index(name) if name in steps else 0)
        yield update
