"""The gate's judging on real gate-shaped data, without running codecs.

A real gate store (SQLite, written through the Store API) is built from the committed baseline:
per image and round, a yardstick cell and every codec's cells, whose bpp/PSNR are the baseline's
curve and whose decode CPU times are the baseline's cell ratios times the yardstick's time. The
gate's command line (``main``, and once a subprocess) then judges it against the committed
baseline or a damaged copy: exit 0 pass, 1 regression, 2 cannot judge.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import pytest

from bench.gate import DEFAULT_BASELINE, FAIL, UNJUDGED, YARDSTICK, CodecSummary, compare, exit_status, main
from bench.gate.baseline import read_baseline
from bench.machine import MachineClass
from bench.store import Store
from tests.conftest import python_module

COMMITTED = json.loads(DEFAULT_BASELINE.read_text(encoding="utf-8"))
OTHER_MACHINE = {"cpu_model": "Some Other CPU", "logical_cpus": 64, "arch": "aarch64"}


def gate_store(folder: Path, baseline: dict, machine: dict | str | None = None, skip: tuple[str, ...] = (),
               bpp_scale: dict[str, float] | None = None, row_machine=None) -> Path:
    """A gate store whose numbers reproduce ``baseline``; ``machine`` goes into the run's manifest
    (a dict as ``machine``, a string as the old ``cpu``; default: the baseline's own ``cpu``);
    ``row_machine(codec, round)``, if given, the machine columns of each row."""
    bench = baseline["benchmark"]
    w, h = (int(v) for v in bench["crop"].split("x"))
    manifest = {"cpu": baseline["cpu"]} if machine is None else (
        {"cpu": machine} if isinstance(machine, str) else {"machine": machine})
    yard = baseline["yardstick"]["dec_time_s"]
    with Store(folder) as store:
        run_id = store.start_run(manifest)

        def add(codec: str, label: str, k: int, image: str, **numbers: object) -> None:
            store.add_measurement({"cell_key": f"{codec}|{label}|{image}|round {k}", "run_id": run_id,
                                   "status": "ok", "codec": codec, "rate_label": label, "round": k,
                                   "dataset": "kodak", "image": image, "resolution": bench["crop"],
                                   **(row_machine(codec, k) if row_machine else {}), **numbers})

        for k in range(1, bench.get("rounds", 5) + 1):
            for image in bench["images"]:
                add(YARDSTICK, "quality=75", k, image, dec_cpu_s=yard[image], bpp=1.0, psnr_rgb=35.0, bytes=1)
                for codec in bench["codecs"]:
                    if codec in skip:
                        continue
                    entry = baseline["codecs"][codec]
                    for label, bpp, psnr in zip(entry["rate_label"], entry["bpp"], entry["psnr_rgb"]):
                        bpp *= (bpp_scale or {}).get(codec, 1.0)
                        add(codec, label, k, image, bpp=bpp, psnr_rgb=psnr, bytes=round(bpp * w * h / 8),
                            dec_cpu_s=entry["cell_ratios"][f"{label}|{image}"] * yard[image],
                            codec_version=entry["version"], config_hash=entry["config_hash"])
    return folder


@pytest.fixture(scope="module")
def same_machine(tmp_path_factory) -> Path:
    return gate_store(tmp_path_factory.mktemp("gate-same"), COMMITTED)


def write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_committed_baseline_is_valid_and_its_old_cpu_field_gives_the_machine_class() -> None:
    doc = read_baseline(DEFAULT_BASELINE)
    assert "machine" not in doc  # recorded before the class was: read from 'cpu'
    assert MachineClass.of(doc) == MachineClass("Intel(R) Xeon(R) Processor", 2, None)


def test_run_equal_to_the_committed_baseline_passes(same_machine: Path, tmp_path: Path, capsys) -> None:
    verdicts = tmp_path / "v.json"
    assert main(["--baseline", str(DEFAULT_BASELINE), "--results", str(same_machine), "--json", str(verdicts)]) == 0
    out = json.loads(verdicts.read_text())
    assert {v["codec"] for v in out} == set(COMMITTED["codecs"]) and all(v["status"] == "pass" for v in out)
    assert all(abs(v["bd_rate_pct"]) < 1e-6 and abs(v["time_change"]) < 1e-4 for v in out)
    assert "gate: passed" in capsys.readouterr().out


def test_empty_codecs_cannot_be_judged(same_machine: Path, tmp_path: Path, capsys) -> None:
    doc = copy.deepcopy(COMMITTED)
    doc["codecs"] = {}
    assert main(["--baseline", str(write(tmp_path / "b.json", doc)), "--results", str(same_machine)]) == 2
    err = capsys.readouterr().err
    assert "codecs: empty" in err and "vacuously" in err


@pytest.mark.parametrize("damage, key", [
    (lambda d: [d], "(top level): expected an object, found a list"),
    (lambda d: {**d, "codecs": list(d["codecs"])}, "codecs: expected an object, found a list"),
    (lambda d: {k: v for k, v in d.items() if k != "benchmark"}, "benchmark: missing"),
    (lambda d: d["codecs"]["webp"].pop("dec_time_ratio") and d, "codecs.webp.dec_time_ratio: missing"),
    (lambda d: d["codecs"]["avif"].update(bpp="0.5, 1.0") or d, "codecs.avif.bpp: expected a list, found a string"),
    (lambda d: d["codecs"]["jpeg-444"]["psnr_rgb"].__setitem__(2, "31.0") or d,
     "codecs.jpeg-444.psnr_rgb[2]: expected a finite number, found '31.0'"),
    (lambda d: d["benchmark"].update(rounds=True) or d, "benchmark.rounds: expected an integer, found a boolean"),
    (lambda d: d["codecs"]["jpegxl"]["cell_ratios"].update({"quality=50|kodim04": -1}) or d,
     "codecs.jpegxl.cell_ratios.quality=50|kodim04: expected a finite positive number"),
    (lambda d: d["codecs"]["webp"].update(cell_wall_ratios={"quality=50|kodim04": 0}) or d,
     "codecs.webp.cell_wall_ratios.quality=50|kodim04: expected a finite positive number"),
    (lambda d: d["codecs"]["webp"].update(timer="gpu") or d, "codecs.webp.timer: 'gpu' is neither 'wall' nor"),
])
def test_baseline_of_the_wrong_shape_cannot_be_judged_and_names_the_key(same_machine: Path, tmp_path: Path, capsys,
                                                                        damage, key: str) -> None:
    path = write(tmp_path / "b.json", damage(copy.deepcopy(COMMITTED)))
    assert main(["--baseline", str(path), "--results", str(same_machine)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}: {key}" in err, err


def test_codec_in_the_run_but_not_in_the_baseline_cannot_be_judged(same_machine: Path, tmp_path: Path,
                                                                   capsys) -> None:
    doc = copy.deepcopy(COMMITTED)
    del doc["codecs"]["avif"]  # still gated (benchmark.codecs), so measured in the run
    assert main(["--baseline", str(write(tmp_path / "b.json", doc)), "--results", str(same_machine)]) == 2
    assert "codecs.avif: missing, but benchmark.codecs lists it" in capsys.readouterr().err
    # The pure comparison says the same about a codec it is given without a baseline entry.
    base = {"codecs": {"a": {"bpp": [0.5, 1.0, 2.0], "psnr_rgb": [30.0, 33.0, 36.0], "dec_time_ratio": 1.0,
                             "cell_ratios": {"q0|x": 1.0}}}}
    now = {c: CodecSummary(["q0", "q1", "q2"], [0.5, 1.0, 2.0], [30.0, 33.0, 36.0], 1.0, {"q0|x": 1.0}, 3)
           for c in ("a", "extra")}
    verdicts = compare(base, now)
    assert [(v.codec, v.status) for v in verdicts] == [("a", "pass"), ("extra", UNJUDGED)]
    assert exit_status(verdicts) == 2


def test_codec_missing_from_the_run_cannot_be_judged(tmp_path: Path, capsys) -> None:
    store = gate_store(tmp_path / "s", COMMITTED, skip=("avif",))
    assert main(["--baseline", str(DEFAULT_BASELINE), "--results", str(store)]) == 2
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("avif"))
    assert UNJUDGED in line and "no measurement in this run" in line
    assert "CANNOT JUDGE avif" in out


def test_other_machine_class_without_the_flag_cannot_judge_time(tmp_path: Path, capsys) -> None:
    store = gate_store(tmp_path / "s", COMMITTED, machine=OTHER_MACHINE)
    assert main(["--baseline", str(DEFAULT_BASELINE), "--results", str(store)]) == 2
    captured = capsys.readouterr()
    assert "machine class differs (baseline: Intel(R) Xeon(R) Processor, 2 logical CPUs, arch not recorded; " \
           "this run: Some Other CPU, 64 logical CPUs, aarch64)" in captured.err
    assert "--timing-across-machines" in captured.err


def test_other_machine_class_with_the_flag_is_judged_and_says_cross_machine(tmp_path: Path, capsys) -> None:
    store = gate_store(tmp_path / "s", COMMITTED, machine=OTHER_MACHINE)
    assert main(["--baseline", str(DEFAULT_BASELINE), "--results", str(store), "--timing-across-machines"]) == 0
    out = capsys.readouterr().out
    assert "ACROSS MACHINE CLASSES" in out and "indicative only" in out and "gate: passed" in out


def test_rates_are_judged_on_any_machine(tmp_path: Path, capsys) -> None:
    store = gate_store(tmp_path / "s", COMMITTED, machine=OTHER_MACHINE, bpp_scale={"webp": 1.02})
    assert main(["--baseline", str(DEFAULT_BASELINE), "--results", str(store)]) == 1  # regressed outranks unjudged
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("webp"))
    assert FAIL in line and "BD-rate +2.00 %" in line
    assert "FAILED — webp regressed; cannot judge" in out


def test_update_baseline_records_the_machine_class(tmp_path: Path, capsys) -> None:
    store = gate_store(tmp_path / "s", COMMITTED, machine=OTHER_MACHINE)
    new = tmp_path / "new.json"
    assert main(["--baseline", str(new), "--update-baseline", "--results", str(store)]) == 0
    assert "machine class Some Other CPU, 64 logical CPUs, aarch64" in capsys.readouterr().out
    doc = read_baseline(new)
    assert doc["machine"] == OTHER_MACHINE
    assert doc["codecs"]["webp"]["bpp"] == pytest.approx(COMMITTED["codecs"]["webp"]["bpp"], rel=1e-12)
    assert main(["--baseline", str(new), "--results", str(store)]) == 0  # same class now: times judged, passed


THIS_CLASS = {"cpu_model": "Intel(R) Xeon(R) Processor", "logical_cpus": 2, "arch": "x86_64"}


def test_rows_from_two_machine_classes_are_not_timed_even_with_the_flag(tmp_path: Path, capsys) -> None:
    """Cells spread over a cluster: odd rounds on the baseline's class, even rounds elsewhere."""
    store = gate_store(tmp_path / "s", COMMITTED,
                       row_machine=lambda codec, k: THIS_CLASS if k % 2 else OTHER_MACHINE)
    for flags in ([], ["--timing-across-machines"]):
        assert main(["--baseline", str(DEFAULT_BASELINE), "--results", str(store), *flags]) == 2
        captured = capsys.readouterr()
        assert "measured on 2 machine classes" in captured.err and "Some Other CPU" in captured.err
        assert "CANNOT JUDGE" in captured.out
    new = tmp_path / "new.json"
    assert main(["--baseline", str(new), "--update-baseline", "--results", str(store)]) == 2
    assert "refusing to write a baseline from cells measured on 2 machine classes" in capsys.readouterr().err
    assert not new.exists()


def test_the_rows_machine_class_outranks_the_manifests(tmp_path: Path, capsys) -> None:
    """Workers may be other computers than the client: the rows say where the cells were timed."""
    store = gate_store(tmp_path / "s", COMMITTED, machine=OTHER_MACHINE, row_machine=lambda codec, k: THIS_CLASS)
    assert main(["--baseline", str(DEFAULT_BASELINE), "--results", str(store)]) == 0
    assert "gate: passed" in capsys.readouterr().out


def test_a_store_without_measurement_columns_exits_2_not_1(tmp_path: Path) -> None:
    """A store the gate does not expect (no dataset/resolution columns) is a failure to judge, not a regression;
    the results view names what is missing in one line (it was an 'unexpected failure' with a traceback)."""
    (tmp_path / "odd").mkdir()
    with sqlite3.connect(tmp_path / "odd" / "results.sqlite") as conn:
        conn.execute("CREATE TABLE measurements (id INTEGER PRIMARY KEY, codec TEXT)")
        conn.execute("CREATE TABLE runs (run_id INTEGER PRIMARY KEY, manifest TEXT)")
        conn.execute("INSERT INTO measurements (codec) VALUES ('webp')")
    done = python_module("bench.gate", "--baseline", str(DEFAULT_BASELINE), "--results", str(tmp_path / "odd"),
                         timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "has no column" in done.stderr and "not a lic-bench results store" in done.stderr


def test_an_unexpected_error_exits_2_not_1(monkeypatch, capsys) -> None:
    """A bug in the gate must never read as "regressed" (exit 1): it is a failure to judge."""
    import bench.gate.cli as gate_cli

    def broken(args, t0):
        raise KeyError("a bug")

    monkeypatch.setattr(gate_cli, "_judge", broken)
    assert main(["--baseline", str(DEFAULT_BASELINE)]) == 2
    assert "unexpected failure" in capsys.readouterr().err
