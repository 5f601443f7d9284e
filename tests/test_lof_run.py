"""LOF as a protocol of the pipeline (issue 18, part 4): ``bench.lof_run`` runs a session into a store,
and the report's LOF section and the tool read the same figures back (:mod:`bench.lofresults`).

One real store serves every test here (module fixture): msp-tiny and msp-tiny-lof cells on two 64×64
crops, LOF cut to 3 iterations by a test configuration folder (the shipped weights, absolute paths).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import lof_run
from bench.analysis.bd import bd_table, complete_images
from bench.lofresults import lof_figures, lof_pairs
from bench.report.document import Document
from bench.report.lofsection import TITLE, lof_section
from bench.results import from_frame, load
from bench.store import read_measurements, read_runs
from tests.conftest import PROJECT, photo_like

ITERATIONS = 3


@pytest.fixture(scope="module")
def codecs(tmp_path_factory) -> Path:
    """msp-tiny and msp-tiny-lof with LOF cut to 3 iterations (checked every one)."""
    folder = tmp_path_factory.mktemp("codecs")
    weights = (PROJECT / "codecs" / "weights").resolve()
    for name in ("msp-tiny", "msp-tiny-lof"):
        text = (PROJECT / "codecs" / f"{name}.toml").read_text().replace('path = "weights/', f'path = "{weights}/')
        text = re.sub(r"lof_iterations = \d+", f"lof_iterations = {ITERATIONS}", text)
        (folder / f"{name}.toml").write_text(re.sub(r"lof_eval_every = \d+", "lof_eval_every = 1", text))
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    paths = []
    for seed in (1, 2):
        paths.append(folder / f"photo{seed}.png")
        Image.fromarray(photo_like(96, 128, seed)).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def store(tmp_path_factory, codecs, images) -> Path:
    """One lof_run call on both images into a results folder."""
    out = tmp_path_factory.mktemp("lof") / "results"
    assert lof_run.main(["--codec", "msp-tiny-lof", "--image", str(images[0]), "--image", str(images[1]),
                         "--crop", "64", "--out", str(out), "--codecs-dir", str(codecs)]) == 0
    return out


def test_lof_run_stores_rows_like_any_run_and_resumes(store, codecs, images, capsys):
    rows = read_measurements(store, status=None)
    assert len(rows) == 2 * 2 * 4 and set(rows["status"]) == {"ok"}
    assert set(rows["codec"]) == {"msp-tiny", "msp-tiny-lof"} and set(rows["resolution"]) == {"64x64"}
    assert set(rows["dataset"]) == {lof_run.LOF_DATASET} and rows["enc_cpu_s"].notna().all()
    lof = rows[rows["codec"] == "msp-tiny-lof"]
    assert {json.loads(x)["lof_iterations"] for x in lof["extras"]} == {ITERATIONS}
    manifest = json.loads(read_runs(store)["manifest"].iloc[0])
    assert manifest["codecs"]["msp-tiny-lof"]["lof_of"] == "msp-tiny"
    assert manifest["command"].startswith("python") and "bench.lof_run" in manifest["command"]

    capsys.readouterr()
    assert lof_run.main(["--codec", "msp-tiny-lof", "--image", str(images[0]), "--crop", "64", "--out", str(store),
                         "--codecs-dir", str(codecs)]) == 0
    out = capsys.readouterr()
    assert "8 cells: 8 already in" in out.err  # resumed: nothing ran again (this image's 8 cells)
    assert len(read_measurements(store, status=None)) == 16 and len(read_runs(store)) == 1
    assert "msp-tiny-lof vs msp-tiny (3 LOF iterations) on 2 image(s)" in out.out
    assert re.search(r"BD-rate PSNR-RGB: [+-]\d+\.\d\d %", out.out)


def test_lof_run_iteration_override_is_a_derived_configuration(codecs, images, tmp_path, capsys):
    """--iterations on a LOF configuration runs a derived one: its own name and configuration hash, one rate point."""
    out = tmp_path / "r"
    assert lof_run.main(["--codec", "msp-tiny-lof", "--iterations", "2", "--rate", "0", "--image", str(images[0]),
                         "--crop", "48", "--out", str(out), "--codecs-dir", str(codecs), "--json"]) == 0
    rows = read_measurements(out)
    assert sorted(set(rows["codec"])) == ["msp-tiny", "msp-tiny-lof2"] and set(rows["rate_label"]) == {"lambda=0.0018"}
    assert rows.groupby("codec")["config_hash"].first().nunique() == 2
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"][0]["lof_iterations"] == 2 and printed["lof_extras"][0]["lof_iterations"] == 2
    assert printed["summary"][0]["status_psnr"] == "error"  # one rate point: no BD, and it says why


@pytest.mark.parametrize("args, message", [
    (["--codec", "jpeg-420", "--iterations", "3"], "adapter 'jpeg' has no LOF"),
    (["--codec", "msp-tiny-nope"], "no such configuration"),
    (["--codec", "msp-tiny-lof", "--rate", "7"], "--rate 7: msp-tiny has rate points 0 to 3"),
    (["--codec", "msp-tiny-lof", "--lr", "0"], "--lr 0.0: must be"),
])
def test_lof_run_refuses_bad_input_in_one_line(images, tmp_path, capsys, args, message):
    out = tmp_path / "r"
    assert lof_run.main([*args, "--image", str(images[0]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()  # refused before the store was made


def test_lof_section_renders_from_the_store(store, tmp_path):
    from bench.report.build import build_report

    report = build_report(store, tmp_path / "report")
    text = report.markdown.read_text()
    assert f"## {TITLE}" in text and "msp-tiny-lof" in text
    summary = pd.read_csv(tmp_path / "report" / "data" / "lof.csv")
    assert len(summary) == 1
    row = summary.iloc[0]
    assert (row["lof"], row["base"], row["lof_iterations"], row["n_images"]) == ("msp-tiny-lof", "msp-tiny", 3, 2)
    assert row["status_msssim"] == "error" and "161 px" in row["reason_msssim"]  # 64×64: no MS-SSIM
    rows = read_measurements(store)
    for column in ("enc_time_s", "enc_cpu_s", "dec_time_s"):
        stem = column.removesuffix("_s")
        medians = rows.groupby("codec")[column].median()
        assert row[f"{stem}_base_s"] == pytest.approx(medians["msp-tiny"])
        assert row[f"{stem}_ratio"] == pytest.approx(medians["msp-tiny-lof"] / medians["msp-tiny"])
    per_rate = pd.read_csv(tmp_path / "report" / "data" / "lof_rates.csv")
    assert len(per_rate) == 4 and (per_rate["n_images"] == 2).all()
    base = rows[rows["codec"] == "msp-tiny"].groupby("rate_label")["bpp"].mean()
    assert per_rate.set_index("rate_label")["bpp_base"].to_dict() == pytest.approx(base.to_dict())


def test_lof_section_fits_the_page_in_a_real_browser(store, tmp_path):
    """No LOF table wider than the page at 1024 px (the first layout, one 18-column table, was 1264 px)."""
    from bench.report.build import build_report
    from tests.support import browser

    why = browser.missing()
    if why:
        pytest.skip(why)
    report = build_report(store, tmp_path / "report")
    with browser.chromium(1024) as driver:
        seen = browser.inspect_page(driver, report.html)
    assert seen.errors == [] and seen.wide_tables == [], seen.wide_tables
    assert seen.page <= seen.viewport


def test_lof_bd_is_the_bd_machinery_on_the_same_rows(store):
    """The section's BD is exactly bd_table's on the same rows: base as per-image anchor, pchip, paired bootstrap."""
    view = load(store)
    summary = lof_figures(view).summary.iloc[0]
    rows = read_measurements(store)
    lof, base = rows[rows["codec"] == "msp-tiny-lof"], rows[rows["codec"] == "msp-tiny"]
    common = set(complete_images(lof, "psnr_rgb")[0]["image"]) & set(complete_images(base, "psnr_rgb")[0]["image"])
    assert len(common) == 2
    direct = bd_table(lof[lof["image"].isin(common)], base[base["image"].isin(common)], "psnr_rgb", "pchip",
                      "average-curve", group_by=("codec", "device"), anchor_name="codec:msp-tiny",
                      incomplete="drop").iloc[0]
    assert direct["status"] == "ok" and np.isfinite(direct["bd_rate_pct"])
    assert summary["bd_rate_psnr_pct"] == direct["bd_rate_pct"]
    assert (summary["bd_rate_psnr_low"], summary["bd_rate_psnr_high"]) == (direct["bd_rate_low"], direct["bd_rate_high"])


def test_section_left_out_without_lof_and_names_a_missing_base(store):
    rows = read_measurements(store, status=None)
    doc = Document("t")
    figures = lof_section(doc, from_frame(rows[rows["codec"] == "msp-tiny"], store), _Options(), _no_csv)
    assert figures.summary.empty and not doc.blocks  # no LOF configuration: no section

    only_lof = from_frame(rows[rows["codec"] == "msp-tiny-lof"], store)
    pairs, notes = lof_pairs(only_lof)
    assert pairs == [] and len(notes) == 1 and "msp-tiny-lof is the LOF variant of msp-tiny" in notes[0]
    doc = Document("t")
    lof_section(doc, only_lof, _Options(), _no_csv)
    assert TITLE in doc.markdown() and "run --codecs msp-tiny" in doc.markdown()


def test_a_store_from_before_lof_of_pairs_through_the_configuration(store, codecs, tmp_path):
    """A manifest without lof_of (runs before it existed): the current TOML of the same hash pairs it."""
    import sqlite3

    old = tmp_path / "old"
    shutil.copytree(store, old)
    with sqlite3.connect(old / "results.sqlite") as db:
        for run_id, text in db.execute("SELECT run_id, manifest FROM runs").fetchall():
            manifest = json.loads(text)
            for entry in manifest["codecs"].values():
                entry.pop("lof_of", None)
            db.execute("UPDATE runs SET manifest = ? WHERE run_id = ?", (json.dumps(manifest), run_id))
    view = load(old)
    assert lof_pairs(view)[0] == []  # the shipped msp-tiny-lof has another hash (other weights paths, 60 iterations)
    pairs, _ = lof_pairs(view, codecs)
    assert [(p.lof, p.base, p.iterations, p.declared_in) for p in pairs] == [
        ("msp-tiny-lof", "msp-tiny", ITERATIONS, str(codecs / "msp-tiny-lof.toml"))]


class _Options:
    method, averaging = "pchip", "average-curve"


def _no_csv(frame: pd.DataFrame, name: str) -> str:
    return f"data/{name}.csv"


def test_readme_lof_table_shows_the_reports_lof_figures(store):
    """`readme_tables lof` prints the LOF section's own figures (BD with interval, images, CPU ratios)."""
    from bench.lofresults import lof_figures
    from bench.results import load
    from bench.tools.readme_data import _pct, lof_table

    table = lof_table(store).splitlines()
    (row,) = lof_figures(load(store)).summary.to_dict("records")
    assert len(table) == 3 and table[2].startswith("| `msp-tiny-lof` vs `msp-tiny` | ")
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[1:4] == [f"{row['dataset']} 64x64", "2", "4"]
    assert cells[4] == _pct(row["bd_rate_psnr_pct"], row["bd_rate_psnr_low"], row["bd_rate_psnr_high"])
    assert cells[7] == f"×{row['dec_cpu_ratio']:.3f}"


def test_lof_cells_that_stopped_early_are_named_in_the_notes(store):
    """A LOF cell whose latent diverged keeps the best earlier stream; the LOF figures say which cells did."""
    from bench.lofresults import lof_figures
    from bench.results import from_frame
    from bench.store import db_path

    frame = read_measurements(store, status=None)
    assert not any("stopped early" in n for n in lof_figures(from_frame(frame, store, db_path(store))).notes)
    first = frame.index[frame["codec"] == "msp-tiny-lof"][0]
    extras = json.loads(frame.at[first, "extras"])
    frame.at[first, "extras"] = json.dumps({**extras, "lof_stopped": "latent not codable after iteration 2"})
    notes = lof_figures(from_frame(frame, store, db_path(store))).notes
    (note,) = [n for n in notes if "stopped early" in n]
    assert "in 1 of 8 cells" in note and frame.at[first, "image"] in note and "iteration 2" in note
