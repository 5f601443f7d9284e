"""A new user's first hour with the command line (issue 21): typos are caught and explained, a
refused command leaves nothing behind, ``--help`` is quick and points at the other commands, and a
run's progress shows in a log. No Kodak needed."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from bench import cli
from tests.conftest import PROJECT, python_module
from tests.test_cli import one_line_error, write_photos


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos") / "tiny")


def usage_error(capsys, main, argv: list[str]) -> str:
    """Run a command's ``main(argv)``; assert argparse's exit 2; return stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


# --- typos ---------------------------------------------------------------------------------------

def test_a_typo_in_a_run_option_shows_runs_usage_and_the_option_meant(capsys):
    err = usage_error(capsys, cli.main, ["run", "--codec", "jpeg-420"])
    assert err.startswith("usage: python -m bench run ")  # not the top-level usage, which lists no option of run
    assert "unrecognized arguments: --codec jpeg-420 (did you mean --codecs?)" in err


def _abbreviated_commands(tmp_path: Path):
    """(main, argv) per command, each with an abbreviation of one of its own options."""
    from bench.anchors.cli import main as anchors
    from bench.codecs.weights import main as weights
    from bench.datasets import main as datasets
    from bench.gate.cli import main as gate
    from bench.report.__main__ import main as report

    return [
        (cli.main, ["run", "--codec", "jpeg-420", "--out", str(tmp_path / "r")]),
        (cli.main, ["export", str(tmp_path / "none"), "--cs", str(tmp_path / "x.csv")]),
        (report, [str(tmp_path / "none"), "--anch", "codec:jpeg-420", "--out", str(tmp_path / "rep")]),
        (gate, ["--bd-thr", "1", "--results", str(tmp_path / "none")]),
        (anchors, ["list", "--data", "kodak"]),
        (datasets, ["fetch", "kodak", "--root", str(tmp_path / "d"), "--base-u", "file:///nonexistent"]),
        (weights, ["jpeg-420", "--time", "1"]),
    ]


def test_no_command_accepts_an_abbreviated_option(capsys, tmp_path):
    for main, argv in _abbreviated_commands(tmp_path):
        err = usage_error(capsys, main, argv)
        assert "unrecognized arguments: " in err, (argv, err)
    assert not any(tmp_path.iterdir())  # nothing ran


def test_an_unknown_codec_suggests_the_names_meant(capsys, photos, tmp_path):
    err = one_line_error(capsys, ["run", "--codecs", "jpeg", "--dataset", str(photos), "--out", str(tmp_path / "r")])
    assert "unknown codec(s): jpeg; did you mean jpeg-420, jpeg-444" in err
    err = one_line_error(capsys, ["run", "--codecs", "jepg-420", "--dataset", str(photos), "--out", str(tmp_path / "r")])
    assert "did you mean jpeg-420" in err  # the closest first


# --- a refused command leaves nothing behind -----------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--codecs", "nope"],  # refused while planning
    ["--codecs", "jpeg-420", "--dataset", "no-such-folder"],
    ["--codecs", "jpeg-420", "--device", "foo"],  # refused while checking the options
])
def test_a_refused_run_leaves_no_folder_and_no_lock(capsys, photos, tmp_path, argv):
    out = tmp_path / "deep" / "res"
    one_line_error(capsys, ["run", "--dataset", str(photos), "--ladder", "none", *argv, "--out", str(out)])
    assert not (tmp_path / "deep").exists()


def test_a_lock_taken_for_a_refused_block_is_removed_with_the_folders_made_for_it(tmp_path):
    from bench.storelock import lock_path, lock_store

    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with lock_store(out, "test"):
            assert lock_path(out).is_file()
            raise RuntimeError("refused before any cell")
    assert not (tmp_path / "a").exists()
    # a lock file that was there before (another run's) stays
    out.mkdir(parents=True)
    lock_path(out).write_text("")
    with pytest.raises(RuntimeError):
        with lock_store(out, "test"):
            raise RuntimeError("refused")
    assert lock_path(out).is_file()


def test_a_failed_fetch_leaves_no_empty_data_folder_and_exits_2(capsys, tmp_path):
    from bench.datasets import main

    root = tmp_path / "data"
    assert main(["fetch", "kodak", "--root", str(root), "--base-url", "file:///nonexistent-kodak"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot download file:///nonexistent-kodak/kodim01.png")
    assert not root.exists()


# --- errors that name what the user typed ---------------------------------------------------------

def test_anchors_list_of_an_unknown_dataset_names_the_known_ones(capsys):
    from bench.anchors.cli import main

    assert main(["list", "--dataset", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no anchors for dataset 'nosuch'" in err and "kodak" in err


def test_report_of_a_missing_store_names_the_store_not_the_output(capsys, tmp_path):
    from bench.report.__main__ import main

    missing, out = tmp_path / "results" / "nonexistent", tmp_path / "reports" / "x"
    assert main([str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # progress lines may come first
    assert len(errors) == 1 and errors[0].startswith(f"error: no results store at {missing}") and str(out) not in err


# --- help ----------------------------------------------------------------------------------------

def test_help_names_the_other_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("python -m bench.report", "python -m bench.gate", "python -m bench.anchors",
                    "python -m bench.datasets"):
        assert command in out


def test_the_command_line_imports_no_heavy_module_before_a_command_runs():
    """``--help`` (and a refused option) must not wait for numpy, pandas, rich or torch to import."""
    done = python_module("bench", "--help", env={"PYTHONWARNINGS": "ignore"}, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = ("import sys, bench.cli; bench.cli.build_parser(); "
             "print(sorted(m for m in ('numpy', 'pandas', 'rich', 'torch', 'scipy', 'PIL') if m in sys.modules))")
    done = _python_c(probe)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def _python_c(code: str):
    """``python -c code`` of this checkout in a fresh process."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(PROJECT)})


# --- progress in a log, and the summary ----------------------------------------------------------

def _progress_lines(total: int, seconds_per_cell: float) -> list[str]:
    from rich.console import Console

    from bench.progress import RunProgress

    stream, clock = io.StringIO(), [0.0]
    console = Console(file=stream, force_terminal=False, width=200)
    with RunProgress(console, total, clock=lambda: clock[0]) as progress:
        for i in range(total):
            clock[0] += seconds_per_cell
            progress.advance({"status": "ok" if i != 3 else "error", "cell_key": f"k{i}", "error": "boom"})
    return stream.getvalue().splitlines()


def test_progress_in_a_log_is_a_line_every_5_percent_of_the_cells():
    lines = [line for line in _progress_lines(200, 0.1) if line.startswith("cells ")]
    assert [int(re.match(r"cells (\d+)/200", line).group(1)) for line in lines] == list(range(10, 201, 10))
    assert lines[0] == "cells 10/200 (5 %), errors 1, elapsed 0:00:01, ETA 0:00:19"
    assert lines[-1].startswith("cells 200/200 (100 %), errors 1, elapsed 0:00:20, ETA 0:00:00")


def test_progress_in_a_log_is_a_line_at_least_every_30_seconds():
    lines = [line for line in _progress_lines(1000, 11.0) if line.startswith("cells ")]
    # 11 s a cell: the 3rd cell is the first past 30 s, then every 3rd; the last cell always
    assert [int(re.match(r"cells (\d+)/", line).group(1)) for line in lines][:3] == [3, 6, 9]
    assert lines[-1].startswith("cells 1000/1000")


def test_a_run_in_a_log_shows_progress_lines_and_whole_codec_names(photos, tmp_path):
    codecs = tmp_path / "codecs"
    codecs.mkdir()
    long_name = "jpeg-420-with-a-rather-long-configuration-name"
    (codecs / f"{long_name}.toml").write_text((PROJECT / "codecs" / "jpeg-420.toml").read_text())
    done = python_module("bench", "--codecs-dir", str(codecs), "run", "--codecs", long_name, "--dataset", str(photos),
                         "--images", "1", "--ladder", "none", "--jobs", "1", "--repeats", "1", "--out",
                         str(tmp_path / "res"), unset=("COLUMNS",), timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^cells 1/6 \(17 %\), errors 0, elapsed ", done.stderr, re.MULTILINE), done.stderr
    assert re.search(r"^cells 6/6 \(100 %\)", done.stderr, re.MULTILINE)
    table_rows = [line for line in done.stderr.splitlines() if line.startswith("│")]
    assert sum(long_name in line for line in table_rows) == 1 + 6  # per codec, and per rate point
    assert "…" not in done.stderr


def signal_dispositions(pid: int) -> str:
    """The blocked, ignored and caught signal masks of process ``pid`` (Linux), for a failure message."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"unknown ({exc})"
    return ", ".join(line.replace("\t", " ") for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def test_interrupting_a_run_prints_one_line_and_keeps_the_finished_cells(tmp_path):
    from tests.test_runner import (count_rows, kill_leftovers, probe_codecs, start_run, synthetic_images, wait_for,
                                   workers_of)

    marker, out = tmp_path / "hang-started", tmp_path / "res"
    codecs = probe_codecs(tmp_path, "FaultyJpeg", "", f'[[rates]]\nlabel = "quick"\nquality = 80\n'
                                                     f'[[rates]]\nlabel = "hangs"\nquality = 50\nfault = "hang"\n'
                                                     f'marker = "{marker}"\n')
    run = start_run(codecs, synthetic_images(tmp_path / "images", count=1), out, "--timeout", "300")
    workers: list[int] = []
    try:
        wait_for(marker, run)  # the worker is inside the hanging cell ...
        workers = workers_of(run.pid)
        deadline = time.time() + 60
        while count_rows(out / "results.sqlite") < 1:  # ... and the quick one is stored
            assert time.time() < deadline, "the quick cell was not stored"
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)
        try:
            _, err = run.communicate(timeout=240)  # a loaded machine may take long to stop the workers
        except subprocess.TimeoutExpired:  # stuck: fail with where every thread of the run was (cli's SIGUSR1)
            dispositions = signal_dispositions(run.pid), signal_dispositions(os.getpid())
            run.send_signal(signal.SIGUSR1)
            time.sleep(2)
            run.kill()
            _, err = run.communicate()
            pytest.fail(f"the run did not stop within 240 s of SIGINT; its signal masks (run; pytest): "
                        f"{dispositions}; its threads then:\n{err}")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        kill_leftovers(workers)
    assert run.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == (f"interrupted; the cells finished so far are stored in {out} "
                                            "(re-run the same command to resume)"), err
    from bench.store import read_measurements

    assert list(read_measurements(out)["rate_label"]) == ["quick"]


def test_interrupting_a_fetch_or_a_report_prints_one_line(capsys, tmp_path, monkeypatch):
    import bench.datasets
    import bench.report.__main__ as report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench.datasets, "download", interrupted)
    assert bench.datasets.main(["fetch", "kodak", "--root", str(tmp_path / "data")]) == 130
    assert capsys.readouterr().err == "interrupted\n" and not (tmp_path / "data").exists()
    monkeypatch.setattr(report, "build_report", interrupted)
    assert report.main([str(tmp_path / "results"), "--out", str(tmp_path / "rep")]) == 130
    assert capsys.readouterr().err == "interrupted\n"


# --- install and messages --------------------------------------------------------------------------

def test_every_install_hint_names_an_extra_that_exists():
    extras = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    from bench.metrics import perceptual

    hint = perceptual.missing("no_such_module_for_the_test")
    assert hint and "no_such_module_for_the_test" in hint
    sources = [p.read_text() for p in (PROJECT / "bench").rglob("*.py")] + [hint, PROJECT.joinpath("README.md").read_text()]
    named = {m for text in sources for m in re.findall(r"lic-bench\[(\w+)\]", text)}
    assert named and named <= set(extras), f"install hints name extras that do not exist: {named - set(extras)}"


def test_the_package_metadata_uses_the_spdx_license_and_installs_only_bench():
    from fnmatch import fnmatch

    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # a TOML table is deprecated (setuptools warns)
    assert any(re.fullmatch(r"setuptools>=(7[7-9]|[89]\d)(\.\d+)*", r) for r in project["build-system"]["requires"])
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert any(fnmatch("bench.codecs", p) for p in include) and not any(fnmatch("benchmarks", p) for p in include)


def test_listing_codecs_does_not_show_the_torch_jit_deprecation():
    """compressai imports torch_geometric (when installed), which calls the deprecated torch.jit.script
    at import: a FutureWarning that ``bench list`` collected as a footnote and runs printed."""
    pytest.importorskip("torch_geometric")
    probe = ("import warnings; warnings.simplefilter('default'); from bench.inventory import _probe; "
             "from bench.codecs import registry; reason, version, trained, notes = "
             "_probe(registry.load_configs()['mbt2018']); import compressai; print(reason, notes)")
    done = _python_c(probe)
    assert done.returncode == 0, done.stderr
    assert "jit" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_sigusr1_prints_where_a_stuck_run_is(tmp_path):
    """`kill -USR1` on a run prints every thread's stack (to diagnose a run that seems stuck) and
    the run goes on."""
    from tests.test_runner import kill_leftovers, probe_codecs, start_run, synthetic_images, wait_for, workers_of

    marker = tmp_path / "hang-started"
    codecs = probe_codecs(tmp_path, "FaultyJpeg", "", f'[[rates]]\nlabel = "hangs"\nquality = 50\nfault = "hang"\n'
                                                     f'marker = "{marker}"\n')
    run = start_run(codecs, synthetic_images(tmp_path / "images", count=1), tmp_path / "res", "--timeout", "300")
    workers: list[int] = []
    try:
        wait_for(marker, run)
        workers = workers_of(run.pid)
        run.send_signal(signal.SIGUSR1)
        time.sleep(2)
        assert run.poll() is None  # still running
    finally:
        run.kill()
        _, err = run.communicate()
        kill_leftovers(workers)
    assert "most recent call first" in err and "bench/" in err, err
