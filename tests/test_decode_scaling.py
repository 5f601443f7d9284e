"""decode_scaling: ladder cells of a session into a store, figures read back from it, and the report's
Decode scaling part (msp-tiny against its serial baseline mbt2018-tiny at two tiny sizes)."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from bench import decode_scaling as ds
from bench.store import read_measurements, read_runs
from tests.conftest import photo_like

SIZES = "64x64,128x96"


def test_old_flags_still_parse() -> None:
    args = ds.build_parser().parse_args([
        "--image", "x.png", "--sizes", "256x256,512x512", "--mbt-sizes", "256x256", "--codecs", "mbt2018,msp-fast",
        "--codecs-dir", "codecs", "--repeats", "2", "--device", "cpu", "--threads", "1", "--time-lof-profiles",
        "--out", "r.json"])
    assert (args.image, args.sizes, args.mbt_sizes, args.codecs) == (Path("x.png"), "256x256,512x512", "256x256",
                                                                     "mbt2018,msp-fast")
    assert (args.codecs_dir, args.repeats, args.device, args.threads) == (Path("codecs"), 2, "cpu", 1)
    assert args.time_lof_profiles and args.out == Path("r.json")
    assert args.results == Path(ds.DEFAULT_RESULTS)  # new: the store the cells run into
    assert ds.parse_sizes("256x256, 2048X1365") == [(256, 256), (2048, 1365)]
    assert not hasattr(ds, "fit_exponent")  # the one power-law fit is bench.analysis.scaling's


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "256*256"], "is not WxH"),
    (["--codecs", "msp-tinyy"], "unknown codec(s): msp-tinyy"),
    (["--repeats", "0"], "--repeats 0: must be at least 1"),
    (["--image", "missing.png"], "no such image file"),
])
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(tmp_path: Path, capsys, argv, message) -> None:
    Image.fromarray(photo_like(96, 128, seed=3)).save(tmp_path / "src.png")
    image = [] if "--image" in argv else ["--image", str(tmp_path / "src.png")]
    assert ds.main([*image, "--codecs", "msp-tiny", "--results", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> tuple[Path, dict]:
    """One run of msp-tiny and mbt2018-tiny at two tiny sizes, then the same command again."""
    root = tmp_path_factory.mktemp("decode-scaling")
    Image.fromarray(photo_like(96, 128, seed=7)).save(root / "src.png")
    argv = ["--image", str(root / "src.png"), "--sizes", SIZES, "--mbt-sizes", SIZES, "--codecs",
            "mbt2018-tiny,msp-tiny", "--results", str(root / "results"), "--out", str(root / "figures.json")]
    assert ds.main(argv) == 0
    first = json.loads((root / "figures.json").read_text())
    runs = len(read_runs(root / "results"))
    assert ds.main(argv) == 0  # resumed: every cell is stored, nothing runs again
    assert len(read_runs(root / "results")) == runs == 2  # one session per size list (serial, others)
    assert json.loads((root / "figures.json").read_text()) == first
    return root, first


def test_cells_are_stored_ladder_rows_with_their_steps(scaled) -> None:
    root, _ = scaled
    rows = read_measurements(root / "results")
    assert sorted(zip(rows["codec"], rows["resolution"])) == [
        ("mbt2018-tiny", "128x96"), ("mbt2018-tiny", "64x64"), ("msp-tiny", "128x96"), ("msp-tiny", "64x64")]
    assert set(rows["dataset"]) == {f"ladder:{root.name}"} and set(rows["image"]) == {"src"}
    assert (rows["dec_time_s"] > 0).all() and (rows["dec_cpu_s"] > 0).all() and (rows["threads"] == 1).all()
    steps = {(c, r): json.loads(e)["sequential_steps"] for c, r, e in zip(rows["codec"], rows["resolution"], rows["extras"])}
    assert steps[("msp-tiny", "64x64")] == steps[("msp-tiny", "128x96")] == 7  # constant
    # one step per latent position (+1): 64×64 → 4×4 latents, 128×96 padded to 128×128 → 8×8
    assert (steps[("mbt2018-tiny", "64x64")], steps[("mbt2018-tiny", "128x96")]) == (1 + 16, 1 + 64)
    manifest = json.loads(read_runs(root / "results")["manifest"].iloc[0])
    assert " -m bench.decode_scaling --image " in manifest["command"]
    assert manifest["decode_scaling"]["sizes"] == SIZES and manifest["threads"] == 1


def test_figures_are_read_back_from_the_store(scaled) -> None:
    root, found = scaled
    rows = read_measurements(root / "results").set_index(["codec", "resolution"])
    fits = {f["codec"]: f for f in found["fits"]}
    assert fits["msp-tiny"]["steps_k"] == 0.0
    assert fits["mbt2018-tiny"]["steps_k"] == pytest.approx(math.log(65 / 17) / math.log(128 * 96 / 64 ** 2))
    wall = {c: rows.loc[(c, "128x96"), "dec_time_s"] for c in ("msp-tiny", "mbt2018-tiny")}
    small = {c: rows.loc[(c, "64x64"), "dec_time_s"] for c in ("msp-tiny", "mbt2018-tiny")}
    assert fits["msp-tiny"]["dec_time_k"] == pytest.approx(
        math.log(wall["msp-tiny"] / small["msp-tiny"]) / math.log(128 * 96 / 64 ** 2))
    (speed,) = found["speedups"]
    assert (speed["codec"], speed["reference"], speed["resolution"]) == ("msp-tiny", "mbt2018-tiny", "128x96")
    assert speed["wall_speedup"] == pytest.approx(wall["mbt2018-tiny"] / wall["msp-tiny"])
    cpu = {c: rows.loc[(c, "128x96"), "dec_cpu_s"] for c in ("msp-tiny", "mbt2018-tiny")}
    assert speed["cpu_speedup"] == pytest.approx(cpu["mbt2018-tiny"] / cpu["msp-tiny"])


def test_report_shows_steps_and_speed_ups_from_the_store(scaled, run_python) -> None:
    root, found = scaled
    done = run_python("bench.report", str(root / "results"), "--out", str(root / "report"))
    assert done.returncode == 0, done.stderr
    md = (root / "report" / "report.md").read_text()
    part = md.split("### Decode scaling", 1)[1].split("\n## ", 1)[0]
    (msp,) = [line for line in part.splitlines() if line.startswith("| msp-tiny | cpu |")]
    (mbt,) = [line for line in part.splitlines() if line.startswith("| mbt2018-tiny | cpu |")]
    assert "| 7 | 0.00 |" in msp and "| 17 · 65 |" in mbt
    (speed,) = [line for line in part.splitlines() if line.startswith("| msp-tiny | mbt2018-tiny |")]
    assert f"×{found['speedups'][0]['wall_speedup']:.1f}" in speed and f"×{found['speedups'][0]['cpu_speedup']:.1f}" in speed
    for name in ("decode_scaling_points", "decode_scaling_fits", "decode_speedups"):
        assert (root / "report" / "data" / f"{name}.csv").is_file()


def test_a_store_without_a_serial_decoder_has_no_speed_ups(scaled, tmp_path: Path) -> None:
    from bench.analysis.scaling import decode_speedups
    from bench.results import load

    root, _ = scaled
    copy = tmp_path / "results.sqlite"
    copy.write_bytes((root / "results" / "results.sqlite").read_bytes())
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM measurements WHERE codec = 'mbt2018-tiny'")
    assert decode_speedups(load(copy).ladder).empty


def test_lof_variants_are_the_configurations_that_name_a_selected_base() -> None:
    """The LOF variants left out (or timed with --time-lof-profiles) come from the TOMLs' lof_of."""
    args = ds.build_parser().parse_args(["--codecs", "msp-tiny,msp-base", "--codecs-dir", "codecs"])
    configs, aliases, _, lof_off = ds._configs(args)
    assert aliases == {"msp-tiny-lof": "msp-tiny", "msp-base-lof": "msp-base"}
    assert {c.name for c in configs} == {"msp-tiny", "msp-base"} and lof_off == []
    args = ds.build_parser().parse_args(["--codecs", "msp-tiny", "--codecs-dir", "codecs", "--time-lof-profiles"])
    configs, aliases, _, lof_off = ds._configs(args)
    assert aliases == {} and {c.name for c in configs} == {"msp-tiny", "msp-tiny-lof"} and lof_off == ["msp-tiny-lof"]
