"""The regression gate on real runs: it passes an unchanged run and fails real, injected regressions.

A small gate benchmark (JPEG 4:2:0, JPEG 2000 and JPEG 4:4:4 over their whole ladders, 256×256 crops
of the two large synthetic photo-like images of conftest.py, through ``--dataset``; 3 rounds) is run
three times through the real CLI: to write a baseline, unchanged, and with three regressions at
once — JPEG 4:2:0 without optimised Huffman tables (really more bytes for the same pixels),
JPEG 2000 through an adapter that really decodes every stream four times, and JPEG 4:4:4 through
one that waits 50 ms before each decode (a sub-millisecond decode: its wall time grows tens of
times, its CPU time barely — the slowdown CPU time alone cannot see). Each codec must fail for its
own reason.

No verdict here may depend on how loaded the machine is: the runs are judged with
``--time-threshold`` :data:`TIME_THRESHOLD` (+100 % CPU time, and so +200 % wall time), and the
injected slowdowns are far beyond it (+300 % CPU time: under load a 2× injection read +69 to
+106 %, so 4× reads at least about +240 %; the 50 ms wait: +2,000 % wall time or more), while
unchanged codecs stay far below it (within ±6 % CPU time and +20 % wall time, see bench.gate).
Load would have to halve or double a measured ratio to change any verdict. The default threshold
(0.25) is a choice for real runs; the comparison rules themselves are tested below as pure
functions.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.gate import (GATE_DATASET, YARDSTICK, CodecSummary, GateBenchmark, GateError, Verdict, baseline_document,
                        compare, summarise, time_change)
from bench.gate.judge import WALL_MARGIN, format_table
from bench.store import read_measurements

PROJECT = Path(__file__).resolve().parents[1]
CODECS = ("jpeg-420", "jpeg2000", "jpeg-444")
IMAGES = "photo1,photo2"
#: The decode-time threshold the runs are judged with (see the module docstring).
TIME_THRESHOLD = 1.0


@pytest.fixture(scope="module")
def gate(run_python, synthetic_images: Path):
    """``python -m bench.gate ARGS`` with ``$BENCH_DATA_DIR`` holding no Kodak."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return run_python("bench.gate", *args, data_dir=synthetic_images.parent)
    return run


def _codecs_dir(folder: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """Copies of the project's JPEG configurations, with ``{codec: (old line, new line)}`` applied."""
    folder.mkdir()
    for name in CODECS:
        text = (PROJECT / "codecs" / f"{name}.toml").read_text()
        if name in edits:
            old, new = edits[name]
            assert old in text, f"{name}.toml no longer holds {old!r}"
            text = text.replace(old, new)
        (folder / f"{name}.toml").write_text(text)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, gate, synthetic_images: Path) -> dict[str, object]:
    root = tmp_path_factory.mktemp("gate")
    base = _codecs_dir(root / "base", {})
    regressed = _codecs_dir(root / "regressed", {
        "jpeg-420": ("optimize = true", "optimize = false"),
        "jpeg2000": ('adapter = "jpeg2000"', 'adapter = "tests.support.slow_codecs:RepeatDecodedJpeg2000"'),
        "jpeg-444": ('adapter = "jpeg"', 'adapter = "tests.support.slow_codecs:SleepyJpeg"'),
    })
    baseline = root / "baseline.json"
    out: dict[str, object] = {"root": root, "baseline": baseline}
    out["update"] = gate("--baseline", str(baseline), "--update-baseline", "--codecs", ",".join(CODECS),
                         "--images", IMAGES, "--crop", "256x256", "--rounds", "3", "--codecs-dir", str(base), "--keep",
                         str(root / "s-base"), "--dataset", str(synthetic_images))
    assert out["update"].returncode == 0, out["update"].stderr
    for name, codecs in (("unchanged", base), ("regressed", regressed)):
        out[name] = gate("--baseline", str(baseline), "--codecs-dir", str(codecs), "--keep", str(root / f"s-{name}"),
                         "--json", str(root / f"{name}.json"), "--dataset", str(synthetic_images),
                         "--time-threshold", str(TIME_THRESHOLD))
    return out


def _verdicts(runs: dict, name: str) -> dict[str, dict]:
    return {v["codec"]: v for v in json.loads((runs["root"] / f"{name}.json").read_text())}


def test_update_baseline_says_so_and_writes_ratios_not_seconds(runs: dict) -> None:
    assert "BASELINE REWRITTEN" in runs["update"].stdout
    doc = json.loads(runs["baseline"].read_text())
    assert doc["benchmark"]["codecs"] == list(CODECS) and doc["benchmark"]["images"] == IMAGES.split(",")
    for codec in CODECS:
        entry = doc["codecs"][codec]
        assert len(entry["bpp"]) == len(entry["psnr_rgb"]) == 6
        assert len(entry["cell_ratios"]) == 6 * 2 and all(v > 0 for v in entry["cell_ratios"].values())
        assert entry["timer"] == "wall" and entry["cell_wall_ratios"].keys() == entry["cell_ratios"].keys()
        assert all(v > 0 for v in entry["cell_wall_ratios"].values())
        assert "dec_time_s" not in entry  # only ratios to the yardstick per codec


def test_unchanged_run_passes(runs: dict) -> None:
    done = runs["unchanged"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate: passed" in done.stdout
    for v in _verdicts(runs, "unchanged").values():
        assert v["status"] == "pass", v
        assert v["bd_rate_pct"] == pytest.approx(0.0, abs=1e-9)  # deterministic encoders: the same curve
        assert abs(v["time_change"]) < TIME_THRESHOLD and abs(v["wall_change"]) < WALL_MARGIN * TIME_THRESHOLD


def test_injected_rate_regression_is_real_and_fails(runs: dict) -> None:
    base = read_measurements(runs["root"] / "s-base")
    worse = read_measurements(runs["root"] / "s-regressed")
    key = ["rate_label", "image", "round"]  # one row per cell and round
    b = base[base.codec == "jpeg-420"].set_index(key)
    w = worse[worse.codec == "jpeg-420"].set_index(key).loc[b.index]
    assert ((w["bytes"] / b["bytes"]) >= 1.02).all()  # every stream grew ...
    assert (w["psnr_rgb"] == b["psnr_rgb"]).all()  # ... for exactly the same pixels
    assert w["bytes"].sum() / b["bytes"].sum() >= 1.03
    done = runs["regressed"]
    assert done.returncode == 1 and "FAILED" in done.stdout
    v = _verdicts(runs, "regressed")["jpeg-420"]
    assert v["status"] == "FAIL" and v["bd_rate_pct"] > 3.0
    assert len(v["reasons"]) == 1 and v["reasons"][0].startswith("BD-rate +")  # not also a time failure
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("jpeg-420"))
    assert "FAIL" in line and f"{v['bd_rate_pct']:+.2f} %" in line


def test_injected_decode_slowdown_fails(runs: dict) -> None:
    v = _verdicts(runs, "regressed")["jpeg2000"]
    assert v["status"] == "FAIL"
    assert v["bd_rate_pct"] == pytest.approx(0.0, abs=1e-9)  # same bitstream, same pixels
    # decoding four times: about +300 % CPU time (and wall time, which may fail as well); the run was
    # judged at +100 %, so this is a failure a loaded machine cannot turn into a pass
    assert v["time_change"] > TIME_THRESHOLD
    assert v["reasons"][0].startswith("decode +") and "(CPU time" in v["reasons"][0]
    assert all(r.startswith("decode +") for r in v["reasons"])
    assert "jpeg2000" in runs["regressed"].stdout.split("FAILED")[1]


def test_injected_wait_fails_on_wall_time(runs: dict) -> None:
    v = _verdicts(runs, "regressed")["jpeg-444"]
    assert v["status"] == "FAIL"
    assert v["bd_rate_pct"] == pytest.approx(0.0, abs=1e-9)  # same bitstream, same pixels
    # 50 ms on a decode of about a millisecond: tens of times the wall time, far beyond the +200 % judged
    assert v["wall_change"] > WALL_MARGIN * TIME_THRESHOLD
    assert any(r.startswith("decode +") and "(wall time" in r for r in v["reasons"]), v["reasons"]
    assert "jpeg-444" in runs["regressed"].stdout.split("FAILED")[1]


def test_results_option_compares_a_kept_store(runs: dict, gate) -> None:
    again = gate("--baseline", str(runs["baseline"]), "--results", str(runs["root"] / "s-regressed"),
                 "--json", str(runs["root"] / "again.json"), "--time-threshold", str(TIME_THRESHOLD))
    assert again.returncode == 1
    assert json.loads((runs["root"] / "again.json").read_text()) == json.loads(
        (runs["root"] / "regressed.json").read_text())  # the comparison is a pure function of the store


def test_gate_errors_exit_2(runs: dict, tmp_path: Path, gate, synthetic_images: Path) -> None:
    missing = gate("--baseline", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "create one with --update-baseline" in missing.stderr
    redefine = gate("--baseline", str(runs["baseline"]), "--codecs", "webp")
    assert redefine.returncode == 2 and "the baseline defines the benchmark" in redefine.stderr
    no_kodak = gate("--baseline", str(runs["baseline"]))  # $BENCH_DATA_DIR has no kodak/
    assert no_kodak.returncode == 2 and "the gate runs on Kodak" in no_kodak.stderr
    (tmp_path / "empty").mkdir()
    empty = gate("--baseline", str(runs["baseline"]), "--dataset", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "holds no images" in empty.stderr
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / "photo1.png").write_bytes((synthetic_images / "photo1.png").read_bytes())
    lacking = gate("--baseline", str(runs["baseline"]), "--dataset", str(elsewhere))
    assert lacking.returncode == 2 and "['photo2'] not found in" in lacking.stderr
    # A store without yardstick cells cannot be judged on time.
    store = runs["root"] / "s-base"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    import sqlite3

    with sqlite3.connect(store / "results.sqlite") as src, sqlite3.connect(foreign / "results.sqlite") as dst:
        src.backup(dst)
        dst.execute("DELETE FROM measurements WHERE codec = 'gate-yardstick'")
    no_yardstick = gate("--baseline", str(runs["baseline"]), "--results", str(foreign))
    assert no_yardstick.returncode == 2 and "no yardstick" in no_yardstick.stderr


# --- the comparison rules on their own (pure functions) ----------------------------------------

def _summary(bpp, psnr, ratios, errors=()) -> CodecSummary:
    return CodecSummary([f"q{i}" for i in range(len(bpp))], list(bpp), list(psnr), float(sorted(ratios.values())[0]),
                        dict(ratios), len(ratios), errors=list(errors))


BPP, PSNR = [0.25, 0.5, 1.0, 2.0], [28.0, 31.0, 34.0, 37.0]
CELLS = {"q0|a": 1.0, "q1|a": 2.0, "q2|a": 3.0, "q3|a": 4.0}


def _baseline(**codecs: CodecSummary) -> dict:
    return {"codecs": {c: {"bpp": s.bpp, "psnr_rgb": s.psnr_rgb, "dec_time_ratio": s.dec_time_ratio,
                           "cell_ratios": s.cell_ratios} for c, s in codecs.items()}}


def test_compare_thresholds_and_missing_codecs() -> None:
    base = _baseline(a=_summary(BPP, PSNR, CELLS), b=_summary(BPP, PSNR, CELLS), gone=_summary(BPP, PSNR, CELLS))
    current = {
        "a": _summary([x * 1.004 for x in BPP], PSNR, {k: v * 1.2 for k, v in CELLS.items()}),  # +0.4 %, +20 %
        "b": _summary([x * 1.006 for x in BPP], PSNR, {k: v * 1.3 for k, v in CELLS.items()}),  # +0.6 %, +30 %
        "new": _summary(BPP, PSNR, CELLS),
    }
    verdicts = {v.codec: v for v in compare(base, current, bd_threshold=0.5, time_threshold=0.25)}
    assert verdicts["a"].status == "pass" and verdicts["a"].bd_rate_pct == pytest.approx(0.4, abs=1e-9)
    assert verdicts["a"].time_change == pytest.approx(0.2)
    assert verdicts["b"].status == "FAIL" and len(verdicts["b"].reasons) == 2
    assert verdicts["gone"].status == "UNJUDGED" and verdicts["gone"].reasons == ["not measured in this run"]
    assert verdicts["new"].status == "UNJUDGED"  # cannot judge a codec the baseline lacks


def _with_images(summary: CodecSummary, factors: dict[str, float]) -> CodecSummary:
    """Per-image points: image i at the baseline curve with its rates times factors[i]."""
    summary.image_points = {img: {"rate_label": summary.rate_label, "bpp": [b * f for b in BPP],
                                  "psnr_rgb": list(summary.psnr_rgb)} for img, f in factors.items()}
    return summary


def test_compare_gives_bd_rate_intervals_over_the_images() -> None:
    base = _baseline(a=_summary(BPP, PSNR, CELLS), b=_summary(BPP, PSNR, CELLS))
    current = {"a": _with_images(_summary([x * 1.004 for x in BPP], PSNR, CELLS), {"i1": 1.004, "i2": 1.004}),
               "b": _with_images(_summary([x * 1.01 for x in BPP], PSNR, CELLS), {"i1": 1.0, "i2": 1.0, "i3": 1.03})}
    verdicts = {v.codec: v for v in compare(base, current, bd_threshold=5.0)}
    a, b = verdicts["a"], verdicts["b"]
    assert (a.bd_rate_low, a.bd_rate_high) == pytest.approx((0.4, 0.4), abs=1e-6)  # the same saving on every image
    assert b.bd_rate_low == pytest.approx(0.0, abs=1e-6) and b.bd_rate_high == pytest.approx(3.0, abs=1e-6)
    line = next(ln for ln in format_table(list(verdicts.values())).splitlines() if ln.startswith("b "))
    assert re.search(r"\+1\.00 % \[[-+]0\.00, \+3\.00\]", line), line
    (plain,) = compare(_baseline(a=_summary(BPP, PSNR, CELLS)), {"a": _summary(BPP, PSNR, CELLS)})
    assert math.isnan(plain.bd_rate_low)  # no per-image points: no interval, and none is printed
    assert "[" not in format_table([plain]).splitlines()[-1]


def test_time_change_is_the_median_over_common_cells() -> None:
    now = dict(CELLS, **{"q3|a": 40.0})  # one disturbed cell (10×) does not move the median
    change, n = time_change(CELLS, now)
    assert n == 4 and change == pytest.approx(0.0)
    assert math.isnan(time_change(CELLS, {"x|y": 1.0})[0])


def test_compare_fails_codec_with_errors_and_rejects_negative_thresholds() -> None:
    base = _baseline(a=_summary(BPP, PSNR, CELLS))
    broken = {"a": _summary([], [], {"q0|a": 1.0}, errors=["q1/kodim04: codec error: boom"])}
    (v,) = compare(base, broken)
    assert v.status == "FAIL" and "codec error: boom" in v.reasons[0]
    with pytest.raises(GateError, match="thresholds"):
        compare(base, broken, bd_threshold=-1)


# --- decode time: CPU and wall (CUDA events on a GPU), judged from controlled numbers ------------

UNIT = GateBenchmark(codecs=("a",), images=("i1", "i2"), crop="64x64", rounds=3)
LABELS, MS = ("q1", "q2", "q3"), 1e-3


def _frame(cpu_ms: float, wall_ms: float, device: str = "cpu", disturb: dict | None = None) -> pd.DataFrame:
    """Gate rows of UNIT: the yardstick decodes in 1 ms (CPU and wall), codec ``a`` in ``cpu_ms`` of CPU
    time and ``wall_ms`` of wall time (CUDA-event time on ``device`` 'cuda'); ``disturb`` multiplies the
    wall time of ``(codec, round)`` rows, as other load would."""
    rows = []
    for k in range(1, UNIT.rounds + 1):
        for image in UNIT.images:
            for codec, labels, cpu, wall, dev in ((YARDSTICK, ("quality=75",), 1.0, 1.0, "cpu"),
                                                 ("a", LABELS, cpu_ms, wall_ms, device)):
                for i, label in enumerate(labels):
                    slow = (disturb or {}).get((codec, k), 1.0)
                    rows.append({"codec": codec, "status": "ok", "error": None, "rate_label": label, "image": image,
                                 "round": k, "dataset": GATE_DATASET, "resolution": UNIT.crop, "bytes": 100 * (i + 1),
                                 "bpp": 0.5 * (i + 1), "psnr_rgb": 30.0 + 3 * i, "codec_version": "1",
                                 "config_hash": "h", "device": dev,
                                 "timer": "cuda_events" if dev.startswith("cuda") else "perf_counter",
                                 "dec_cpu_s": cpu * MS, "dec_time_s": wall * slow * MS})
    return pd.DataFrame(rows)


def _judge(base: pd.DataFrame, now: pd.DataFrame, strip_wall: bool = False) -> Verdict:
    doc = baseline_document(UNIT, summarise(base, UNIT), base, {})
    if strip_wall:  # a baseline written before wall time was judged
        for entry in doc["codecs"].values():
            del entry["cell_wall_ratios"], entry["dec_wall_ratio"]
    (verdict,) = compare(doc, summarise(now, UNIT))
    return verdict


def test_a_decode_that_waits_fails_on_wall_time_though_its_cpu_time_hardly_moves() -> None:
    """The gate's former blind spot: +20 ms of waiting on a 6 ms decode (wall ×4.3, CPU ×1.1)."""
    v = _judge(_frame(6.0, 6.0), _frame(6.6, 26.0))
    assert v.time_change == pytest.approx(0.10) and v.wall_change == pytest.approx(20 / 6)
    assert v.status == "FAIL" and len(v.reasons) == 1
    assert v.reasons[0].startswith("decode +333% slower relative to the yardstick (wall time"), v.reasons
    assert "+333.3%" in format_table([v]).splitlines()[-1]


def test_wall_time_takes_the_fastest_round_so_load_in_some_rounds_passes() -> None:
    # Round 1: the codec's decodes span scheduler slices (×3); round 2: the yardstick's do (×3).
    disturbed = _frame(6.0, 6.0, disturb={("a", 1): 3.0, (YARDSTICK, 2): 3.0})
    v = _judge(_frame(6.0, 6.0), disturbed)
    assert v.status == "pass", v.reasons
    assert v.wall_change == pytest.approx(0.0) and v.time_change == pytest.approx(0.0)
    # The same load with a real wait in every round still fails.
    waiting = _frame(6.0, 26.0, disturb={("a", 1): 3.0, (YARDSTICK, 2): 3.0})
    assert _judge(_frame(6.0, 6.0), waiting).status == "FAIL"


def test_wall_threshold_is_twice_the_time_threshold() -> None:
    assert _judge(_frame(6.0, 6.0), _frame(6.0, 6.0 * 1.45)).status == "pass"  # +45 % < +50 %
    assert _judge(_frame(6.0, 6.0), _frame(6.0, 6.0 * 1.55)).status == "FAIL"  # +55 % > +50 %


def test_cuda_cells_are_judged_on_cuda_event_time_not_cpu_time() -> None:
    base = _frame(2.0, 4.0, device="cuda:0")
    busy_host = _judge(base, _frame(6.0, 4.0, device="cuda:0"))  # the host spins 3× longer: says nothing
    assert busy_host.status == "pass" and busy_host.timer == "CUDA events"
    assert math.isnan(busy_host.time_change) and busy_host.wall_change == pytest.approx(0.0)
    assert any("CPU time not judged" in n for n in busy_host.notes)
    slower = _judge(base, _frame(2.0, 8.0, device="cuda:0"))  # the GPU work takes twice as long
    assert slower.status == "FAIL" and "(CUDA events time" in slower.reasons[0], slower.reasons
    assert "(CUDA)" in format_table([slower]).splitlines()[-1]
    mixed = _judge(_frame(2.0, 4.0), _frame(2.0, 4.0, device="cuda:0"))  # baseline on CPU, run on CUDA
    assert mixed.status == "UNJUDGED" and "not comparable" in mixed.reasons[0]


def test_a_baseline_without_wall_ratios_says_wall_time_was_not_judged() -> None:
    v = _judge(_frame(6.0, 6.0), _frame(6.0, 26.0), strip_wall=True)
    assert v.status == "pass" and math.isnan(v.wall_change)
    assert any("wall time not judged: the baseline has no wall-time ratios" in n for n in v.notes)
