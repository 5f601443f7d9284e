"""Metric cross-checks as a stored measurement: bench.tools.metrics_check writes ``metric_checks`` rows,
the results view reads them, the report's "Metric cross-checks" section shows them, and a store
without the table still reports."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from bench.store import read_metric_checks
from bench.tools.metrics_check import main
from tests.conftest import photo_like


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory, run_python):
    """A real benchmark store (jpeg-420 on two small photographs), made once for the module."""
    from tests.test_cli import write_photos

    root = tmp_path_factory.mktemp("bench")
    photos = write_photos(root / "tiny")
    out = root / "results"
    done = run_python("bench", "run", "--codecs", "jpeg-420", "--dataset", str(photos), "--ladder", "none",
                      "--repeats", "1", "--warmup", "0", "--memory", "off", "--jobs", "1", "--out", str(out),
                      "--quiet", timeout=900)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def kodak_like(tmp_path, monkeypatch):
    """``$BENCH_DATA_DIR/kodak`` holding two synthetic photographs (the tool reads Kodak by name)."""
    folder = tmp_path / "data" / "kodak"
    folder.mkdir(parents=True)
    for seed, name in ((1, "pic1"), (2, "pic2")):
        Image.fromarray(photo_like(176, 192, seed=seed)).save(folder / f"{name}.png")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    return folder


def test_tool_stores_one_row_per_metric_and_image(kodak_like, tmp_path, capsys):
    out = tmp_path / "checks"
    assert main(["--images", "pic1,pic2", "--metrics", "psnr-rgb,psnr-y,ms-ssim", "--results", str(out)]) == 0
    assert "stored" in capsys.readouterr().err
    rows = read_metric_checks(out)
    assert sorted(zip(rows["metric"], rows["image"])) == sorted(
        (m, i) for m in ("psnr-rgb", "psnr-y", "ms-ssim") for i in ("pic1", "pic2"))
    assert set(rows["distortion"]) == {"jpeg q50 (Pillow 4:2:0)"} and rows["run_id"].nunique() == 1
    assert rows["ours"].notna().all() and rows["theirs"].notna().all()
    assert np.allclose(rows["abs_diff"], (rows["ours"] - rows["theirs"]).abs())
    psnr = rows[rows["metric"].str.startswith("psnr")]
    assert (psnr["abs_diff"] < 1e-9).all()  # the same formula, two implementations
    assert (rows["wall_s"] > 0).all() and (rows["cpu_s"] >= 0).all()
    assert rows["implementation"].notna().all() and rows["second"].str.contains("scikit-image|piq").all()
    with sqlite3.connect(out / "results.sqlite") as conn:
        command, = conn.execute("SELECT command FROM runs").fetchone()
    assert command.startswith("python -m bench.tools.metrics_check --images pic1,pic2")
    # a second run adds its rows; the view shows the latest run of each metric
    assert main(["--images", "pic1", "--metrics", "psnr-rgb", "--results", str(out)]) == 0
    from bench.results import metric_check_rows

    shown = metric_check_rows(read_metric_checks(out))
    assert len(read_metric_checks(out)) == 7 and len(shown) == 5
    assert list(shown.loc[shown["metric"] == "psnr-rgb", "image"]) == ["pic1"]


def test_report_of_a_benchmark_store_shows_the_cross_checks(bench_store, kodak_like, tmp_path, run_python):
    store = tmp_path / "store"
    shutil.copytree(bench_store, store)
    assert main(["--images", "pic1", "--metrics", "psnr-rgb,ms-ssim", "--results", str(store)]) == 0
    done = run_python("bench.report", str(store), "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert "### Metric cross-checks" in md
    lines = [line for line in md.splitlines() if line.startswith(("| psnr-rgb |", "| ms-ssim |"))]
    assert len(lines) == 2 and "scikit-image" in lines[0] and "| 1 |" in lines[0]
    csv = (tmp_path / "report" / "data" / "metric_checks.csv").read_text().splitlines()
    assert len(csv) == 1 + 2 and "abs_diff" in csv[0]


def test_a_store_without_the_table_still_reports(bench_store, tmp_path, run_python):
    """An older store (no metric_checks table, written before it existed) reads and reports as before."""
    store = tmp_path / "old"
    shutil.copytree(bench_store, store)
    with sqlite3.connect(store / "results.sqlite") as conn:
        conn.execute("DROP TABLE metric_checks")
    assert read_metric_checks(store).empty
    done = run_python("bench.report", str(store), "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    assert "Metric cross-checks" not in (tmp_path / "report" / "report.md").read_text()
    with sqlite3.connect(store / "results.sqlite") as conn:  # the report only read it
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'metric_checks'").fetchone()


def test_a_store_of_cross_checks_only_gets_a_report_of_them(kodak_like, tmp_path, run_python):
    """The default --results of the tool is a store of its own: the results view refuses it as a
    benchmark store, naming the table, and the report shows the checks alone."""
    from bench.results import load

    out = tmp_path / "checks"
    assert main(["--images", "pic1", "--metrics", "psnr-rgb", "--results", str(out)]) == 0
    with pytest.raises(ValueError, match="it has metric_checks rows only: python -m bench.report shows them"):
        load(out)
    done = run_python("bench.report", str(out), "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert "holds only `metric_checks` rows" in md and "## Rate-distortion" not in md
    assert [line for line in md.splitlines() if line.startswith("| psnr-rgb |")], md
    assert len((tmp_path / "report" / "data" / "metric_checks.csv").read_text().splitlines()) == 1 + 1


@pytest.mark.parametrize("argv, message", [
    (["--metrics", "psnr-rbg"], "unknown metric(s) psnr-rbg"),
    (["--metrics", ","], "(none given)"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(kodak_like, tmp_path, capsys, argv, message):
    out = tmp_path / "checks"
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--results", str(out)])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_a_foreign_sqlite_file_is_refused_before_any_check(kodak_like, tmp_path, capsys):
    out = tmp_path / "other"
    out.mkdir()
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("CREATE TABLE notes (x)")
    with pytest.raises(SystemExit) as exc:
        main(["--images", "pic1", "--metrics", "psnr-rgb", "--results", str(out)])
    assert exc.value.code == 2 and "not a lic-bench results store" in capsys.readouterr().err


def test_a_failing_second_implementation_is_one_note_not_a_changed_name(kodak_like, tmp_path, monkeypatch):
    """A second implementation that fails (library missing) leaves its name as it is and says why once,
    in ``note``; it was appended to the name once per image (``… (failed: …) (failed: …)``)."""
    import bench.tools.metrics_check as mc

    def missing(original, distorted):
        raise ModuleNotFoundError("No module named 'other'")

    monkeypatch.setattr(mc, "second_implementations", lambda vmaf_float: {"psnr-rgb": ("other psnr", missing)})
    out = tmp_path / "checks"
    assert main(["--images", "pic1,pic2", "--metrics", "psnr-rgb", "--results", str(out)]) == 0
    rows = read_metric_checks(out)
    assert list(rows["second"]) == ["other psnr", "other psnr"]
    assert set(rows["note"]) == {"the second implementation failed: ModuleNotFoundError: No module named 'other'"}
    assert rows["theirs"].isna().all() and rows["abs_diff"].isna().all() and rows["ours"].notna().all()
