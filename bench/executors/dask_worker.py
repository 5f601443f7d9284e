"""What runs on a Dask worker for the ``dask`` executor (:mod:`bench.executors.dask`): one cell at a time.

:func:`run_on_worker` keeps one :class:`~bench.worker.WorkerState` per worker process (codec LRU,
image cache), runs one cell at a time (a lock, even on a worker started with several threads), pins
the thread count, quietens the worker (its sampling callbacks off, glibc's allocator thresholds
fixed) before the first cell, and measures the cell with the same :func:`bench.worker.run_cell` as
the local executor. It reports "begun", "started" and "timeout" on the event topic :data:`TOPIC`; a
watchdog thread ends the worker process when a cell overruns its limit, and the nanny starts a
fresh one.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from bench.cells import Cell, Settings
from bench.worker import WorkerState, drop_image_copies, prepare_worker, run_cell

TOPIC = "lic-bench-cell"

_LOCK = threading.Lock()
_STATE: WorkerState | None = None
#: a worker's periodic callbacks that sample or poll the process (statistical profiler every
#: 10 ms, event-loop health ticks every 20 ms, system monitor): they take the GIL and the CPU
#: from the cell being timed, so they stop before a worker's first cell. Heartbeats stay.
NOISY_CALLBACKS = ("profile", "profile-cycle", "tick", "ticks", "monitor")
#: glibc ``mallopt`` parameters and the values that stand in for its adaptive defaults
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
ADAPTIVE_LIMITS = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20}


def _settle(worker: Any) -> None:
    """Make a Dask worker process time cells as a local worker would: stop
    :data:`NOISY_CALLBACKS` (on its event loop: thread-safe) and, where its nanny set
    ``MALLOC_TRIM_THRESHOLD_`` (Dask's default, which disables glibc's adaptive mmap threshold:
    every large array a fresh mmap, paid in page faults), raise the limits to the adaptive maxima."""
    def stop() -> None:
        for name in NOISY_CALLBACKS:
            callback = worker.periodic_callbacks.get(name)
            if callback is not None:
                callback.stop()

    worker.loop.add_callback(stop)
    if "MALLOC_TRIM_THRESHOLD_" in os.environ and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            return
        for param, value in ADAPTIVE_LIMITS.items():
            libc.mallopt(param, value)


def _exit_once_closed(worker: Any) -> None:
    """``atexit`` of a worker process: once its Dask worker has closed (its results sent, its
    scratch folder released), remove its image copies and end the process at once. The
    interpreter's own teardown of torch and the codec libraries takes seconds on a busy machine,
    longer than the nanny waits (4 s) before it kills the process and logs "Worker process still
    alive after 4.0 seconds, killing" at every cluster close."""
    if getattr(worker.status, "name", "") != "closed":
        return  # ended some other way: the ordinary exit, exit status kept
    drop_image_copies()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(0)


def timeout_reason(settings: Settings, started: bool) -> str:
    """The error text of a cell past its limit (the same words as the local executor's)."""
    if started:
        return f"timeout: cell took longer than {settings.timeout_s:g} s"
    return ("timeout: worker start-up (imports, image, codec construction) took longer than "
            f"{settings.startup_timeout_s:g} s")


def run_on_worker(cell: Cell, settings: Settings, image_bytes: bytes | None = None) -> dict[str, Any]:
    """The Dask task of one cell: its row (never raises for the cell's own failure).

    A watchdog thread ends this worker process (SIGKILL to itself, after reporting "timeout") when
    the cell overruns its limit; the worker's nanny starts a fresh one, as after any crash."""
    global _STATE
    from distributed import get_worker

    worker = get_worker()

    def report(event: str, **extra: Any) -> None:
        worker.log_event(TOPIC, {"cell": cell.key, "event": event, "worker": worker.address,
                                 "host": platform.node(), "pid": os.getpid(), **extra})

    with _LOCK:  # one cell at a time per worker process, whatever its thread count
        report("begun")
        limit = {"at": time.monotonic() + settings.startup_timeout_s, "started": False}
        finished = threading.Event()

        def started() -> None:
            report("started")
            limit.update(at=time.monotonic() + settings.timeout_s, started=True)

        def watch() -> None:
            while not finished.wait(0.2):
                if time.monotonic() > limit["at"]:
                    report("timeout", reason=timeout_reason(settings, bool(limit["started"])))
                    if not finished.wait(1.0):  # time for the report to leave; a cell done meanwhile is kept
                        os.kill(os.getpid(), signal.SIGKILL)
                    return

        threading.Thread(target=watch, name="cell-watchdog", daemon=True).start()
        try:
            if _STATE is None or _STATE.settings != settings:
                if _STATE is not None:
                    _STATE.close()
                else:
                    atexit.register(_exit_once_closed, worker)
                prepare_worker(settings)
                _settle(worker)
                _STATE = WorkerState(settings)
            if image_bytes is not None:
                cell = replace(cell, image_bytes=image_bytes)
            return run_cell(cell, _STATE, started=started)
        finally:
            finished.set()
