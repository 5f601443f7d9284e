"""The ``dask`` executor: cells run on a Dask distributed cluster, rows come back as cells finish.

Where the workers come from is :mod:`bench.executors.dask_clusters` (``--scheduler``, ``--cluster
local[:N]``, ``--cluster slurm|pbs|sge|lsf[:N]``). What runs on a worker is
:func:`bench.executors.dask_worker.run_on_worker`: it keeps one :class:`~bench.worker.WorkerState` per worker process (codec
LRU, image cache), runs one cell at a time (a lock, even on a worker started with several
threads), pins the thread count, and measures the cell with the same
:func:`bench.worker.run_cell` as the local executor — the same code computes the same bytes and
metrics.

Failures, each cell answered exactly once:

- a worker that dies mid-cell (killed, out of memory): the scheduler never retries it
  (``allowed-failures = 0``), the cell becomes an error row saying so, the run goes on; a cell
  that was only queued on that worker is submitted again;
- a cell past ``Settings.timeout_s`` (counted, as in the local executor, from the moment the
  worker reports the image loaded and the codec constructed; start-up has its own limit,
  ``Settings.startup_timeout_s``): a watchdog thread in the worker reports "timeout" and ends
  its own process, whose nanny starts a fresh one — a timeout error row. Should the watchdog not
  get to run, the client cancels the cell and restarts the worker :data:`GRACE_S` later;
- the scheduler lost (Dask cancels every future of a client that lost its scheduler):
  :class:`~bench.errors.ExecutorError`; the rows already yielded are the driver's to keep.

Workers report "begun", "started" and "timeout" per cell on the event topic :data:`TOPIC`; that
is how the client knows which worker runs which cell, since when, and why it died.

Images travel when the workers may not see the client's files (by default on any cluster but a
local one; ``ship_images`` overrides): each image file is scattered once, kept in the cluster's
memory until its last cell finishes, and handed to its cells, which carry it as
``Cell.image_bytes``; otherwise a worker reads ``image_path``. Shipping by default wherever the
client cannot know what the workers see makes a run work on any cluster, at the cost of one
transfer per image (small next to the cells' own work); ``ship_images=False`` saves it on a
shared file system. Either way the worker checks the file's sha256 against the plan's.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import CancelledError
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cells import Cell, Settings, now
from bench.errors import ExecutorError, UsageError
from bench.executors.dask_clusters import connect, parse_cluster
from bench.executors.dask_worker import TOPIC, run_on_worker, timeout_reason
from bench.worker import drop_image_copies

log = logging.getLogger(__name__)

#: seconds past a cell's limit before the client restarts a worker whose watchdog did not end it
GRACE_S = 30.0

# --- in the client ---------------------------------------------------------------------------------

@dataclass
class _Attempt:
    """What the workers said about one submission of a cell (monotonic times in the client)."""

    worker: str | None = None
    host: str = "?"
    pid: int | None = None
    begun: float | None = None
    started: float | None = None
    timeout: str | None = None  # the worker's own timeout report, just before it ended itself


def gpu_count() -> int:
    """CUDA devices on this machine (0 without torch or CUDA); a local cluster gets one GPU worker each."""
    from bench.device import cuda_available

    if not cuda_available():
        return 0
    import torch

    return torch.cuda.device_count()


#: the loggers of a Dask client (``log_errors`` logs through either)
DASK_CLIENT_LOGGERS = ("distributed.client", "distributed.utils")


@contextmanager
def _muted(names: Sequence[str]) -> Iterator[None]:
    """Only critical lines from the loggers ``names`` while in the block."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class DaskExecutor:
    """Runs cells on a Dask cluster (see the module docstring); ``close`` releases it."""

    name = "dask"

    def __init__(self, settings: Settings, jobs: int, scheduler: str | None = None, cluster: str | None = None,
                 ship_images: bool | None = None):
        self.settings = settings
        self.jobs = max(1, jobs)
        self.scheduler = scheduler
        self.cluster_text = cluster
        if scheduler and cluster:
            raise UsageError("give --scheduler (an existing cluster) or --cluster (one to start), not both")
        if cluster:
            parse_cluster(cluster, jobs)  # a bad spec is refused before anything starts
        self.ship_images = ship_images  # None: when the workers may not see our files
        self.client: Any = None
        self.cluster: Any = None
        self._attempts: dict[str, _Attempt] = {}
        self._lock = threading.Lock()

    # -- engine ---------------------------------------------------------------------------------

    def _start(self, gpu_cells: bool) -> None:
        if self.client is not None:
            return
        local_gpus = gpu_count() if gpu_cells and not self.scheduler else 0
        self.client, self.cluster, shares_files = connect(self.scheduler, self.cluster_text, self.jobs,
                                                          self.settings.environment(), local_gpus)
        if self.ship_images is None:
            self.ship_images = not shares_files
        self.client.subscribe_topic(TOPIC, self._on_event)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """Runs on the client's event loop: note which worker took a cell and when."""
        _, msg = event
        clock = time.monotonic()
        with self._lock:
            if msg["event"] == "begun":
                self._attempts[msg["cell"]] = _Attempt(msg["worker"], msg["host"], msg["pid"], begun=clock)
            elif msg["cell"] in self._attempts and msg["event"] == "started":
                self._attempts[msg["cell"]].started = clock
            elif msg["cell"] in self._attempts and msg["event"] == "timeout":
                self._attempts[msg["cell"]].timeout = msg["reason"]

    def close(self) -> None:
        """Close the client and any cluster we started (safe to call twice). A client that lost its
        scheduler is closed without Dask's log of its cancelled reconnection (a 20-line
        ``CancelledError`` traceback): the run's :class:`ExecutorError` already says it in one line."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        lost = client is not None and client.status != "running"
        for thing in (client, cluster):
            if thing is not None:
                try:
                    with _muted(DASK_CLIENT_LOGGERS if lost else ()):
                        thing.close()
                except Exception as exc:  # noqa: BLE001 — closing a lost engine must not hide the run's result
                    log.warning("closing %s: %s", type(thing).__name__, exc)

    # -- running ----------------------------------------------------------------------------------

    def run(self, cells: Sequence[Cell]) -> Iterator[dict[str, Any]]:
        """Submit every cell; yield each one's row as it finishes (see the module docstring)."""
        if not cells:
            return
        self._start(any(c.lane != "cpu" for c in cells))
        images = _ImageShipper(self.client, cells) if self.ship_images else None
        pending: dict[Any, Cell] = {}
        tries: Counter[str] = Counter()

        def submit(cell: Cell) -> None:
            tries[cell.key] += 1
            key = f"bench-cell-{hashlib.sha256(cell.key.encode()).hexdigest()[:16]}-{tries[cell.key]}"
            with self._lock:
                self._attempts.pop(cell.key, None)
            future = self.client.submit(run_on_worker, cell, self.settings,
                                        images.future(cell) if images else None, key=key, pure=False,
                                        retries=0, resources={"GPU": 1} if cell.lane != "cpu" else None)
            pending[future] = cell

        for cell in cells:
            submit(cell)
        try:
            while pending:
                for future in self._finished(list(pending)):
                    cell = pending.pop(future)
                    row = self._row(future, cell)
                    if row is None:  # queued on a worker that died running another cell: again
                        submit(cell)
                        continue
                    if images:
                        images.done(cell)
                    yield row
                for future, row in self._overdue(pending):
                    cell = pending.pop(future)
                    if images:
                        images.done(cell)
                    yield row
        finally:
            if pending and self.client is not None and self.client.status == "running":
                self.client.cancel(list(pending))
            if images:
                images.clean()

    def _finished(self, futures: list[Any]) -> list[Any]:
        """Futures done within a second (none is fine); the scheduler lost → :class:`ExecutorError`."""
        from distributed import wait

        if self.client.status not in ("running", "connecting"):
            raise self._lost(f"the client is {self.client.status}")
        try:
            done, _ = wait(futures, timeout=1.0, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        except CancelledError as exc:  # we cancel only futures we stopped waiting for: the scheduler is gone
            raise self._lost(f"the client lost its connection; Dask cancelled every cell: {type(exc).__name__}") from None
        return list(done)

    def _lost(self, why: str) -> ExecutorError:
        where = self.scheduler or getattr(self.cluster, "scheduler_address", "the cluster's scheduler")
        return ExecutorError(f"lost the Dask scheduler at {where} ({why})")

    def _row(self, future: Any, cell: Cell) -> dict[str, Any] | None:
        """The finished future's row; None when the cell must be submitted again."""
        from distributed import KilledWorker

        if future.status == "finished":
            return future.result()
        if future.status == "cancelled":  # we cancel only overdue cells, and those left pending
            raise self._lost("Dask cancelled the cell's task")
        exc = future.exception()
        with self._lock:
            attempt = self._attempts.get(cell.key)
        if isinstance(exc, KilledWorker):
            dead = exc.last_worker.address
            if attempt is None or attempt.worker != dead:
                log.info("%s: was queued on worker %s, which died running another cell; submitted again",
                         cell.key, dead)
                return None
            if attempt.timeout:
                return self._error_row(cell, attempt, attempt.timeout)
            return self._error_row(cell, attempt,
                                   f"worker process died: the Dask worker {dead} (host {attempt.host}, pid "
                                   f"{attempt.pid}) was lost while running the cell — killed (the kernel's "
                                   "out-of-memory killer sends SIGKILL) or crashed; its log says which")
        if isinstance(exc, ImportError):
            raise ExecutorError(f"a Dask worker cannot import what a cell needs ({type(exc).__name__}: {exc}); "
                                "install the same lic-bench (and its dependencies) on every worker") from None
        return self._error_row(cell, attempt, f"dask: {type(exc).__name__}: {exc}")

    def _overdue(self, pending: dict[Any, Cell]) -> list[tuple[Any, dict[str, Any]]]:
        """Cells whose worker overran the limit by :data:`GRACE_S` without ending itself (its
        watchdog could not run): cancelled, the worker restarted, a timeout row each."""
        clock = time.monotonic()
        late = []
        with self._lock:
            for future, cell in pending.items():
                attempt = self._attempts.get(cell.key)
                if future.done() or attempt is None or attempt.begun is None:
                    continue
                since, limit = ((attempt.started, self.settings.timeout_s) if attempt.started is not None
                                else (attempt.begun, self.settings.startup_timeout_s))
                if clock - since > limit + GRACE_S:
                    late.append((future, cell, attempt, timeout_reason(self.settings, attempt.started is not None)))
        rows = []
        for future, cell, attempt, reason in late:
            self.client.cancel([future])
            try:
                self.client.restart_workers([attempt.worker], timeout=60, raise_for_error=False)
            except Exception as exc:  # noqa: BLE001 — a worker that cannot restart is the cluster's to replace
                log.warning("restarting Dask worker %s after %s: %s", attempt.worker, cell.key, exc)
            rows.append((future, self._error_row(cell, attempt, reason, clock)))
        return rows

    def _error_row(self, cell: Cell, attempt: _Attempt | None, reason: str, clock: float | None = None) -> dict[str, Any]:
        """An error row built in the client, as the local executor builds one for a lost worker."""
        clock = time.monotonic() if clock is None else clock
        since = None if attempt is None else attempt.started if attempt.started is not None else attempt.begun
        row = cell.identity()
        row.update(status="error", error=reason, threads=self.settings.threads, finished_at=now(),
                   wall_s=None if since is None else clock - since, host=None if attempt is None else attempt.host)
        return row


class _ImageShipper:
    """Scatters each image file once (to the cluster's memory) and releases it after its last cell."""

    def __init__(self, client: Any, cells: Sequence[Cell]):
        self.client = client
        self.remaining: Counter[str] = Counter(c.image_path for c in cells)
        self.futures: dict[str, Any] = {}

    def future(self, cell: Cell) -> Any:
        if cell.image_path not in self.futures:
            try:
                data = Path(cell.image_path).read_bytes()
            except OSError as exc:  # the worker then tries the path itself and its row says what failed
                log.warning("%s: cannot be read here to send to the workers: %s", cell.image_path, exc)
                self.futures[cell.image_path] = None
            else:
                self.futures[cell.image_path] = self.client.scatter(data, hash=False)
        return self.futures[cell.image_path]

    def clean(self) -> None:
        """Remove the workers' copies of the images (a worker writes each image it gets to a file)."""
        if self.client.status != "running":
            return
        try:
            self.client.run(drop_image_copies, on_error="ignore")
        except Exception as exc:  # noqa: BLE001 — a worker that cannot answer leaves a folder, not a failed run
            log.warning("removing the workers' copies of the images: %s", exc)

    def done(self, cell: Cell) -> None:
        self.remaining[cell.image_path] -= 1
        if self.remaining[cell.image_path] <= 0:
            self.futures.pop(cell.image_path, None)
