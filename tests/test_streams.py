"""Kept bitstreams (``run --keep-streams``, :mod:`bench.streams`): content-addressed files whose sha256 is
the row's and which decode to the row's metrics; a missing or corrupt file is an error, never used;
a store from before the ``stream_sha256`` column still opens and resumes."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from bench.errors import StreamError
from bench.store import Store, read_measurements
from bench.store_schema import MEASUREMENT_COLUMNS
from bench.streams import read_stream, stream_path, streams_dir, write_stream
from tests.conftest import python_module


def bench_run(images: Path, out: Path, *extra: str, timeout: float = 600):
    """A tiny real run: jpeg-420 at two rate points on the first two synthetic images, one thread."""
    return python_module("bench", "run", "--dataset", str(images), "--ladder", "none", "--out", str(out),
                         "--codecs", "jpeg-420", "--images", "2", "--rates", "quality=25,quality=75",
                         "--jobs", "1", "--threads", "1", "--repeats", "1", "--memory", "off", "--quiet", *extra,
                         data_dir=images.parent, timeout=timeout)


@pytest.fixture(scope="module")
def kept(tmp_path_factory, synthetic_images) -> Path:
    out = tmp_path_factory.mktemp("kept") / "R"
    done = bench_run(synthetic_images, out, "--keep-streams")
    assert done.returncode == 0, done.stderr
    return out


def test_write_is_content_addressed_deduplicated_and_repairs_a_damaged_file(tmp_path):
    sha = write_stream(tmp_path, b"abc")
    assert sha == hashlib.sha256(b"abc").hexdigest()
    path = stream_path(tmp_path, sha)
    assert path == tmp_path / sha[:2] / sha and path.read_bytes() == b"abc"
    assert write_stream(tmp_path, b"abc") == sha and len(list(tmp_path.rglob("*"))) == 2  # one folder, one file
    path.write_bytes(b"abd")  # damaged: the next write of the same stream replaces it
    write_stream(tmp_path, b"abc")
    assert read_stream(tmp_path, sha) == b"abc"
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_missing_or_corrupt_stream_is_an_error_naming_the_cell_and_file(tmp_path):
    sha = write_stream(tmp_path, b"stream")
    stream_path(tmp_path, sha).write_bytes(b"strean")
    with pytest.raises(StreamError, match=rf"cell-x: kept stream .*{sha} is corrupt: its sha256 is"):
        read_stream(tmp_path, sha, "cell-x")
    stream_path(tmp_path, sha).unlink()
    with pytest.raises(StreamError, match=rf"cell-x: kept stream .*{sha} is missing"):
        read_stream(tmp_path, sha, "cell-x")
    for bad in ("../../etc/passwd", sha.upper(), sha[:-1], None):  # a damaged row never names another path
        with pytest.raises(StreamError, match="is not a stream sha256"):
            read_stream(tmp_path, bad)


def test_kept_streams_match_their_rows_and_decode_to_the_stored_metrics(kept, synthetic_images):
    from bench.codecs import registry
    from bench.images import load_image
    from bench.metrics import compute

    rows = read_measurements(kept)
    assert len(rows) == 4 and rows["stream_sha256"].notna().all()
    folder = streams_dir(kept)
    assert folder == kept / "streams"
    codec = registry.create(registry.load_configs()["jpeg-420"], device="cpu")
    for row in rows.to_dict("records"):
        path = stream_path(folder, row["stream_sha256"])
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["stream_sha256"]
        assert len(data) == row["bytes"]
        original = load_image(synthetic_images / f"{row['image']}.png").pixels
        values, _ = compute(original, codec.decode(data), ("psnr-rgb", "ms-ssim"))
        assert values["psnr_rgb"] == pytest.approx(row["psnr_rgb"], rel=1e-9)
        assert values["ms_ssim"] == pytest.approx(row["ms_ssim"], rel=1e-6)
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(rows["stream_sha256"])


def test_a_run_without_keep_streams_keeps_none(tmp_path, synthetic_images):
    done = python_module("bench", "run", "--dataset", str(synthetic_images), "--ladder", "none", "--out",
                         str(tmp_path / "R"), "--codecs", "jpeg-420", "--images", "1", "--rates", "quality=25",
                         "--jobs", "1", "--threads", "1", "--repeats", "1", "--memory", "off", "--quiet",
                         data_dir=synthetic_images.parent, timeout=600)
    assert done.returncode == 0, done.stderr
    assert read_measurements(tmp_path / "R")["stream_sha256"].isna().all()
    assert not (tmp_path / "R" / "streams").exists()


def old_store(folder: Path) -> Path:
    """A store written before ``stream_sha256`` existed: the measurements table without that column."""
    folder.mkdir(parents=True)
    columns = {k: v for k, v in MEASUREMENT_COLUMNS.items() if k != "stream_sha256"}
    conn = sqlite3.connect(folder / "results.sqlite")
    conn.execute(f"CREATE TABLE measurements ({', '.join(f'{k} {v}' for k, v in columns.items())})")
    conn.execute("CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, command TEXT, manifest TEXT)")
    conn.execute("INSERT INTO runs (command, manifest) VALUES ('old', '{}')")
    conn.execute("INSERT INTO measurements (cell_key, run_id, status, codec, rate_label, dataset, image, resolution, "
                 "width, height, bytes, bpp, psnr_rgb) VALUES ('old|q|a', 1, 'ok', 'jpeg-420', 'quality=25', "
                 "'synthetic', 'photo1', 'native', 384, 256, 100, 0.5, 30.0)")
    conn.commit()
    conn.close()
    return folder


def test_an_old_store_without_the_column_still_opens_and_resumes(tmp_path):
    store = old_store(tmp_path / "old")
    frame = read_measurements(store)  # read-only, before any migration
    assert len(frame) == 1 and "stream_sha256" not in frame
    with Store(store) as s:  # a run opening it adds the column in place, NULL for the old rows
        assert "old|q|a" in s.finished_keys()
    frame = read_measurements(store)
    assert frame["stream_sha256"].isna().all() and frame["psnr_rgb"].tolist() == [30.0]
