"""The results store: one SQLite file per results directory, the single source of truth.

``runs`` holds one manifest per invocation (versions, hardware, command line); ``measurements``
holds one row per cell, written and committed the moment the cell finishes, so a run killed with
SIGKILL loses at most the cells in flight. A cell is identified by ``cell_key``; re-running the
same command skips keys that are already stored.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.errors import StoreError
from bench.metrics.registry import columns as metric_columns
from bench.store_schema import DECODE_PART_COLUMNS, MEASUREMENT_COLUMNS, METRIC_CHECK_COLUMNS, RUNS_COLUMNS

DB_NAME = "results.sqlite"

def db_path(results_dir: str | Path) -> Path:
    path = Path(results_dir)
    return path if path.suffix == ".sqlite" else path / DB_NAME


def _clean(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _writable(path: Path) -> bool:
    """Whether ``path`` may be written: some write permission bit is set *and* this process may
    write it (``os.access`` also sees read-only mounts). The bits count even for root, so a store
    marked read-only (``chmod a-w``) is treated as read-only media by everyone."""
    try:
        return bool(path.stat().st_mode & 0o222) and os.access(path, os.W_OK)
    except OSError:
        return False


def _unwritable_reason(path: Path) -> str | None:
    """Why the store file ``path`` cannot be written, or None when it can (as far as we can tell)."""
    folder = path.parent
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    if not _writable(folder):
        return f"folder {folder} is not writable (SQLite creates its journal files beside the store)"
    if path.exists() and not _writable(path):
        return f"{path} is read-only"
    return None


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open the store file ``path`` for reading only.

    When the file or its folder cannot be written (read-only media, a copy marked read-only),
    the file is opened ``immutable``: SQLite then reads it as it is and needs no ``-wal``/``-shm``
    files beside it, which it could not create there (a WAL store otherwise fails with "unable to
    open database file"). If a non-empty ``-wal`` lies beside it, ``immutable`` would drop the rows
    it holds; the pair is then read from a temporary copy instead (:func:`_with_wal_copy`). Raises ``FileNotFoundError`` without a store and :class:`StoreError` when
    the file cannot be read as a store; both name the path.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no results store at {path}")
    immutable = not (_writable(path) and _writable(path.parent))
    wal = path.with_name(path.name + "-wal")
    if immutable and wal.is_file() and wal.stat().st_size > 0:
        return _with_wal_copy(path, wal)
    uri = f"file:{urllib.parse.quote(path.resolve().as_posix())}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opening is lazy: fail here, not later
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read the results store ({exc})") from None
    return conn


def _with_wal_copy(path: Path, wal: Path) -> sqlite3.Connection:
    """The read-only store ``path`` with the committed rows its ``-wal`` file still holds.

    ``immutable`` reads the main file only, so rows committed since the last checkpoint (all of
    them, for a first run that was killed) would silently be missing. The store and its WAL are
    copied to a temporary folder, opened there (SQLite replays the WAL) and copied into memory;
    the folder is removed before returning. A WAL that cannot be read is an error, never a store
    with fewer rows."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        copy = Path(tmp, DB_NAME)
        try:
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        except OSError as exc:
            raise StoreError(f"{path}: committed rows are still in {wal.name}, which cannot be read "
                             f"({exc.strerror}); refusing to read the store without them") from None
        try:
            with sqlite3.connect(copy) as disk:
                disk.execute("SELECT count(*) FROM sqlite_master").fetchone()
                memory = sqlite3.connect(":memory:")
                disk.backup(memory)
            disk.close()
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot read the results store with its {wal.name} ({exc})") from None
    return memory


def _read_table(results_dir: str | Path, query: str, params: tuple = ()):
    """One query on the store, read-only, as a DataFrame; errors name the store."""
    import pandas as pd

    path = db_path(results_dir)
    conn = connect_readonly(path)
    try:
        return pd.read_sql_query(query, conn, params=params or None)
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:
        raise StoreError(f"{path}: cannot read the results store ({exc.__cause__ or exc})") from None
    finally:
        conn.close()


def _refuse_foreign(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse (:class:`StoreError`) an SQLite file that holds tables but not ours: another
    application's database, which creating our tables (and switching it to WAL) would alter."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    if tables and "measurements" not in tables:
        conn.close()
        shown = ", ".join(tables[:5]) + (" …" if len(tables) > 5 else "")
        raise StoreError(f"{path} is not a lic-bench results store (an SQLite database with tables {shown}); "
                         "it is left untouched: choose another --out")


class Store:
    """A results database. Use as a context manager or call :meth:`close`."""

    def __init__(self, results_dir: str | Path):
        self.path = db_path(results_dir)
        where = f"{self.path}: cannot open the results store for writing"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{where}: cannot create folder {self.path.parent} ({exc.strerror})") from None
        reason = _unwritable_reason(self.path)  # a store marked read-only is never written, even by root
        if reason:
            raise StoreError(f"{where}: {reason}; reports and exports can still read it")
        try:
            self.conn = sqlite3.connect(self.path, timeout=60)
            _refuse_foreign(self.conn, self.path)  # before anything is written to it
            self.conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            self.conn.execute("PRAGMA synchronous=FULL")  # a committed cell survives power loss
            self._create()
        except sqlite3.Error as exc:
            if getattr(self, "conn", None) is not None:
                self.conn.close()
            raise StoreError(f"{where} ({exc})") from None

    def _create(self) -> None:
        for table, columns in (("runs", RUNS_COLUMNS), ("measurements", MEASUREMENT_COLUMNS),
                               ("decode_parts", DECODE_PART_COLUMNS), ("metric_checks", METRIC_CHECK_COLUMNS)):
            body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
            present = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():  # forward-compatible: add columns newer code knows
                if name not in present:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind.replace(' UNIQUE', '')}")
        self.conn.commit()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # --- runs --------------------------------------------------------------------------------
    def start_run(self, manifest: dict[str, Any]) -> int:
        row = {k: _clean(manifest.get(k)) for k in RUNS_COLUMNS if k not in ("run_id", "manifest")}
        row["manifest"] = _clean(manifest)
        cur = self.conn.execute(
            f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        self.conn.commit()
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, finished_at: str) -> None:
        self.conn.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", (finished_at, run_id))
        self.conn.commit()

    # --- measurements ------------------------------------------------------------------------
    def finished_keys(self, include_errors: bool = True) -> set[str]:
        query = "SELECT cell_key FROM measurements" + ("" if include_errors else " WHERE status = 'ok'")
        return {row[0] for row in self.conn.execute(query)}

    def delete_errors(self, keys: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM measurements WHERE cell_key = ? AND status = 'error'",
                              [(k,) for k in keys])
        self.conn.commit()

    def _insert(self, table: str, columns: dict[str, str], row: dict[str, Any], verb: str = "INSERT") -> None:
        """One row into ``table`` (uncommitted); a column the table does not declare is refused."""
        unknown = set(row) - set(columns)
        if unknown:
            raise KeyError(f"unknown {table} columns: {sorted(unknown)}")
        names = list(row)
        self.conn.execute(f"{verb} INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                          [_clean(row[n]) for n in names])

    def add_measurement(self, row: dict[str, Any]) -> None:
        """Insert one finished cell and commit at once."""
        self._insert("measurements", MEASUREMENT_COLUMNS, row, verb="INSERT OR REPLACE")
        self.conn.commit()

    def fill_metrics(self, cell_key: str, values: dict[str, Any], extras: dict[str, Any] | None) -> None:
        """Set metric columns (and the ``extras`` JSON) of the stored cell ``cell_key`` and commit at
        once (``bench score``): only registry metric columns, so timing, rate and identity never change."""
        unknown = set(values) - set(metric_columns())
        if unknown:
            raise KeyError(f"not metric columns: {sorted(unknown)}")
        names = [*values, "extras"]
        cur = self.conn.execute(f"UPDATE measurements SET {', '.join(f'{n} = ?' for n in names)} WHERE cell_key = ?",
                                [*(_clean(values[n]) for n in values), _clean(extras or None), cell_key])
        if cur.rowcount != 1:
            self.conn.rollback()
            raise StoreError(f"{self.path}: no stored cell {cell_key!r} to fill")
        self.conn.commit()

    def set_manifest(self, run_id: int, manifest: dict[str, Any]) -> None:
        """Replace run ``run_id``'s manifest JSON (``bench score`` appends what it added) and commit."""
        self.conn.execute("UPDATE runs SET manifest = ? WHERE run_id = ?", (_clean(manifest), run_id))
        self.conn.commit()

    def add_decode_parts(self, run_id: int, rows: Iterable[dict[str, Any]]) -> None:
        """Insert a decode benchmark's rows (:data:`DECODE_PART_COLUMNS`) and commit."""
        for row in rows:
            self._insert("decode_parts", DECODE_PART_COLUMNS, {**row, "run_id": run_id})
        self.conn.commit()

    def add_metric_checks(self, run_id: int, rows: Iterable[dict[str, Any]]) -> None:
        """Insert a metrics cross-check's rows (:data:`METRIC_CHECK_COLUMNS`) and commit."""
        for row in rows:
            self._insert("metric_checks", METRIC_CHECK_COLUMNS, {**row, "run_id": run_id})
        self.conn.commit()

    def rows(self, table: str = "measurements") -> Iterator[dict[str, Any]]:
        cur = self.conn.execute(f"SELECT * FROM {table} ORDER BY 1")
        names = [d[0] for d in cur.description]
        for values in cur:
            yield dict(zip(names, values))


def read_measurements(results_dir: str | Path, status: str | None = "ok"):
    """The ``measurements`` table as a pandas DataFrame (``status=None`` for every row).

    Read-only, also from read-only media (see :func:`connect_readonly`)."""
    query = "SELECT * FROM measurements" + (" WHERE status = ?" if status else "")
    return _read_table(results_dir, query, (status,) if status else ())


def read_runs(results_dir: str | Path):
    """The ``runs`` table as a pandas DataFrame (read-only, like :func:`read_measurements`)."""
    return _read_table(results_dir, "SELECT * FROM runs")


def _read_side_table(results_dir: str | Path, table: str, columns: dict[str, str]):
    """A table beside the measurements (``decode_parts``, ``metric_checks``) as a DataFrame, read-only;
    a store from before the table existed has none: empty, with the table's columns."""
    import pandas as pd

    conn = connect_readonly(db_path(results_dir))
    try:
        present = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    finally:
        conn.close()
    if not present:
        return pd.DataFrame(columns=list(columns))
    return _read_table(results_dir, f"SELECT * FROM {table} ORDER BY id")


def read_decode_parts(results_dir: str | Path):
    """The ``decode_parts`` table as a pandas DataFrame (read-only; a store from before the table
    existed has none: empty)."""
    return _read_side_table(results_dir, "decode_parts", DECODE_PART_COLUMNS)


def read_metric_checks(results_dir: str | Path):
    """The ``metric_checks`` table as a pandas DataFrame (read-only; empty for a store without it)."""
    return _read_side_table(results_dir, "metric_checks", METRIC_CHECK_COLUMNS)
