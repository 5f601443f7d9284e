import json
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from bench.errors import StoreError
from bench.store import Store, read_measurements, read_runs
from bench.store_schema import MEASUREMENT_COLUMNS
from tests.conftest import python_module


def row(key, status="ok", **extra):
    return {"cell_key": key, "status": status, "codec": "c", "rate_label": "q", "dataset": "d", "image": "i",
            "resolution": "native", **extra}


def test_rows_are_committed_at_once_and_visible_to_other_readers(tmp_path):
    store = Store(tmp_path)
    store.add_measurement(row("a", bpp=0.5, extras={"estimated_bits": 3.0}))
    # A second connection sees it without the first closing: committed per cell.
    with sqlite3.connect(tmp_path / "results.sqlite") as other:
        assert other.execute("SELECT bpp, extras FROM measurements").fetchall() == [(0.5, '{"estimated_bits": 3.0}')]
    store.close()


def test_finished_keys_and_retry(tmp_path):
    with Store(tmp_path) as store:
        store.add_measurement(row("a"))
        store.add_measurement(row("b", status="error", error="boom"))
        assert store.finished_keys() == {"a", "b"}
        assert store.finished_keys(include_errors=False) == {"a"}
        store.delete_errors(["a", "b"])
        assert store.finished_keys() == {"a"}


def test_unknown_column_is_rejected(tmp_path):
    with Store(tmp_path) as store, pytest.raises(KeyError, match="not_a_column"):
        store.add_measurement(row("a", not_a_column=1))


def test_nan_is_stored_as_null(tmp_path):
    with Store(tmp_path) as store:
        store.add_measurement(row("a", ms_ssim=float("nan")))
    assert read_measurements(tmp_path).ms_ssim.isna().all()


def test_old_database_gains_new_columns(tmp_path):
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.execute("CREATE TABLE measurements (id INTEGER PRIMARY KEY, cell_key TEXT UNIQUE NOT NULL, "
                     "status TEXT NOT NULL, codec TEXT NOT NULL, rate_label TEXT NOT NULL, dataset TEXT NOT NULL, "
                     "image TEXT NOT NULL, resolution TEXT NOT NULL)")
    with Store(tmp_path) as store:
        store.add_measurement(row("a", bpp=1.0))
        cols = {r[1] for r in store.conn.execute("PRAGMA table_info(measurements)")}
    assert set(MEASUREMENT_COLUMNS) <= cols


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results store"):
        read_measurements(tmp_path / "nothing")


# --- read-only copies (a store on read-only media) ------------------------------------------------


def read_only_copy(store_file: Path, folder: Path) -> Path:
    """Only ``results.sqlite`` (no -wal/-shm), in a folder, both marked read-only (``chmod a-w``).

    Run as root, the permission bits do not stop writes, but the store still treats the copy as
    read-only media (it reads the bits too), so the same path is tested either way."""
    folder.mkdir()
    shutil.copyfile(store_file, folder / "results.sqlite")
    (folder / "results.sqlite").chmod(0o444)
    folder.chmod(0o555)
    return folder


@pytest.fixture
def restore_permissions(tmp_path):
    yield
    for path in tmp_path.rglob("*"):  # let pytest clean up
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_read_only_copy_is_read_without_journal_files(tmp_path, restore_permissions):
    with Store(tmp_path / "src") as store:
        store.start_run({"command": "test"})
        store.add_measurement(row("a", bpp=0.5))
        store.add_measurement(row("b", status="error", error="boom"))
    ro = read_only_copy(tmp_path / "src" / "results.sqlite", tmp_path / "ro")
    assert list(read_measurements(ro).cell_key) == ["a"]
    assert len(read_measurements(ro, status=None)) == 2 and len(read_runs(ro)) == 1
    assert sorted(p.name for p in ro.iterdir()) == ["results.sqlite"]  # no -wal/-shm created (or tried)
    with pytest.raises(StoreError, match=f"{ro / 'results.sqlite'}: cannot open the results store for writing: "
                                         f"folder {ro} is not writable"):
        Store(ro)


def read_only_copy_with_wal(store: Store, folder: Path) -> Path:
    """A read-only copy of a store taken while its writer is still open (as of a run in progress, or
    killed): ``results.sqlite`` and its ``-wal``, which holds the rows committed since the last checkpoint."""
    folder.mkdir()
    for name in ("results.sqlite", "results.sqlite-wal"):
        shutil.copyfile(store.path.with_name(name), folder / name)
        (folder / name).chmod(0o444)
    folder.chmod(0o555)
    return folder


def test_read_only_copy_keeps_the_rows_still_in_its_wal(tmp_path, restore_permissions):
    with Store(tmp_path / "src") as store:
        store.start_run({"command": "test"})
        for i in range(24):
            store.add_measurement(row(f"a{i}"))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # 24 rows in the main file ...
        for i in range(24):
            store.add_measurement(row(f"b{i}"))  # ... and 24 only in the -wal
        ro = read_only_copy_with_wal(store, tmp_path / "ro")
    assert (ro / "results.sqlite-wal").stat().st_size > 0
    frame = read_measurements(ro)
    assert len(frame) == 48 and set(frame.cell_key) == {f"{p}{i}" for p in "ab" for i in range(24)}
    assert len(read_runs(ro)) == 1
    assert sorted(p.name for p in ro.iterdir()) == ["results.sqlite", "results.sqlite-wal"]  # nothing written there


def test_read_only_copy_of_a_killed_first_run_reads_its_wal(tmp_path, restore_permissions):
    """A first run killed before any checkpoint: its tables and rows exist only in the -wal."""
    with Store(tmp_path / "src") as store:
        store.add_measurement(row("a", bpp=0.25))
        ro = read_only_copy_with_wal(store, tmp_path / "ro")
    assert list(read_measurements(ro).bpp) == [0.25]


def test_unreadable_wal_is_refused_not_dropped(tmp_path, restore_permissions, monkeypatch):
    with Store(tmp_path / "src") as store:
        store.add_measurement(row("a"))
        ro = read_only_copy_with_wal(store, tmp_path / "ro")
    copy = shutil.copyfile

    def unreadable_wal(src, dst, **kw):  # chmod 000 does not stop root, so refuse the read here
        if str(src).endswith("-wal"):
            raise PermissionError(13, "Permission denied", str(src))
        return copy(src, dst, **kw)

    monkeypatch.setattr(shutil, "copyfile", unreadable_wal)
    with pytest.raises(StoreError, match="committed rows are still in results.sqlite-wal, which cannot be read"):
        read_measurements(ro)


def test_unreadable_store_names_the_path(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(StoreError, match=f"{tmp_path / 'results.sqlite'}: cannot read the results store"):
        read_measurements(tmp_path)


def test_report_and_export_of_a_read_only_copy(tmp_path, data_dir, restore_permissions):
    def cli(*args):
        return python_module(*args, data_dir=data_dir)

    done = cli("bench", "run", "--codecs", "jpeg-444", "--images", "2", "--ladder", "none", "--repeats", "1",
               "--warmup", "0", "--out", str(tmp_path / "src"), "--quiet")
    assert done.returncode == 0, done.stderr
    ro = read_only_copy(tmp_path / "src" / "results.sqlite", tmp_path / "ro")
    report = cli("bench.report", str(ro), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "jpeg-444" in (tmp_path / "report" / "report.md").read_text()
    export = cli("bench", "export", str(ro), "--csv", str(tmp_path / "all.csv"), "--compressai-json",
                 str(tmp_path / "json"))
    assert export.returncode == 0, export.stderr
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 1 + 12
    assert len(json.loads((tmp_path / "json" / "jpeg-444.json").read_text())["results"]["bpp"]) == 6
    assert sorted(p.name for p in ro.iterdir()) == ["results.sqlite"]
    again = cli("bench", "run", "--codecs", "jpeg-444", "--images", "1", "--ladder", "none", "--out", str(ro),
                "--quiet")
    assert again.returncode != 0 and f"folder {ro} is not writable" in again.stderr  # one line once the CLI catches it
