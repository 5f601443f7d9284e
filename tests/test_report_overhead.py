"""The report's suite-overhead table (issue 19, part 3): per codec, the cells' wall time against the
time of their timed calls, as stored."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from bench import cli
from bench.report.tables import overhead_table
from bench.store import read_measurements
from tests.conftest import photo_like


def test_overhead_is_cell_wall_over_the_timed_calls_per_codec() -> None:
    rows = pd.DataFrame({"codec": ["a", "a", "b", "c"], "device": ["cpu"] * 4,
                         "wall_s": [3.0, 5.0, 1.0, 2.0], "enc_time_s": [0.5, 1.0, 0.1, None],
                         "dec_time_s": [0.5, 1.0, 0.1, 0.2], "repeats": [2, 1, 5, 1]})
    table = overhead_table(rows).set_index("codec")
    assert list(table.index) == ["a", "b"]  # c has no encode time: nothing to compare
    assert table.loc["a", ["cells", "cell_wall_s", "timed_s"]].tolist() == [2, 8.0, 4.0]
    assert table.loc["a", "overhead"] == pytest.approx(2.0) and table.loc["b", "overhead"] == pytest.approx(1.0)
    assert overhead_table(rows.drop(columns="repeats")).empty


def test_the_report_shows_the_overhead_of_a_real_run(tmp_path) -> None:
    from bench.report.build import build_report

    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in (1, 2):
        Image.fromarray(photo_like(64, 64, seed)).save(photos / f"p{seed}.png")
    out = tmp_path / "r"
    assert cli.main(["run", "--codecs", "jpeg-420", "--dataset", str(photos), "--ladder", "none", "--repeats", "2",
                     "--memory", "off", "--rates", "quality=50", "--out", str(out)]) == 0
    rows = read_measurements(out)
    text = build_report(out, tmp_path / "report").markdown.read_text()
    assert "### Suite overhead" in text
    wall, timed = rows["wall_s"].sum(), ((rows["enc_time_s"] + rows["dec_time_s"]) * rows["repeats"]).sum()
    assert wall > timed > 0
    line = next(s for s in text.splitlines() if s.startswith("| jpeg-420 |") and f"| {wall / timed:.2f} |" in s)
    assert f"| {len(rows)} |" in line
