"""What a BD table leaves out, said in the report; and stores measured without the default metrics.

The store comes from the real CLI: the 2 large synthetic images × jpeg-420 and webp, measured with
``--metrics psnr-hvs-m,nlpd`` (the default set is always added). A copy with the default columns
emptied stands for a store measured by an older version with ``--metrics jpeg-ai`` alone.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench.analysis.bd import LowOverlapWarning, MIN_BOOTSTRAP_IMAGES, bd_table, mean_of_per_image_bd
from bench.analysis.bd.bootstrap import summarise
from bench.anchors import load_anchor
from bench.metrics.registry import DEFAULT, BY_NAME
from bench.report.bdsection import left_out_text

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_output(tmp_path_factory, run_python, synthetic_images: Path):
    root = tmp_path_factory.mktemp("omissions")
    codecs = root / "codecs"
    codecs.mkdir()
    for name in ("jpeg-420", "webp"):
        (codecs / f"{name}.toml").write_text((PROJECT / "codecs" / f"{name}.toml").read_text())
    out = root / "results"
    done = run_python("bench", "--codecs-dir", str(codecs), "run", "--codecs", "jpeg-420,webp", "--dataset",
                      str(synthetic_images), "--images", "2", "--ladder", "none", "--repeats", "1", "--jobs", "1",
                      "--metrics", "psnr-hvs-m,nlpd", "--out", str(out), data_dir=synthetic_images.parent)
    assert done.returncode == 0, done.stderr
    return out, done


@pytest.fixture(scope="module")
def old_store(run_output, tmp_path_factory) -> Path:
    """The store with every default-set column emptied: what ``--metrics jpeg-ai`` stored before."""
    store, _ = run_output
    copy = tmp_path_factory.mktemp("old") / "results"
    shutil.copytree(store, copy)
    columns = [c for name in DEFAULT for c in BY_NAME[name].columns]
    with sqlite3.connect(copy / "results.sqlite") as conn:
        conn.execute(f"UPDATE measurements SET {', '.join(f'{c} = NULL' for c in columns)}")
    return copy


def test_a_selection_without_the_default_set_still_measures_it(run_output) -> None:
    """--metrics psnr-hvs-m,nlpd keeps the default set: the run summary has its PSNR-RGB BD-rate (not
    'n/a (error)') and the rows their PSNR-RGB beside the chosen metrics."""
    from bench.store import read_measurements

    store, done = run_output
    printed = done.stdout + done.stderr
    assert "BD-rate" in printed and "n/a (error)" not in printed
    assert re.search(r"webp\s*│[^\n]*[+-]\d+\.\d %", printed), printed
    rows = read_measurements(store)
    assert rows[["psnr_rgb", "ms_ssim", "psnr_hvs_m", "nlpd"]].notna().all().all()


def test_store_without_psnr_rgb_reports_against_a_measured_codec(old_store: Path, tmp_path: Path, run_python) -> None:
    """Was: KeyError 'bd_rate_psnr_pct' in tables.tradeoff. The trade-off plot uses the first metric there is."""
    done = run_python("bench.report", str(old_store), "--anchor", "codec:jpeg-420", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(tmp_path / "r" / "data" / "tradeoff.csv")
    assert set(frame["codec"]) == {"jpeg-420", "webp"} and set(frame["bd_metric"]) == {"NLPD"}
    assert "Each codec at its BD-rate (NLPD, against `codec:jpeg-420`)" in (tmp_path / "r" / "report.md").read_text()


def test_published_anchor_sharing_no_quality_suggests_a_codec_anchor(old_store: Path, tmp_path: Path,
                                                                      run_python) -> None:
    done = run_python("bench.report", str(old_store), "--anchor", "kodak/vtm", "--dataset", "synthetic",
                      "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "has none of the qualities" in done.stderr and "--anchor codec:NAME" in done.stderr
    assert "jpeg-420, webp" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def published_report(run_output, tmp_path_factory, run_python) -> str:
    store, _ = run_output
    out = tmp_path_factory.mktemp("published")
    done = run_python("bench.report", str(store), "--anchor", "kodak/vtm", "--dataset", "synthetic", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return (out / "report.md").read_text()


def test_bd_tables_name_the_metrics_the_anchor_lacks(published_report: str) -> None:
    line = next(t for t in published_report.splitlines() if t.startswith("**Not in the BD tables:**"))
    for label in ("PSNR-Y", "PSNR-YUV", "MS-SSIM-Y", "NLPD", "PSNR-HVS-M"):
        assert label in line
    assert "PSNR-RGB" not in line and "`kodak/vtm`" in line


def test_jpeg_ai_summary_says_when_it_is_the_anchor_that_lacks_a_metric(published_report: str) -> None:
    section = published_report.split("### JPEG AI summary")[1].split("###")[0]
    assert "NLPD (the anchor lacks it" in section and "(`--anchor codec:NAME`)" in section
    assert "VIF (not measured)" in section and "--metrics jpeg-ai" in section
    assert "Run with the JPEG AI metric set to get it" not in section


def test_report_tables_show_the_overlap_and_define_it(published_report: str) -> None:
    header = next(t for t in published_report.splitlines() if t.startswith("| codec | device | BD-rate PSNR-RGB"))
    assert "| overlap PSNR-RGB |" in header
    assert "divided by the **shorter** curve's quality range" in published_report
    assert "FAU's `bjontegaard` package divides by the *union*" in published_report


def test_intervals_over_fewer_than_8_images_are_marked(published_report: str) -> None:
    row = next(t for t in published_report.splitlines() if t.startswith("| webp | cpu |") and "[" in t)
    assert "]†" in row
    assert f"† fewer than {MIN_BOOTSTRAP_IMAGES} images: a bootstrap interval over so few is not meaningful" \
        in published_report


def test_bootstrap_note_below_8_images() -> None:
    values = np.linspace(-5, 5, 100)
    assert "not meaningful" in summarise(values, 3, True, 0).note
    assert "not meaningful" in summarise(values, 7, True, 0).note
    assert summarise(values, 8, True, 0).note == ""


def test_bd_table_carries_the_few_images_note() -> None:
    rows = []
    for codec, shift in (("a", 0.0), ("b", 0.5)):
        for k, image in enumerate(("i1", "i2", "i3")):
            for p, bpp in enumerate((0.2, 0.4, 0.8, 1.6)):
                rows.append(dict(codec=codec, image=image, rate_label=f"r{p}", bpp=bpp,
                                 psnr_rgb=28 + 4 * np.log2(bpp / 0.2) + shift + 0.3 * k, status="ok"))
    frame = pd.DataFrame(rows)
    table = bd_table(frame, frame[frame["codec"] == "a"], "psnr_rgb", n_resamples=50)
    assert table["ci_note"].str.contains("only 3 image").all()


def test_subset_against_a_published_full_set_average_is_flagged() -> None:
    anchor = load_anchor("kodak/vtm")
    native = pd.DataFrame({"image": ["kodim01", "kodim02"]})
    bd_anchor = SimpleNamespace(name="kodak/vtm", dataset="kodak", published=anchor)
    metrics = [BY_NAME["psnr-rgb"], BY_NAME["psnr-y"]]
    text = left_out_text(native, bd_anchor, anchor, metrics)
    assert "**Subset of the images:** the store has 2 of the 24 kodak images" in text
    assert "**Not in the BD tables:** PSNR-Y " in text
    paired = pd.DataFrame({"image": ["kodim01"], "psnr_rgb": [30.0], "psnr_y": [31.0]})
    assert left_out_text(native, bd_anchor, paired, metrics) == ""  # per-image anchor points: same images


def test_mean_of_per_image_applies_the_overlap_rule_per_image() -> None:
    """Each image's overlap by the shorter-range rule, the low ones warned by name, the smallest reported."""
    rows = []
    for image, top in (("wide", 40.0), ("narrow", 31.0)):
        for p, bpp in enumerate((0.2, 0.4, 0.8, 1.6)):
            rows.append(dict(image=image, rate_label=f"r{p}", bpp=bpp, psnr_rgb=28 + (top - 28) * p / 3))
    anchor = pd.DataFrame(rows)
    test = anchor.assign(psnr_rgb=anchor["psnr_rgb"] + np.where(anchor["image"] == "narrow", 2.5, 0.5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mean_of_per_image_bd(test, anchor, "psnr_rgb")
    low = [str(w.message) for w in caught if issubclass(w.category, LowOverlapWarning)]
    assert len(low) == 1 and "['narrow']" in low[0] and "1 of 2 images" in low[0]
    assert result.overlap == pytest.approx((31.0 - 30.5) / 3.0)  # narrow: [28, 31] vs [30.5, 33.5]
