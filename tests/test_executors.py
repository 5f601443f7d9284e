"""The executor interface with the local executor: cells in, one row per cell out (ok or error,
each exactly once), every row stamped with its machine; the driver (Runner) stores each row with
its executor and round, and keeps what finished when the engine is lost."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import sys
from pathlib import Path

import pytest

from bench import cli
from bench.cells import Cell, Protocol, Settings
from bench.codecs import registry
from bench.device import cpu_model
from bench.errors import ExecutorError, UsageError
from bench.executors import make_executor
from bench.executors.local import LocalExecutor
from bench.images import file_sha256
from bench.runner import Runner
from bench.store import Store, read_measurements

SETTINGS = Settings(Protocol(warmup=0, repeats=1), threads=1, timeout_s=120)
RATES = """
[[rates]]
label = "q50"
quality = 50
[[rates]]
label = "raises"
quality = 50
fault = "raise"
[[rates]]
label = "killed"
quality = 50
fault = "kill"
"""


@pytest.fixture
def cells(tmp_path: Path, synthetic_images: Path) -> list[Cell]:
    """One ok cell on each of two images, one that raises, one whose worker is SIGKILLed."""
    codecs = tmp_path / "codecs"
    codecs.mkdir()
    (codecs / "probe.toml").write_text('adapter = "tests.support.faulty_codecs:FaultyJpeg"\n' + RATES)
    config = registry.load_configs(codecs)["probe"]
    out = []
    for name in ("photo3", "photo4"):
        path = synthetic_images / f"{name}.png"
        out.append(Cell(config, config.rate("q50"), "synthetic", name, str(path), file_sha256(path), "native", "cpu"))
    path = synthetic_images / "photo3.png"
    for label in ("raises", "killed"):
        out.append(Cell(config, config.rate(label), "synthetic", "photo3", str(path), file_sha256(path), "native",
                        "cpu"))
    return out


def test_local_executor_yields_every_cell_once_with_its_machine(cells: list[Cell]) -> None:
    executor = make_executor("local", SETTINGS, jobs=2)
    assert isinstance(executor, LocalExecutor) and executor.name == "local"
    try:
        rows = {row["cell_key"]: row for row in executor.run(cells)}
    finally:
        executor.close()
    assert sorted(rows) == sorted(c.key for c in cells)
    status = {rows[c.key]["rate_label"] + "/" + rows[c.key]["image"]: rows[c.key]["status"] for c in cells}
    assert status == {"q50/photo3": "ok", "q50/photo4": "ok", "raises/photo3": "error", "killed/photo3": "error"}
    assert rows[cells[2].key]["error"] == "codec error: injected encoder failure"
    assert rows[cells[3].key]["error"].startswith("worker process died with SIGKILL")
    for row in rows.values():  # error rows too: the killed worker's row is made here, on the same machine
        assert (row["host"], row["cpu_model"], row["logical_cpus"], row["arch"]) == (
            platform.node(), cpu_model(), os.cpu_count(), platform.machine())
        assert row["gpu_model"] is None  # a CPU cell
        assert row["round"] == 1
    assert executor.workers == [] and not [p for p in mp.active_children() if p.is_alive()]


def test_runner_stores_rounds_and_the_executor(cells: list[Cell], tmp_path: Path) -> None:
    again = Cell(*[getattr(cells[0], f) for f in ("config", "rate", "dataset", "image", "image_path", "image_sha256",
                                                  "resolution", "device")], round=2)
    with Store(tmp_path / "res") as store:
        result = Runner(store, SETTINGS, jobs=1).run([cells[0], again], run_id=1)
    assert result.done == 2 and result.errors == 0
    frame = read_measurements(tmp_path / "res").sort_values("round")
    assert list(frame["round"]) == [1, 2] and (frame["executor"] == "local").all()
    assert frame["bytes"].nunique() == 1  # the same cell twice: the same bitstream
    assert (frame["cpu_model"] == cpu_model()).all() and frame["gpu_model"].isna().all()


class LostAfterOne:
    """The local executor, whose engine is lost after the first row (as a Dask scheduler may be)."""

    name = "lost"

    def __init__(self) -> None:
        self.inner = LocalExecutor(SETTINGS, 1)
        self.closed = False

    def run(self, cells):
        for row in self.inner.run(cells):
            yield row
            raise ExecutorError("scheduler tcp://10.0.0.1:8786 is gone")

    def close(self) -> None:
        self.inner.close()
        self.closed = True


def test_a_lost_engine_stops_the_run_keeping_what_finished(cells: list[Cell], tmp_path: Path) -> None:
    executor = LostAfterOne()
    with Store(tmp_path / "res") as store:
        runner = Runner(store, SETTINGS, executor=executor)
        with pytest.raises(ExecutorError, match=r"scheduler tcp://10.0.0.1:8786 is gone; 1 of 2 cells finished"):
            runner.run(cells[:2], run_id=1)
        assert executor.closed
        assert len(runner.pending(cells[:2])[0]) == 1  # a re-run resumes with the other cell only
    frame = read_measurements(tmp_path / "res")
    assert len(frame) == 1 and frame["executor"].tolist() == ["lost"]


def test_unknown_executor_and_misplaced_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown executor; choose one of local, dask"):
        make_executor("slurm", SETTINGS, 1)
    with pytest.raises(UsageError, match="--executor local takes no --cluster"):
        make_executor("local", SETTINGS, 1, cluster="local:2")


def test_dask_executor_missing_is_one_line_exit_2(monkeypatch, capsys, tmp_path: Path) -> None:
    """Where ``bench.executors.dask`` cannot be imported (its dependencies absent), ``--executor
    dask`` is refused before anything runs. A None entry in sys.modules makes the import fail as a
    missing module does."""
    monkeypatch.setitem(sys.modules, "bench.executors.dask", None)
    assert cli.main(["run", "--codecs", "jpeg-420", "--executor", "dask", "--cluster", "local:2",
                     "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --executor dask is not available here") and "--executor local" in err
    assert "\n" not in err and not (tmp_path / "r").exists()
