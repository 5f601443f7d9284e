"""One writer per results store: an exclusive lock held for the whole of a run.

Two runs on the same ``--out`` would both run every cell and overwrite each other's rows; the
second one must refuse to start instead. The lock is ``fcntl.flock`` on ``results.sqlite.lock``
beside the store. The kernel drops it when its holder exits in any way (SIGKILL included), so a
lock file left behind by a dead run never blocks the next one: it is simply locked again and
overwritten. The file holds JSON (PID, host, start time, command) only to say who holds the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.cells import now
from bench.errors import StoreError
from bench.store import db_path


def lock_path(results_dir: str | Path) -> Path:
    """The lock file of the store in ``results_dir`` (``results.sqlite.lock`` beside it)."""
    db = db_path(results_dir)
    return db.with_name(db.name + ".lock")


def _holder(fd: int) -> str:
    """Who holds the lock, in words, from the JSON its holder wrote."""
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode())
        return (f"PID {info['pid']} on {info['host']}, started {info['started_at']}"
                + (f" ({info['command']})" if info.get("command") else ""))
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet written its details"


@contextmanager
def lock_store(results_dir: str | Path, command: str = "") -> Iterator[Path]:
    """Hold the exclusive lock on the store in ``results_dir`` for the ``with`` block.

    Raises :class:`StoreError` at once (no waiting) if another process holds it; the message
    names that process's PID and start time. Yields the lock file's path.
    """
    path = lock_path(results_dir)
    # an OSError here (a file in the way, read-only, disk full) names its path; the CLI prints it
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by worker processes
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{db_path(results_dir)} is in use by another run: {_holder(fd)}; "
                             f"wait for it to finish or use another --out") from None
        except OSError as exc:
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc
        info = {"pid": os.getpid(), "host": platform.node(), "command": command,
                "started_at": now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released: nobody holds it, so say nothing about anyone
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
