"""The runner end to end, through the real CLI in subprocesses, on real codecs and the synthetic
photo-like images (``synthetic_images`` in conftest.py: no data set needed)."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from bench.store import read_measurements


@pytest.fixture
def bench_cli(run_python, synthetic_images):
    """``python -m bench ARGS`` with ``$BENCH_DATA_DIR`` holding no data set: every test names its images."""
    def run(*args: str, timeout: float = 300):
        return run_python("bench", *args, data_dir=synthetic_images.parent, timeout=timeout)
    return run


def count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_small_run_measures_everything_and_resumes(tmp_path, bench_cli, synthetic_images):
    out = tmp_path / "res"
    data = ["--dataset", str(synthetic_images), "--ladder-set", str(synthetic_images)]
    args = ["run", "--codecs", "jpeg-420,webp", "--images", "2", *data, "--rates", "quality=75", "--ladder", "256x256",
            "--out", str(out), "--quiet"]
    # webp's ladder has no quality=75: the error must name the known labels.
    failed = bench_cli(*args)
    assert failed.returncode != 0 and "no rate point 'quality=75'" in failed.stderr

    args = ["run", "--codecs", "jpeg-420,jpeg-444", "--images", "2", *data, "--ladder", "256x256",
            "--ladder-per-size", "1", "--out", str(out), "--jobs", "2", "--repeats", "2", "--quiet"]
    first = bench_cli(*args)
    assert first.returncode == 0, first.stderr
    frame = read_measurements(out)
    # 2 codecs × (2 images × 6 rates + 1 ladder crop × 1 middle rate)
    assert len(frame) == 2 * (2 * 6 + 1)
    native = frame[frame.resolution == "native"]
    assert set(native.image) == {"photo1", "photo2"} and (native.dataset == "synthetic").all()
    assert (native.width == 384).all() and (native.height == 256).all()
    ladder = frame[frame.resolution == "256x256"]
    assert len(ladder) == 2 and (ladder.pixels == 65536).all()
    for col in ("bytes", "bpp", "psnr_rgb", "psnr_y", "ms_ssim", "ms_ssim_db", "enc_time_s", "dec_time_s", "enc_cpu_s", "dec_cpu_s",
                "enc_peak_rss_bytes", "dec_peak_rss_bytes", "base_rss_bytes"):
        assert (frame[col] > 0).all(), col
    assert (frame.bpp == 8 * frame.bytes / frame.pixels.where(frame.pixels.notna(), 384 * 256)).all()
    assert (frame.enc_time_min_s <= frame.enc_time_s).all() and (frame.enc_time_s <= frame.enc_time_max_s).all()
    assert frame.enc_gpu_peak_bytes.isna().all() and frame.dec_nvml_bytes.isna().all()  # NULL on CPU, not 0
    assert (frame.repeats == 2).all() and (frame.encode_deterministic == 1).all()
    assert (frame.timer == "perf_counter").all()

    runs = sqlite3.connect(out / "results.sqlite").execute("SELECT manifest FROM runs").fetchall()
    manifest = json.loads(runs[0][0])
    assert manifest["packages"]["pillow"] and manifest["codecs"]["jpeg-420"]["params"]["subsampling"] == "4:2:0"
    assert manifest["cpu"] and manifest["protocol"]["repeats"] == 2

    again = bench_cli(*args)
    assert again.returncode == 0
    assert "26 already in" in again.stderr and "0 to run" in again.stderr
    assert count_rows(out / "results.sqlite") == 26


def test_sigkill_mid_run_loses_only_cells_in_flight(tmp_path, bench_cli, run_python, synthetic_images):
    out = tmp_path / "res"
    db = out / "results.sqlite"
    args = ["run", "--codecs", "jpeg-420,webp,jpeg2000", "--dataset", str(synthetic_images), "--images", "4",
            "--ladder", "none", "--out", str(out), "--jobs", "2", "--repeats", "3", "--quiet"]
    proc = run_python("bench", *args, data_dir=synthetic_images.parent, wait=False)
    deadline = time.time() + 120
    while count_rows(db) < 10 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_measurements(out, status=None)
    assert 10 <= len(before) < 72, "the run should have been killed midway"

    resumed = bench_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    after = read_measurements(out, status=None)
    assert len(after) == 3 * 4 * 6 and after.cell_key.is_unique
    assert (after.status == "ok").all()
    # Cells finished before the kill were kept, not recomputed.
    kept = after.set_index("cell_key").loc[before.cell_key]
    assert (kept.finished_at.values == before.finished_at.values).all()
    assert (kept.run_id.values == before.run_id.values).all()


def test_failing_cells_are_stored_and_the_run_goes_on(tmp_path, bench_cli, synthetic_images):
    codecs = tmp_path / "codecs"
    codecs.mkdir()
    (codecs / "faulty.toml").write_text("""
adapter = "tests.support.faulty_codecs:FaultyJpeg"
[params]
subsampling = "4:2:0"
[[rates]]
label = "ok"
quality = 50
[[rates]]
label = "raises"
quality = 50
fault = "raise"
[[rates]]
label = "killed"
quality = 50
fault = "kill"
[[rates]]
label = "hangs"
quality = 50
fault = "hang"
[[rates]]
label = "ok-after"
quality = 80
""")
    images = tmp_path / "images"
    images.mkdir()
    png = (synthetic_images / "photo1.png").read_bytes()
    (images / "a_good.png").write_bytes(png)
    (images / "b_broken.png").write_bytes(png[:5000])
    out = tmp_path / "res"
    result = bench_cli("--codecs-dir", str(codecs), "run", "--codecs", "faulty", "--dataset", str(images),
                       "--ladder", "none", "--out", str(out), "--jobs", "2", "--timeout", "8", "--repeats", "1",
                       "--quiet")
    assert result.returncode == 0, result.stderr
    frame = read_measurements(out, status=None).set_index(["image", "rate_label"])
    assert frame.loc[("a_good", "ok"), "status"] == "ok"
    assert frame.loc[("a_good", "ok-after"), "status"] == "ok"
    assert "injected encoder failure" in frame.loc[("a_good", "raises"), "error"]
    assert "SIGKILL" in frame.loc[("a_good", "killed"), "error"]
    assert "timeout" in frame.loc[("a_good", "hangs"), "error"]
    broken = frame.xs("b_broken", level="image")
    assert (broken.status == "error").all() and broken.error.str.contains("bad image").all()


def test_export_csv_and_compressai_json(tmp_path, bench_cli, synthetic_images):
    out = tmp_path / "res"
    run = bench_cli("run", "--codecs", "jpeg-444", "--dataset", str(synthetic_images), "--images", "2", "--ladder", "none",
                    "--out", str(out), "--repeats", "1", "--quiet")
    assert run.returncode == 0, run.stderr
    exported = bench_cli("export", str(out), "--csv", str(tmp_path / "all.csv"), "--compressai-json",
                         str(tmp_path / "json"))
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 1 + 12
    doc = json.loads((tmp_path / "json" / "jpeg-444.json").read_text())
    assert doc["name"] == "jpeg-444"
    results = doc["results"]
    assert set(results) == {"psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time"}
    assert len(results["bpp"]) == 6 and results["bpp"] == sorted(results["bpp"])
    frame = read_measurements(out)
    q75 = frame[frame.rate_label == "quality=75"]
    assert results["psnr-rgb"][4] == pytest.approx(q75.psnr_rgb.mean())


def test_cross_decode_in_a_separate_process(tmp_path, bench_cli, synthetic_images):
    out = tmp_path / "res"
    run = bench_cli("run", "--codecs", "webp", "--dataset", str(synthetic_images), "--images", "1", "--rates", "quality=30,quality=80", "--ladder", "none",
                    "--out", str(out), "--repeats", "1", "--threads", "1", "--cross-decode", "--quiet")
    assert run.returncode == 0, run.stderr
    frame = read_measurements(out)
    assert len(frame) == 2
    assert (frame.cross_decode == "identical (2 threads on cpu)").all(), frame.cross_decode.tolist()
