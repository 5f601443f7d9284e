import sqlite3

import pytest

from bench.store import MEASUREMENT_COLUMNS, Store, read_measurements


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
