"""The local executor: cells run in worker processes on this machine, one cell at a time each.

``jobs`` workers serve CPU cells and one worker each CUDA device, so that a crash, a hang or an
out-of-memory kill takes down one cell, not the run: the worker is replaced and the cell comes back
as an error row with the reason. Workers are spawned (CUDA-safe, nothing inherited) and die with
the process that started them (:func:`bench.worker.die_with_parent`); what runs inside them is
:mod:`bench.worker`.

A cell's timeout (``Settings.timeout_s``) counts from the worker's "started" message, sent once
the image is loaded and the codec constructed: a fresh worker's start-up (imports, model
weights) is bounded separately by ``Settings.startup_timeout_s``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from bench.cells import Cell, Settings, now
from bench.worker import worker_main


@dataclass
class _Worker:
    lane: str
    process: Any
    conn: Connection
    cell: Cell | None = None
    sent: float = 0.0  # monotonic time the cell was sent
    started: float | None = None  # monotonic time the worker said the cell's own work began


class LocalExecutor:
    """Worker processes on this machine (see the module docstring).

    Iterate :meth:`run` in a thread that outlives the run (normally the main thread): on Linux a
    worker is killed when the thread that started it exits (``PR_SET_PDEATHSIG``).
    """

    name = "local"

    def __init__(self, settings: Settings, jobs: int = 1):
        self.settings = settings
        self.jobs = max(1, jobs)
        self.ctx = mp.get_context("spawn")  # CUDA-safe, and no state inherited from the parent
        self.workers: list[_Worker] = []

    def _spawn(self, lane: str) -> _Worker:
        parent, child = self.ctx.Pipe()
        process = self.ctx.Process(target=worker_main, args=(child, self.settings, os.getpid()), daemon=True)
        process.start()
        child.close()
        return _Worker(lane, process, parent)

    def run(self, cells: Sequence[Cell]) -> Iterator[dict[str, Any]]:
        """Yield one row per cell as it finishes; the workers stop when the iteration ends."""
        queues: dict[str, deque[Cell]] = {}
        for cell in cells:
            queues.setdefault(cell.lane, deque()).append(cell)
        for lane, queue in queues.items():
            count = min(len(queue), self.jobs if lane == "cpu" else 1)
            self.workers += [self._spawn(lane) for _ in range(count)]
        try:
            while any(queues.values()) or any(w.cell for w in self.workers):
                for w in self.workers:
                    if w.cell is None and queues.get(w.lane):
                        w.cell, w.sent, w.started = queues[w.lane].popleft(), time.monotonic(), None
                        w.conn.send(w.cell)
                busy = [w for w in self.workers if w.cell]
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
                for i, w in enumerate(self.workers):
                    if w.cell is None:
                        continue
                    row = self._collect(w)
                    if row is None:
                        continue
                    if not w.process.is_alive():
                        w.conn.close()
                        self.workers[i] = self._spawn(w.lane)
                    else:
                        w.cell = None
                    yield row
        finally:
            self.close()

    def close(self) -> None:
        """Ask idle workers to stop, then end every worker; safe to call twice."""
        workers, self.workers = self.workers, []
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
                w.process.join(timeout=5)
            w.conn.close()

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
        from bench.machine import machine_info

        row = cell.identity()
        row.update(machine_info("cpu"))  # this machine; no GPU query here (it would open CUDA in the driver)
        row.update(status="error", error=reason, threads=self.settings.threads, finished_at=now(),
                   wall_s=clock - (w.started if w.started is not None else w.sent))
        return row
