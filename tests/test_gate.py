"""The regression gate on real runs: it passes an unchanged run and fails real, injected regressions.

A small gate benchmark (JPEG 4:2:0 and JPEG 2000 over their whole ladders, 256×256 crops of the
two large synthetic photo-like images of conftest.py, through ``--dataset``; 3 rounds) is run three times
through the real CLI: to write a baseline, unchanged, and with two regressions at
once — JPEG 4:2:0 without optimised Huffman tables (really more bytes for the same pixels) and
JPEG 2000 through an adapter that really decodes every stream twice. Each codec must fail for its
own reason only. Timing tolerance comes from the ratio design (see bench.gate), not loose
thresholds.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from bench.gate import CodecSummary, GateError, compare, time_change
from bench.store import read_measurements

PROJECT = Path(__file__).resolve().parents[1]
CODECS = ("jpeg-420", "jpeg2000")
IMAGES = "photo1,photo2"


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
        "jpeg2000": ('adapter = "jpeg2000"', 'adapter = "tests.support.slow_codecs:TwiceDecodedJpeg2000"'),
    })
    baseline = root / "baseline.json"
    out: dict[str, object] = {"root": root, "baseline": baseline}
    out["update"] = gate("--baseline", str(baseline), "--update-baseline", "--codecs", ",".join(CODECS),
                         "--images", IMAGES, "--crop", "256x256", "--rounds", "3", "--codecs-dir", str(base), "--keep",
                         str(root / "s-base"), "--dataset", str(synthetic_images))
    assert out["update"].returncode == 0, out["update"].stderr
    for name, codecs in (("unchanged", base), ("regressed", regressed)):
        out[name] = gate("--baseline", str(baseline), "--codecs-dir", str(codecs), "--keep", str(root / f"s-{name}"),
                         "--json", str(root / f"{name}.json"), "--dataset", str(synthetic_images))
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
        assert "dec_time_s" not in entry  # only ratios to the yardstick per codec


def test_unchanged_run_passes(runs: dict) -> None:
    done = runs["unchanged"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate: passed" in done.stdout
    for v in _verdicts(runs, "unchanged").values():
        assert v["status"] == "pass", v
        assert v["bd_rate_pct"] == pytest.approx(0.0, abs=1e-9)  # deterministic encoders: the same curve
        assert abs(v["time_change"]) < 0.25


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
    assert v["time_change"] > 0.6  # decoding twice: about +100 %
    assert len(v["reasons"]) == 1 and v["reasons"][0].startswith("decode +")
    assert "jpeg2000" in runs["regressed"].stdout.split("FAILED")[1]


def test_results_option_compares_a_kept_store(runs: dict, gate) -> None:
    again = gate("--baseline", str(runs["baseline"]), "--results", str(runs["root"] / "s-regressed"),
                 "--json", str(runs["root"] / "again.json"))
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
