"""The runner: plan cells, run them in worker processes, store each as soon as it finishes.

A cell is (codec configuration, rate point, image, resolution, device). Cells run in worker
processes — ``jobs`` of them for CPU codecs, one per GPU for CUDA codecs — so that a crash, a
hang or an out-of-memory kill takes down one cell, not the run: the worker is replaced, the cell is
stored as an error with the reason, and the run goes on. The main process is the only writer of
the results store and commits every cell at once, so killing the run loses only cells in flight,
and re-running the same command skips every cell already stored. Workers die with the main
process (see :func:`bench.worker.die_with_parent`); what runs inside them is :mod:`bench.worker`.

A cell's timeout (``Settings.timeout_s``) counts from the worker's "started" message, sent once
the image is loaded and the codec constructed: a fresh worker's start-up (imports, model
weights) is bounded separately by ``Settings.startup_timeout_s``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from bench.cells import Cell, Settings, config_hash, now  # noqa: F401 — re-exported: callers import them from here
from bench.store import Store
from bench.worker import worker_main

log = logging.getLogger(__name__)


# --- in the main process -------------------------------------------------------------------------

@dataclass
class _Worker:
    lane: str
    process: Any
    conn: Connection
    cell: Cell | None = None
    sent: float = 0.0  # monotonic time the cell was sent
    started: float | None = None  # monotonic time the worker said the cell's own work began


@dataclass
class RunResult:
    run_id: int
    done: int = 0
    errors: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


class Runner:
    """Runs cells over worker processes and stores each result as it arrives.

    Call :meth:`run` from a thread that outlives the run (normally the main thread): on Linux a
    worker is killed when the thread that started it exits (``PR_SET_PDEATHSIG``).
    """

    def __init__(self, store: Store, settings: Settings, jobs: int = 1):
        self.store = store
        self.settings = settings
        self.jobs = max(1, jobs)
        self.ctx = mp.get_context("spawn")  # CUDA-safe, and no state inherited from the parent

    def _spawn(self, lane: str) -> _Worker:
        parent, child = self.ctx.Pipe()
        process = self.ctx.Process(target=worker_main, args=(child, self.settings, os.getpid()), daemon=True)
        process.start()
        child.close()
        return _Worker(lane, process, parent)

    def pending(self, cells: list[Cell], retry_errors: bool = False) -> tuple[list[Cell], int]:
        """Cells not yet stored (in order, each once) and how many were already stored."""
        finished = self.store.finished_keys(include_errors=not retry_errors)
        todo = list({c.key: c for c in cells if c.key not in finished}.values())
        if retry_errors:
            self.store.delete_errors(c.key for c in todo)
        return todo, len(cells) - len(todo)

    def run(self, cells: list[Cell], run_id: int, retry_errors: bool = False,
            on_result: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
        todo, skipped = self.pending(cells, retry_errors)
        result = RunResult(run_id, skipped=skipped)
        t0 = time.perf_counter()
        queues: dict[str, deque[Cell]] = {}
        for cell in todo:
            queues.setdefault(cell.lane, deque()).append(cell)
        workers: list[_Worker] = []
        for lane, queue in queues.items():
            count = min(len(queue), self.jobs if lane == "cpu" else 1)
            workers += [self._spawn(lane) for _ in range(count)]
        try:
            while any(queues.values()) or any(w.cell for w in workers):
                for w in workers:
                    if w.cell is None and queues.get(w.lane):
                        w.cell, w.sent, w.started = queues[w.lane].popleft(), time.monotonic(), None
                        w.conn.send(w.cell)
                busy = [w for w in workers if w.cell]
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
                for i, w in enumerate(workers):
                    if w.cell is None:
                        continue
                    row = self._collect(w)
                    if row is None:
                        continue
                    row["run_id"] = run_id
                    self.store.add_measurement(row)
                    result.done += 1
                    result.errors += row["status"] != "ok"
                    result.rows.append(row)
                    if on_result:
                        on_result(row)
                    if not w.process.is_alive():
                        w.conn.close()
                        workers[i] = self._spawn(w.lane)
                    else:
                        w.cell = None
        finally:
            for w in workers:
                if w.process.is_alive():
                    try:
                        w.conn.send(None)
                    except OSError:
                        pass
            for w in workers:
                w.process.join(timeout=5)
                if w.process.is_alive():
                    w.process.kill()
        result.wall_s = time.perf_counter() - t0
        return result

    def _collect(self, w: _Worker) -> dict[str, Any] | None:
        """The finished row of worker ``w``'s cell, an error row if it died or timed out, or None."""
        cell = w.cell
        assert cell is not None
        try:
            while w.conn.poll():
                kind, payload = w.conn.recv()
                if kind == "row":
                    return payload
                w.started = time.monotonic()  # "started": the cell's own work begins now
        except (EOFError, OSError):
            pass
        reason = None
        clock = time.monotonic()
        if not w.process.is_alive():
            code = w.process.exitcode
            if code is not None and code < 0:
                sig = signal.Signals(-code).name
                hint = " — the kernel's out-of-memory killer sends this" if sig == "SIGKILL" else ""
                reason = f"worker process died with {sig}{hint}"
            else:
                reason = f"worker process exited with code {code}"
        elif w.started is not None and clock - w.started > self.settings.timeout_s:
            reason = f"timeout: cell took longer than {self.settings.timeout_s:g} s"
        elif w.started is None and clock - w.sent > self.settings.startup_timeout_s:
            reason = (f"timeout: worker start-up (imports, image, codec construction) took longer than "
                      f"{self.settings.startup_timeout_s:g} s")
        if reason is None:
            return None
        if w.process.is_alive():
            w.process.kill()
            w.process.join(timeout=5)
        row = cell.identity()
        row.update(status="error", error=reason, threads=self.settings.threads, finished_at=now(),
                   wall_s=clock - (w.started if w.started is not None else w.sent))
        return row
