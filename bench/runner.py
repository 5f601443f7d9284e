"""The driver: run planned cells through an executor and store each row the moment it arrives.

A cell is (codec configuration, rate point, image, resolution, device, round); :mod:`bench.plan`
makes them. The driver is the same for every executor (:mod:`bench.executors`: ``local`` worker
processes, or a Dask cluster): it skips cells already stored (resume), deletes error rows that
``--retry-errors`` re-runs, stamps every row with the run id and the executor's name, writes it
to the results store — this process is the store's only writer, committing every cell at once, so
killing the run loses only the cells in flight — and reports each row to a progress callback.
If the executor's engine is lost (:class:`~bench.errors.ExecutorError`), the run stops with every
finished cell kept; re-running the same command resumes it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.cells import Cell, Settings, config_hash, now  # noqa: F401 — re-exported: callers import them from here
from bench.errors import ExecutorError
from bench.executors import Executor, make_executor
from bench.store import Store

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: int
    done: int = 0
    errors: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


def keep_stream(row: dict[str, Any], store_path: Path) -> None:
    """Write the bitstream a worker returned with ``row`` (``--keep-streams``) beside the store and
    put its sha256 in ``stream_sha256``; a row without one is left as it is."""
    from bench.cells import STREAM_ROW_KEY
    from bench.streams import streams_dir, write_stream

    data = row.pop(STREAM_ROW_KEY, None)
    if data is not None and row.get("status") == "ok":
        row["stream_sha256"] = write_stream(streams_dir(store_path), data)


class Runner:
    """Runs cells through the executor called ``executor`` (options such as ``scheduler`` go to
    :func:`bench.executors.make_executor`), or through an :class:`Executor` object given as
    ``executor``, and stores each row as it arrives.

    A named executor is made only when there are cells to run, so a fully resumed run starts no
    worker and no cluster; either way it is closed when :meth:`run` ends. Call :meth:`run` from a thread that outlives the run (normally the main
    thread): local workers die when the thread that started them exits (``PR_SET_PDEATHSIG``).
    """

    def __init__(self, store: Store, settings: Settings, jobs: int = 1, executor: str | Executor = "local",
                 **options: Any):
        self.store = store
        self.settings = settings
        self.jobs = max(1, jobs)
        self.executor = executor
        self.options = options

    def pending(self, cells: list[Cell], retry_errors: bool = False) -> tuple[list[Cell], int]:
        """Cells not yet stored (in order, each once) and how many were already stored."""
        finished = self.store.finished_keys(include_errors=not retry_errors)
        todo = list({c.key: c for c in cells if c.key not in finished}.values())
        if retry_errors:
            self.store.delete_errors(c.key for c in todo)
        return todo, len(cells) - len(todo)

    def run(self, cells: list[Cell], run_id: int, retry_errors: bool = False,
            on_result: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
        """Run the cells not yet stored; returns counts and the rows. Raises :class:`ExecutorError`
        (after storing everything that finished) when the executor's engine is lost."""
        todo, skipped = self.pending(cells, retry_errors)
        result = RunResult(run_id, skipped=skipped)
        t0 = time.perf_counter()
        if not todo:
            return result
        executor = self.executor if not isinstance(self.executor, str) else \
            make_executor(self.executor, self.settings, self.jobs, **self.options)
        try:
            for row in executor.run(todo):
                row.update(run_id=run_id, executor=executor.name)
                keep_stream(row, self.store.path)  # the file first: a committed row never points to nothing
                self.store.add_measurement(row)
                result.done += 1
                result.errors += row["status"] != "ok"
                result.rows.append(row)
                if on_result:
                    on_result(row)
        except ExecutorError as exc:
            raise ExecutorError(f"the run stopped: {exc}; {result.done} of {len(todo)} cells finished and are "
                                f"stored in {self.store.path} — re-run the same command to resume") from exc
        finally:
            executor.close()
            result.wall_s = time.perf_counter() - t0
        return result
