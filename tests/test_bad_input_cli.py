"""The bad-input campaign of issue 21 on the command line: thresholds, devices, codec names, the
store's lock and other applications' databases, the gate's ``--json``, malformed anchors and
CompressAI files, and the notes (too many jobs, duplicate baseline keys, huge ``--rounds``).
Each is refused with one clear line (exit 2) before anything is run or written. No Kodak needed."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from bench import cli
from bench.errors import AnchorError, GateError
from tests.conftest import PROJECT, python_module
from tests.test_cli import one_line_error, write_photos
from tests.test_export import make_store


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos") / "tiny")


# --- D3: gate thresholds --------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [("--bd-threshold", "nan"), ("--bd-threshold", "inf"),
                                           ("--bd-threshold", "-1"), ("--time-threshold", "nan"),
                                           ("--time-threshold", "Infinity")])
def test_gate_thresholds_must_be_finite(capsys, option, value):
    from bench.gate.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([option, value, "--results", "never-read"])
    assert exit_.value.code == 2
    assert f"argument {option}: '{value}': must be a finite number ≥ 0" in capsys.readouterr().err


# --- D4: devices ----------------------------------------------------------------------------------

def _absent_cuda() -> str:
    from bench.device import cuda_count

    count = cuda_count()
    return f"cuda:{count}" if count else "cuda"


@pytest.mark.parametrize("device, expected", [
    ("foo", "--device 'foo': unknown device; use cpu, cuda, cuda:N or auto"),
    ("cuda:x", "--device 'cuda:x': unknown device"),
    (None, "CUDA device"),  # a CUDA device this machine does not have
])
def test_an_unknown_or_absent_device_is_refused_before_any_cell(capsys, photos, tmp_path, device, expected):
    out = tmp_path / "res"
    device = device or _absent_cuda()
    err = one_line_error(capsys, ["run", "--codecs", "jpeg-420", "--dataset", str(photos), "--ladder", "none",
                                  "--device", device, "--out", str(out)])
    assert expected in err and f"--device {device}" in err.replace("'", "")
    assert not out.exists()


# --- D7: codec names ------------------------------------------------------------------------------

BAD_NAMES = {"reserved": '"all"', "comma": '"a,b"', "empty": '""', "nul": '"a\\u0000b"', "newline": '"a\\nb"',
             "dash": '"-x"', "slash": '"../x"', "space": '"a b"'}


def test_unusable_codec_names_isolate_their_configuration_as_broken(tmp_path, capsys):
    from bench.codecs import registry

    codecs = tmp_path / "codecs"
    codecs.mkdir()
    jpeg = (PROJECT / "codecs" / "jpeg-420.toml").read_text()
    shutil.copy(PROJECT / "codecs" / "jpeg-420.toml", codecs)
    for stem, name in BAD_NAMES.items():
        (codecs / f"{stem}.toml").write_text(f"name = {name}\n{jpeg}")
    (codecs / "a,b.toml").write_text(jpeg)  # no name = ...: the file name is the name
    configs = registry.load_configs(codecs)
    assert list(configs) == ["jpeg-420"]
    assert sorted(configs.broken) == sorted([*BAD_NAMES, "a,b.toml"])
    for stem in BAD_NAMES:
        message = str(configs.broken[stem])
        assert message.startswith(f"{codecs / stem}.toml:1: name: "), message
        assert "reserved" in message or "not a usable codec name" in message
    assert "file name: 'a,b' is not a usable codec name" in str(configs.broken["a,b.toml"])
    # the others still run; selecting a broken one names its file
    assert cli.main(["--codecs-dir", str(codecs), "run", "--codecs", "dash", "--dataset", str(tmp_path),
                     "--out", str(tmp_path / "r")]) == 2
    assert f"{codecs / 'dash.toml'}:1: name: '-x' is not a usable codec name" in capsys.readouterr().err


def test_the_shipped_configurations_have_usable_names():
    from bench.codecs import registry

    configs = registry.load_configs(PROJECT / "codecs")
    assert not configs.broken and all(registry.name_problem(name) is None for name in configs)


# --- D11: the store's lock ------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["results.sqlite.lock", "results.sqlite-wal", "other/results.sqlite.lock",
                                    "other/results.sqlite"])
def test_export_never_writes_onto_a_store_or_its_lock(tmp_path, capsys, target):
    results = make_store(tmp_path / "R")
    make_store(tmp_path / "R" / "other")  # another store beside it
    path = results / target
    if not path.exists():
        path.write_text("")  # a lock (or WAL) file as a run leaves it
    before = path.read_bytes()
    assert cli.main(["export", str(results), "--csv", str(path), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path} is the results store itself, or one of its files" in err
    assert path.read_bytes() == before


# --- D19: another application's SQLite file -------------------------------------------------------

def test_a_run_refuses_another_applications_sqlite_file_and_leaves_it_untouched(capsys, photos, tmp_path):
    other = tmp_path / "app.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('precious')")
    conn.close()
    before = other.read_bytes()
    err = one_line_error(capsys, ["run", "--codecs", "jpeg-420", "--dataset", str(photos), "--ladder", "none",
                                  "--out", str(other)])
    assert f"{other} is not a lic-bench results store (an SQLite database with tables notes)" in err
    assert other.read_bytes() == before  # no tables added, still in rollback-journal mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.sqlite"]  # no lock file left


def test_a_store_opens_an_empty_file_and_an_existing_store(tmp_path):
    from bench.store import Store

    (tmp_path / "empty.sqlite").write_bytes(b"")
    with Store(tmp_path / "empty.sqlite"):
        pass
    with Store(make_store(tmp_path / "R")) as store:
        assert store.finished_keys()


# --- D14: the gate's --json -----------------------------------------------------------------------

def test_gate_checks_its_json_path_before_running_the_benchmark(capsys, tmp_path, monkeypatch):
    import bench.gate.cli as gate

    def never(*args, **kwargs):
        raise AssertionError("the benchmark ran before --json was checked")

    monkeypatch.setattr(gate, "run_benchmark", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path, reason in ((blocker / "verdicts.json", "does not exist"), (tmp_path, "is a folder")):
        assert gate.main(["--json", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"gate error: --json {path}: ") and reason in err
    assert blocker.read_text() == "" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


# --- D16 and D18: anchors -------------------------------------------------------------------------

def test_one_malformed_anchor_is_listed_as_broken_and_the_others_shown(tmp_path, run_python):
    anchors = tmp_path / "anchors"
    shutil.copytree(PROJECT / "anchors" / "kodak", anchors / "kodak")
    (anchors / "kodak" / "zz-truncated.json").write_text('{"schema": "lic-bench/anchor/1", "name":')
    (anchors / "kodak" / "zz-list.json").write_text("[]")
    good = json.loads((anchors / "kodak" / "bpg444.json").read_text())
    (anchors / "kodak" / "zz-number.json").write_text(json.dumps({**good, "name": "kodak/zz-number",
                                                                  "points": {**good["points"], "bpp": 0.5}}))
    done = run_python("bench.anchors", "list", env={"BENCH_ANCHORS_DIR": str(anchors)})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert len(lines) == len(list((anchors / "kodak").glob("*.json")))
    assert "BROKEN: kodak/zz-truncated.json: not valid JSON" in lines["kodak/zz-truncated"]
    assert "BROKEN: kodak/zz-list.json: expected a JSON object, found list" in lines["kodak/zz-list"]
    assert "BROKEN: kodak/zz-number.json: 'points' must be an object of columns" in lines["kodak/zz-number"]
    assert "BROKEN" not in lines["kodak/bpg444"] and "psnr_rgb" in lines["kodak/bpg444"]


@pytest.mark.parametrize("results, expected", [
    ({"bpp": 0.5, "psnr-rgb": [30.0]}, "results.bpp must be a list (one value per rate point), found float 0.5"),
    ({"bpp": [0.5], "psnr-rgb": "30"}, "results.psnr-rgb must be a list"),
    ({"bpp": [0.5, 0.7], "psnr-rgb": [30.0, "a"]}, "psnr_rgb[1] = 'a' is not a finite number"),
])
def test_a_compressai_json_of_the_wrong_shape_is_a_clear_error(tmp_path, results, expected):
    from bench.anchors import import_compressai_json

    path = tmp_path / "kodak" / "x.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"name": "x", "results": results}))
    with pytest.raises(AnchorError) as error:
        import_compressai_json(path)
    assert str(error.value).startswith(f"{path}: ") and expected in str(error.value)


# --- notes ----------------------------------------------------------------------------------------

def test_more_jobs_than_cpus_is_one_warning_line(capsys, photos, tmp_path):
    jobs = (os.cpu_count() or 1) + 1
    assert cli.main(["run", "--codecs", "nope", "--jobs", str(jobs), "--dataset", str(photos),
                     "--out", str(tmp_path / "r")]) == 2  # the warning comes first, then the refusal
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"warning: --jobs {jobs} is more than the {jobs - 1} logical CPUs")


def test_a_huge_rounds_is_refused_at_once(capsys, photos, tmp_path):
    err = one_line_error(capsys, ["run", "--codecs", "jpeg-420", "--rounds", "2000000", "--dataset", str(photos),
                                  "--out", str(tmp_path / "r")])
    assert "--rounds 2000000: at most 1000" in err


def test_a_baseline_with_a_repeated_key_is_refused(tmp_path):
    from bench.gate.baseline import DEFAULT_BASELINE, read_baseline

    text = DEFAULT_BASELINE.read_text()
    first_key = text.index('"schema"')
    path = tmp_path / "baseline.json"
    path.write_text(text[:first_key] + '"schema": "x",\n ' + text[first_key:])  # the later value would win
    with pytest.raises(GateError, match=rf"{path}: key 'schema' appears twice in one object"):
        read_baseline(path)
    assert read_baseline(DEFAULT_BASELINE)["codecs"]  # the real one has none

