"""How ``bench run`` shows its progress: a live bar on a terminal, plain lines in a log.

rich's live bar only redraws on a terminal; written to a file or a pipe (``nox``, CI, ``2> log``)
it appears once, at the end — a long run was silent for many minutes. In a log the run therefore
prints a plain line (cells done, errors, elapsed time, estimated time left) every
:data:`EVERY_S` seconds or every :data:`EVERY_FRACTION` of the cells, whichever comes first, and
one when the last cell is done. Error cells are printed as they arrive either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

#: in a log, a progress line at least this often (seconds) ...
EVERY_S = 30.0
#: ... and at least at every this fraction of the cells
EVERY_FRACTION = 0.05


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RunProgress:
    """Counts the cells of a run as their rows arrive (:meth:`advance`) and shows it on ``console``
    (a rich console): a live bar when it is a terminal, plain lines otherwise, nothing but the
    error lines when ``quiet``. Use as a context manager."""

    def __init__(self, console: Any, total: int, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.total, self.quiet, self.clock = console, total, quiet, clock
        self.done = self.errors = 0
        self._bar: Any = None
        self._task: Any = None
        self._step = max(1, math.ceil(total * EVERY_FRACTION))
        self._start = self._last_time = 0.0
        self._last_done = 0

    def __enter__(self) -> RunProgress:
        self._start = self._last_time = self.clock()
        if not self.quiet and self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("errors {task.fields[errors]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=self.console)
            self._bar.__enter__()
            self._task = self._bar.add_task("cells", total=self.total, errors=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def advance(self, row: dict[str, Any]) -> None:
        """One more cell is done (its stored row): print it if it is an error, then the progress."""
        self.done += 1
        if row["status"] != "ok":
            self.errors += 1
            from rich.markup import escape

            self.console.print(f"[red]error[/red] {escape(str(row['cell_key']))}: {escape(str(row['error']))}",
                               highlight=False, soft_wrap=True)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, errors=self.errors)
            return
        now = self.clock()
        if not self.quiet and (self.done == self.total or self.done - self._last_done >= self._step
                               or now - self._last_time >= EVERY_S):
            self._last_done, self._last_time = self.done, now
            self.console.print(self.line(now), highlight=False, soft_wrap=True)

    def line(self, now: float) -> str:
        """The plain progress line at time ``now`` (of :attr:`clock`)."""
        elapsed = now - self._start
        left = elapsed / self.done * (self.total - self.done) if self.done else math.nan
        eta = _clock_text(left) if math.isfinite(left) else "?"
        return (f"cells {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f} %), errors {self.errors}, "
                f"elapsed {_clock_text(elapsed)}, ETA {eta}")
