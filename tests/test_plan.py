"""Planning (bench/plan.py): rounds are part of a cell's key, round 1 keeps the keys stores were
written with, and the Kodak pixel check reads only the images that still have cells to run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import cli, plan
from bench.cells import Cell
from bench.codecs.base import CodecConfig, RatePoint
from bench.store import read_measurements

JPEG = CodecConfig("jpeg-420", "jpeg", {"subsampling": "4:2:0"}, (RatePoint("quality=50", {"quality": 50}),))
ARGS = (JPEG, JPEG.rates[0], "kodak", "kodim01", "/x/kodim01.png", "ab" * 32, "native", "cpu")


def test_round_one_keeps_the_key_of_a_cell_from_before_rounds() -> None:
    # the literal is the key the code before rounds computed for these arguments (commit b87f29a)
    assert Cell(*ARGS).key == "jpeg-420|quality=50|kodak/kodim01|native|cpu|c2c2b85a5791"
    assert Cell(*ARGS).identity()["round"] == 1


def test_rounds_are_part_of_the_key_and_of_the_row() -> None:
    keys = [Cell(*ARGS, round=k).key for k in (1, 2, 3)]
    assert len(set(keys)) == 3
    assert keys[1] == "jpeg-420|quality=50|kodak/kodim01|native|cpu|round 2|d4f269ea5ae2"
    assert Cell(*ARGS, round=3).identity()["round"] == 3


def test_plan_lays_out_every_cell_once_per_round(synthetic_images: Path) -> None:
    spec = plan.PlanSpec(dataset=str(synthetic_images), images=2, ladder="none", rounds=3)
    cells, notes = plan.plan(spec, [JPEG])
    assert notes == []
    assert [c.round for c in cells] == [1, 1, 2, 2, 3, 3]  # round by round
    assert len({c.key for c in cells}) == 6
    assert {(c.image, c.rate.label) for c in cells} == {("photo1", "quality=50"), ("photo2", "quality=50")}


def test_image_notes_check_only_kodak_cells(synthetic_images: Path, tmp_path: Path) -> None:
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    shutil.copy(synthetic_images / "photo3.png", kodak / "kodim01.png")  # not Kodak's pixels
    cell = Cell(JPEG, JPEG.rates[0], "kodak", "kodim01", str(kodak / "kodim01.png"), "x", "native", "cpu")
    other = Cell(JPEG, JPEG.rates[0], "synthetic", "photo3", str(synthetic_images / "photo3.png"), "x", "native", "cpu")
    assert plan.image_notes([cell, cell, other]) == ["kodim01.png: decoded pixels differ from the published Kodak image"]
    assert plan.image_notes([other]) == []


def test_kodak_check_runs_only_for_images_with_cells_to_run(synthetic_images: Path, tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    """A real ``bench run`` on a 'Kodak' folder of two non-Kodak images: the first run (one image)
    flags only that image, the second only the image still to run, the third (nothing to run) none."""
    kodak = tmp_path / "data" / "kodak"
    kodak.mkdir(parents=True)
    shutil.copy(synthetic_images / "photo3.png", kodak / "kodim01.png")
    shutil.copy(synthetic_images / "photo4.png", kodak / "kodim02.png")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "res"
    run = ["run", "--codecs", "jpeg-420", "--rates", "quality=50", "--dataset", "kodak", "--ladder", "none",
           "--jobs", "1", "--threads", "1", "--warmup", "0", "--repeats", "1", "--quiet", "--out", str(out)]
    flagged = []
    for extra in (["--images", "1"], [], []):
        assert cli.main(run + extra) == 0
        err = capsys.readouterr().err
        flagged.append(sorted(n for n in ("kodim01.png", "kodim02.png") if f"{n}: decoded pixels differ" in err))
    assert flagged == [["kodim01.png"], ["kodim02.png"], []]
    assert sorted(read_measurements(out)["image"]) == ["kodim01", "kodim02"]


@pytest.mark.parametrize("option, value, expected", [
    ("--rounds", "0", "--rounds 0: must be at least 1"),
    ("--scheduler", "tcp://localhost:8786", "--executor local takes no --scheduler"),
])
def test_bad_round_and_executor_options_are_one_line(option, value, expected, tmp_path, capsys) -> None:
    assert cli.main(["run", "--codecs", "jpeg-420", option, value, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
    assert not (tmp_path / "r").exists()  # refused before the store is made
