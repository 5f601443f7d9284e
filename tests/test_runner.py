"""The runner end to end, through the real CLI in subprocesses, on real codecs and the synthetic
photo-like images (``synthetic_images`` in conftest.py: no data set needed)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bench.store import read_measurements
from tests.conftest import python_module

PROJECT = Path(__file__).resolve().parents[1]


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


BLOCK_ONCE = """
[[rates]]
label = "held"
quality = 50
fault = "block-once"
release = "{release}"
"""


def test_sigkill_mid_run_loses_only_cells_in_flight(tmp_path, bench_cli, run_python, synthetic_images):
    # Besides the real codecs, a probe whose first cell holds its worker until the test creates
    # ``release``: the first run cannot end before it is killed, however the machine is loaded.
    release = tmp_path / "release"
    codecs = probe_codecs(tmp_path, "FaultyJpeg", "", BLOCK_ONCE.format(release=release))
    for name in ("jpeg-420", "webp", "jpeg2000"):
        (codecs / f"{name}.toml").write_text((PROJECT / "codecs" / f"{name}.toml").read_text())
    out = tmp_path / "res"
    db = out / "results.sqlite"
    args = ["--codecs-dir", str(codecs), "run", "--codecs", "jpeg-420,webp,jpeg2000,probe", "--dataset",
            str(synthetic_images), "--images", "4", "--ladder", "none", "--out", str(out), "--jobs", "2",
            "--repeats", "3", "--quiet"]
    proc = run_python("bench", *args, data_dir=synthetic_images.parent, wait=False)
    try:
        deadline = time.time() + 240
        while count_rows(db) < 10 or not Path(f"{release}.taken").exists():
            assert proc.poll() is None, "the run ended before it was killed"
            assert time.time() < deadline, "the run stored fewer than 10 cells"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    before = read_measurements(out, status=None)
    assert 10 <= len(before) < 3 * 4 * 6 + 4, "the run should have been killed midway"

    release.touch()  # the held cell, run again, goes through at once
    resumed = bench_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    after = read_measurements(out, status=None)
    assert len(after) == 3 * 4 * 6 + 4 and after.cell_key.is_unique
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
    # CompressAI's keys, plus every other metric of the default set under its registry name
    assert set(results) == {"psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time",
                            "psnr-y", "psnr-yuv", "ms-ssim-y"}
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


# --- store lock, timeouts and worker lifetime (issue 8) -------------------------------------------
# Tiny synthetic images and a JPEG test codec: these tests need no dataset.

def synthetic_images(folder: Path, count: int = 2) -> Path:
    """``count`` small deterministic PNGs (smooth gradients plus noise) in ``folder``."""
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(8)
    y, x = np.mgrid[0:96, 0:128]
    for i in range(count):
        base = np.stack([x * 2, y * 2, (x + y + 40 * i) % 256], axis=-1).astype(np.int16)
        noisy = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy, "RGB").save(folder / f"img{i}.png")
    return folder


def probe_codecs(tmp_path: Path, adapter: str, params: str, rates: str) -> Path:
    """A codecs folder with one configuration, ``probe``, of a test adapter."""
    codecs = tmp_path / "codecs"
    codecs.mkdir()
    (codecs / "probe.toml").write_text(f'adapter = "tests.support.faulty_codecs:{adapter}"\n'
                                       f'[params]\nsubsampling = "4:2:0"\n{params}\n{rates}')
    return codecs


def start_run(codecs: Path, images: Path, out: Path, *extra: str) -> subprocess.Popen:
    """A real ``bench run`` of codec ``probe`` in the background."""
    return python_module("bench", "--codecs-dir", str(codecs), "run", "--codecs", "probe", "--dataset", str(images),
                         "--ladder", "none", "--out", str(out), "--jobs", "1", "--repeats", "1", "--quiet", *extra,
                         wait=False, read_stderr=True)


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, f"the run ended early: {proc.stderr.read() if proc.stderr else ''}"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def workers_of(pid: int) -> list[int]:
    """PIDs of the multiprocessing workers of process ``pid``."""
    import psutil

    return [c.pid for c in psutil.Process(pid).children()
            if any("spawn_main" in part for part in c.cmdline())]


def alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


#: A cell that touches ``marker`` and then hangs (an hour: it never ends during a test, so the run is
#: always killed or refused while inside it, however slow the machine), then a quick one.
HANG_THEN_QUICK = """
[[rates]]
label = "slow"
quality = 50
fault = "hang"
marker = "{marker}"
[[rates]]
label = "quick"
quality = 80
"""


def test_store_is_locked_for_the_run_and_a_dead_holders_lock_is_taken_over(tmp_path):
    marker, out = tmp_path / "slow-cell-started", tmp_path / "res"
    codecs = probe_codecs(tmp_path, "FaultyJpeg", "", HANG_THEN_QUICK.format(marker=marker))
    images = synthetic_images(tmp_path / "images", count=1)
    first = start_run(codecs, images, out, "--timeout", "300")
    runs, workers = [first], []
    try:
        wait_for(marker, first)  # the first run holds the store and is inside its hanging cell
        workers = workers_of(first.pid)
        holder = json.loads((out / "results.sqlite.lock").read_text())
        assert holder["pid"] == first.pid and "bench" in holder["command"]

        # The first run cannot finish (its cell hangs): the second one ending at all shows that it
        # did not wait for the lock; the empty store below, that it did not redo the cells.
        runs.append(second := start_run(codecs, images, out, "--timeout", "300"))
        _, err = second.communicate(timeout=200)
        assert second.returncode == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert f"PID {first.pid}" in err and holder["started_at"] in err and "in use" in err, err
        assert count_rows(out / "results.sqlite") == 0  # the refused run measured nothing

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
        kill_leftovers(workers)
    # The lock file still names the dead run; the kernel released its flock, so a new run proceeds.
    assert json.loads((out / "results.sqlite.lock").read_text())["pid"] == first.pid
    third = start_run(codecs, images, out, "--timeout", "300", "--rates", "quick")
    _, err = third.communicate(timeout=200)
    assert third.returncode == 0, err
    frame = read_measurements(out, status=None)
    assert list(frame.rate_label) == ["quick"] and (frame.status == "ok").all()
    assert (out / "results.sqlite.lock").read_text() == ""  # released at the end of the run


def test_timeout_counts_the_cells_own_work_not_the_workers_start_up(tmp_path):
    # Constructing the codec takes 3 s in every fresh worker (as torch and weights do); the timeout
    # is 2 s; cells take milliseconds, except "slow", which hangs (an hour): only the timeout can end
    # it, however loaded the machine, so its row shows the kill, not a cell that finished late.
    rates = """
[[rates]]
label = "first"
quality = 50
[[rates]]
label = "slow"
quality = 50
fault = "hang"
[[rates]]
label = "after-respawn"
quality = 80
"""
    codecs = probe_codecs(tmp_path, "SlowStartJpeg", "startup_s = 3", rates)
    images = synthetic_images(tmp_path / "images", count=1)
    out = tmp_path / "res"
    run = start_run(codecs, images, out, "--timeout", "2")
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    frame = read_measurements(out, status=None).set_index("rate_label")
    assert frame.loc["first", "status"] == "ok", frame.loc["first", "error"]
    # The timed-out cell's worker was killed; the next cell ran in a fresh one, start-up again not counted.
    assert frame.loc["after-respawn", "status"] == "ok", frame.loc["after-respawn", "error"]
    assert frame.loc["slow", "status"] == "error"
    assert frame.loc["slow", "error"] == "timeout: cell took longer than 2 s"
    # measured on the runner's clock from the cell's "started": never less than the limit, whatever the load
    assert frame.loc["slow", "wall_s"] >= 2


def test_workers_die_with_a_killed_run(tmp_path):
    marker, out = tmp_path / "slow-cell-started", tmp_path / "res"
    codecs = probe_codecs(tmp_path, "FaultyJpeg", "", HANG_THEN_QUICK.format(marker=marker))
    images = synthetic_images(tmp_path / "images", count=1)
    run = start_run(codecs, images, out, "--timeout", "300")
    workers: list[int] = []
    try:
        wait_for(marker, run)  # the worker is inside a 60 s cell
        workers = workers_of(run.pid)
        assert len(workers) == 1
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        # The worker's cell hangs for an hour, so only its parent's death can end it: a generous wait
        # for that event (it is immediate with PR_SET_PDEATHSIG), not a timing to meet.
        deadline = time.time() + 120
        while alive(workers[0]) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(workers[0]), "the worker outlived the killed run"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        kill_leftovers(workers)


def test_a_worker_start_up_that_hangs_has_its_own_limit(tmp_path):
    # Through the Runner API, to set the start-up limit low: codec construction takes 60 s here.
    from bench.codecs import registry
    from bench.images import file_sha256
    from bench.runner import Cell, Runner, Settings
    from bench.store import Store

    rates = '[[rates]]\nlabel = "q50"\nquality = 50\n'
    # codec construction takes an hour: only the start-up limit can end it
    config = registry.load_configs(probe_codecs(tmp_path, "SlowStartJpeg", "startup_s = 3600", rates))["probe"]
    image = synthetic_images(tmp_path / "images", count=1) / "img0.png"
    cell = Cell(config, config.rates[0], "images", "img0", str(image), file_sha256(image), "native", "cpu")
    settings = Settings(timeout_s=300, startup_timeout_s=3)
    with Store(tmp_path / "res") as store:  # returns at all only because the limit ended the start-up
        result = Runner(store, settings).run([cell], run_id=1)
    (row,) = result.rows
    assert row["status"] == "error" and row["error"].startswith("timeout: worker start-up"), row["error"]
    assert row["error"].endswith("took longer than 3 s")
    assert read_measurements(tmp_path / "res", status=None).error.tolist() == [row["error"]]
