"""The session (the one write path) and the settings it owns: thread pins, time limits, manifest.

Regression tests for issue 18 parts 1–2: the CLI, the gate and the VTM anchor tool run through
:mod:`bench.session`; every process of a cell gets its thread count and time limit from the run's
``Settings``; every row says what thread counts its timed calls ran with; the manifest records the
machine class as data; stores written before the new columns still open and resume.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import procenv
from bench.cells import Settings
from bench.codecs.base import CodecConfig, RatePoint, ThreadUse
from bench.codecs.registry import create, load_configs
from bench.machine import MachineClass
from bench.plan import CropPlanSpec, plan
from bench.session import Session, SessionSpec, manifest, settings_of
from bench.store import read_measurements, read_runs
from bench.store_schema import MEASUREMENT_COLUMNS

PROJECT = Path(__file__).resolve().parents[1]
NEW_COLUMNS = ("enc_threads", "dec_threads", "threads_pinned_by")


@pytest.fixture
def clean_env():
    """No pin or time limit at the start; this process's own restored afterwards (procenv.pin
    changes os.environ and torch's count)."""
    names = (*procenv.THREAD_VARS, procenv.TIMEOUT_VAR)
    saved = {var: os.environ.pop(var, None) for var in names}
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    yield
    for var, value in saved.items():
        os.environ.pop(var, None)
        if value is not None:
            os.environ[var] = value
    if torch:
        torch.set_num_threads(before)


# --- settings: the only owner of threads and time limits ------------------------------------------

def test_settings_environment_pins_every_pool_and_the_time_limit():
    env = Settings(threads=3, timeout_s=42.5).environment()
    assert env == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3",
                   "BENCH_TIMEOUT_S": "42.5"}


def test_child_env_follows_the_pin_not_torch(clean_env):
    import torch

    procenv.pin(3, 77)
    torch.set_num_threads(1)  # what memory.py used to read back: it is not the run's setting
    env = procenv.child_env()
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3" and env["BENCH_TIMEOUT_S"] == "77"
    assert procenv.child_env(1)["MKL_NUM_THREADS"] == "1"
    assert procenv.child_env(python=True)["PYTHONPATH"].split(os.pathsep)[0] == str(PROJECT)


def test_memory_zygote_gets_the_runs_pin(clean_env, monkeypatch):
    """The zygote works on one thread; its children run at the pin the worker got from Settings
    (before: torch's count read back in the worker)."""
    import torch

    from bench import memory

    seen = {}

    def popen(cmd, env, **kwargs):
        seen.update(env)
        raise OSError("stop here")

    procenv.pin(2)
    torch.set_num_threads(1)
    monkeypatch.setattr(memory.subprocess, "Popen", popen)
    with pytest.raises(OSError, match="stop here"):
        memory.Zygote(CodecConfig("jpeg", "jpeg", rates=(RatePoint("q", {"quality": 50}),)), "cpu")
    assert seen["OMP_NUM_THREADS"] == "1" and seen["BENCH_MEMORY_THREADS"] == "2"


def test_cross_decode_is_bounded_by_the_runs_time_limit(monkeypatch):
    """The cross-decode process had its own 600 s; it now has the run's limit."""
    from bench import crossdecode, worker
    from bench.cells import Cell

    limits = []

    def decode_fresh(config_path, streams, threads, device="cpu", timeout=None, force=False):
        limits.append((threads, timeout))
        raise RuntimeError("no decode in this test")

    monkeypatch.setattr(crossdecode, "decode_fresh", decode_fresh)
    config = CodecConfig("jpeg", "jpeg", rates=(RatePoint("q", {"quality": 50}),))
    cell = Cell(config, config.rates[0], "d", "i", "i.png", "sha", "native", "cpu")
    text = worker.cross_decode(cell, b"x", np.zeros((2, 2, 3), np.uint8), Settings(threads=1, timeout_s=123.0))
    assert limits == [(2, 123.0)] and text.startswith("error (2 threads on")


def test_vtm_calls_are_bounded_by_the_runs_limit(clean_env, tmp_path):
    from bench.codecs.vtm import VtmCodec

    config = CodecConfig("vtm", "vtm", {"vtm_dir": str(tmp_path)}, (RatePoint("qp=37", {"qp": 37}),))
    assert VtmCodec(config).timeout == 3600  # outside a run: an hour, as before
    procenv.pin(1, 900)
    assert VtmCodec(config).timeout == 900  # inside a run: the run's limit
    tighter = CodecConfig("vtm", "vtm", {"vtm_dir": str(tmp_path), "timeout_s": 60}, config.rates)
    assert VtmCodec(tighter).timeout == 60  # a timeout_s parameter can only tighten it


# --- what each row says about threads -------------------------------------------------------------

def test_codecs_report_the_threads_they_ran_with():
    configs = load_configs(PROJECT / "codecs")
    jpeg = create(configs["jpeg-420"])
    assert jpeg.threads_used(3) == ThreadUse(3, 3, None)  # follows the run's pin
    jxl = create(configs["jpegxl"])
    assert jxl.threads_used(3) == ThreadUse(1, 1, "imagecodecs: numthreads (encode), its default 1 (decode)")
    avif = create(configs["avif"])
    from PIL import AvifImagePlugin

    used = avif.threads_used(3)
    assert used.encode == 1 and used.decode == AvifImagePlugin._get_default_max_threads() and "max_threads" in used.pinned_by


def test_run_stores_thread_counts_and_the_machine_class(tmp_path, synthetic_images):
    """End to end through ``python -m bench run``: the new columns and the manifest's ``machine``."""
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "bench", "run", "--codecs", "jpeg-420,jpegxl", "--images", "1", "--dataset",
           str(synthetic_images), "--ladder", "none", "--jobs", "1", "--threads", "2", "--warmup", "0",
           "--repeats", "1", "--memory", "off", "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=PROJECT,
                          env={**os.environ, "PYTHONPATH": str(PROJECT), "BENCH_DATA_DIR": str(synthetic_images.parent)})
    assert done.returncode == 0, done.stderr
    rows = read_measurements(out)
    jpeg, jxl = rows[rows.codec == "jpeg-420"], rows[rows.codec == "jpegxl"]
    assert len(jpeg) and len(jxl) and (rows.threads == 2).all()
    assert (jpeg.enc_threads == 2).all() and (jpeg.dec_threads == 2).all() and jpeg.threads_pinned_by.isna().all()
    assert (jxl.enc_threads == 1).all() and (jxl.dec_threads == 1).all() and jxl.threads_pinned_by.str.contains(
        "numthreads").all()
    doc = json.loads(read_runs(out)["manifest"].iloc[0])
    assert doc["machine"] == MachineClass.here().to_dict() and MachineClass.of(doc) == MachineClass.here()
    assert doc["protocol"] == {"warmup": 0, "repeats": 1, "timeout_s": 900.0, "cross_decode": False, "memory": "off",
                                  "keep_streams": False}


def test_a_store_from_before_the_thread_columns_resumes(tmp_path, synthetic_images, monkeypatch):
    """Drop the new columns (a store written by the code before them), then run the same session
    again: the store gains the columns in place, and every stored cell is skipped."""
    monkeypatch.setenv("BENCH_DATA_DIR", str(synthetic_images.parent))
    spec = SessionSpec(out=tmp_path / "old", command="test", codecs="jpeg-420", plan=_native(synthetic_images),
                       jobs=1, threads=1, warmup=0, repeats=1, memory="off", check_images=False)
    first = Session(spec).run()
    assert first.done == first.cells > 0 and first.errors == 0
    with sqlite3.connect(tmp_path / "old" / "results.sqlite") as conn:
        for column in NEW_COLUMNS:
            conn.execute(f"ALTER TABLE measurements DROP COLUMN {column}")
    again = Session(spec).run()
    assert again.run_id is None and again.skipped == first.cells
    with sqlite3.connect(tmp_path / "old" / "results.sqlite") as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(measurements)")}
    assert set(MEASUREMENT_COLUMNS) <= columns


def _native(images: Path):
    from bench.plan import PlanSpec

    return PlanSpec(dataset=str(images), images=1, rates="quality=50", ladder="none")


# --- one session for every caller ---------------------------------------------------------------

def test_gate_cells_keep_their_layout(synthetic_images):
    """The gate plans through bench.plan: per round, per image, the yardstick first, every rate."""
    from bench.gate.benchmark import GATE_DATASET, GateBenchmark, session_spec, yardstick_config

    benchmark = GateBenchmark(codecs=("jpeg-420",), images=("photo1", "photo2"), rounds=2)
    spec = session_spec(benchmark, Path("unused"), PROJECT / "codecs", synthetic_images)
    assert isinstance(spec.plan, CropPlanSpec) and spec.strict and spec.threads == 1 and spec.memory == "off"
    session = Session(spec)
    jpeg = session.configs[1]
    expected = [(k, image, config.name, rate.label) for k in (1, 2) for image in ("photo1", "photo2")
                for config in (yardstick_config(), jpeg) for rate in config.rates]
    assert [(c.round, c.image, c.config.name, c.rate.label) for c in session.cells] == expected
    assert {(c.dataset, c.resolution, c.device) for c in session.cells} == {(GATE_DATASET, "256x256", "cpu")}
    assert session.settings == Settings(session.settings.protocol, 1, False, 300, metrics=settings_of(spec).metrics)


def test_gate_and_cli_write_one_manifest(synthetic_images):
    """One manifest function: the gate's has every key the CLI's has, plus its benchmark."""
    from bench.gate.benchmark import GateBenchmark, session_spec

    gate = session_spec(GateBenchmark(codecs=("jpeg-420",), images=("photo1",)), Path("x"), PROJECT / "codecs",
                        synthetic_images, "pinned to CPU 0")
    cli = SessionSpec(out=Path("y"), command="python -m bench run", codecs="jpeg-420", plan=_native(synthetic_images))
    g, c = (manifest(s, Session(s).configs, settings_of(s)) for s in (gate, cli))
    assert set(c) <= set(g) and set(g) - set(c) == {"gate"} and g["gate"]["cpu_affinity"] == "pinned to CPU 0"
    assert g["machine"] == c["machine"] == MachineClass.here().to_dict()


def test_vtm_anchor_runs_the_suite_as_a_session():
    from bench.tools.vtm_anchor import suite_spec

    spec = suite_spec(Path("r"), "kodak", 2)
    assert (spec.codecs, spec.plan.dataset, spec.plan.ladder, spec.threads, spec.warmup, spec.repeats,
            spec.timeout_s, spec.jobs) == ("vtm", "kodak", "none", 1, 0, 1, 3600.0, 2)


def test_unknown_codec_is_refused_before_anything_is_written(tmp_path):
    from bench.errors import UsageError

    with pytest.raises(UsageError, match="unknown codec"):
        Session(SessionSpec(out=tmp_path / "never", command="t", codecs="no-such-codec"))
    assert not (tmp_path / "never").exists()


def test_plan_of_crops_matches_plan_dispatch(synthetic_images):
    configs = load_configs(PROJECT / "codecs")
    image = (synthetic_images / "photo1.png", "photo1", "sha")
    cells, notes = plan(CropPlanSpec((image,), "64x64", "set", rounds=1), [configs["webp"]])
    assert notes == [] and [c.rate.label for c in cells] == [r.label for r in configs["webp"].rates]


def test_vtm_anchor_can_take_its_own_advice_to_retry_errors():
    """A timed-out anchor cell is reported with 'rerun with --retry-errors': the anchor command
    accepts that option (and a longer --timeout, which high-resolution images need) and passes both
    to its session."""
    import subprocess
    import sys

    from bench.tools.vtm_anchor import suite_spec

    spec = suite_spec(Path("r"), "highres", 2, timeout_s=7200.0, retry_errors=True)
    assert (spec.timeout_s, spec.retry_errors) == (7200.0, True)
    assert suite_spec(Path("r"), "kodak", 2).retry_errors is False
    usage = subprocess.run([sys.executable, "-m", "bench.tools.vtm", "anchor", "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--retry-errors" in usage.stdout and "--timeout" in usage.stdout
    bad = subprocess.run([sys.executable, "-m", "bench.tools.vtm", "anchor", "--timeout", "0", "--results", "never"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--timeout" in bad.stderr
    assert not Path("never").exists()
