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
from bench.folders import missing_folders, remove_empty
from bench.store import db_path


def lock_path(results_dir: str | Path) -> Path:
    """The lock file of the store in ``results_dir`` (``results.sqlite.lock`` beside it)."""
    db = db_path(results_dir)
    return db.with_name(db.name + ".lock")


def _holder_of(path: Path) -> str:
    """Who holds the lock, in words, from the JSON its holder wrote into ``path``."""
    try:
        with open(path, "rb") as fh:
            info = json.loads(fh.read(65536).decode())
        return (f"PID {info['pid']} on {info['host']}, started {info['started_at']}"
                + (f" ({info['command']})" if info.get("command") else ""))
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet written its details"


def _open_locked(path: Path) -> tuple[int, bool]:
    """Open ``path`` (created if absent) and take its flock without waiting: (descriptor, created).

    A run that is refused removes the lock file it created (below); a process that opened the
    file just before may then hold a lock on a file that is no longer the lock file. So after
    locking, the descriptor must still be ``path``'s file; if it is not, open and lock again."""
    while True:
        try:
            fd, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            try:
                fd, created = os.open(path, os.O_RDWR), False  # not inherited by worker processes
            except FileNotFoundError:
                continue  # removed meanwhile by a refused run: create it afresh
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            same = os.path.exists(path) and os.path.samestat(os.fstat(fd), os.stat(path))
        except BlockingIOError:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc
        if same:
            return fd, created
        os.close(fd)


@contextmanager
def lock_store(results_dir: str | Path, command: str = "") -> Iterator[Path]:
    """Hold the exclusive lock on the store in ``results_dir`` for the ``with`` block.

    Raises :class:`StoreError` at once (no waiting) if another process holds it; the message
    names that process's PID and start time. Yields the lock file's path. When the block fails
    (e.g. a run refused before its first cell), a lock file made here is removed again, with the
    folders made for it when nothing else was put in them: a refused run leaves nothing behind.
    """
    path = lock_path(results_dir)
    made = missing_folders(path.parent)
    # an OSError here (a file in the way, read-only, disk full) names its path; the CLI prints it
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, created = _open_locked(path)
    except BlockingIOError:
        raise StoreError(f"{db_path(results_dir)} is in use by another run: {_holder_of(path)}; "
                         f"wait for it to finish or use another --out") from None
    try:
        info = {"pid": os.getpid(), "host": platform.node(), "command": command,
                "started_at": now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield path
        except BaseException:
            if created:  # still locked, so nobody else uses the file; a store left by the block stays
                _remove(path, made)
            raise
        finally:
            os.ftruncate(fd, 0)  # released: nobody holds it, so say nothing about anyone
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _remove(lock: Path, folders: list[Path]) -> None:
    """Remove the lock file and the (now empty) folders that were made for it; best effort."""
    try:
        lock.unlink()
    except OSError:
        return
    remove_empty(folders)
