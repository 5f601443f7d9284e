"""``python -m bench score``: metrics filled from kept streams equal those of a run that computed them,
timing and rate columns untouched, resumable, and a refusal naming the cells whose stream is missing,
corrupt or was never kept."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from bench.metrics.registry import columns as metric_columns
from bench.store import read_measurements, read_runs
from bench.streams import stream_path, streams_dir
from tests.conftest import python_module
from tests.test_streams import bench_run, old_store

SCORED = ("vif", "fsim")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_images) -> dict[str, Path]:
    """The same cells twice: with kept streams and the default metrics, and computing VIF and FSIM directly."""
    root = tmp_path_factory.mktemp("score")
    out = {"kept": root / "kept", "direct": root / "direct"}
    for name, extra in (("kept", ["--keep-streams"]), ("direct", ["--metrics", "default,vif,fsim"])):
        done = bench_run(synthetic_images, out[name], *extra)
        assert done.returncode == 0, done.stderr
    return out


def copy(store: Path, to: Path) -> Path:
    shutil.copytree(store, to, ignore=shutil.ignore_patterns("*.lock"))
    return to


def score(results: Path, images: Path, *extra: str):
    return python_module("bench", "score", str(results), "--metrics", ",".join(SCORED), "--jobs", "1",
                         "--threads", "1", "--quiet", *extra, data_dir=images.parent, timeout=600)


def by_key(results: Path):
    return read_measurements(results, status=None).set_index("cell_key").sort_index()


def test_score_fills_the_metrics_a_direct_run_computes_and_changes_nothing_else(runs, tmp_path, synthetic_images):
    results = copy(runs["kept"], tmp_path / "R")
    before = by_key(results)
    assert before["vif"].isna().all() and before["fsim"].isna().all()
    done = score(results, synthetic_images)
    assert done.returncode == 0, done.stderr
    assert "4 to score" in done.stderr
    after, direct = by_key(results), by_key(runs["direct"])
    assert list(after.index) == list(direct.index)
    assert (after["bytes"] == direct["bytes"]).all()  # the same cells, the same bitstreams
    for column in ("vif", "fsim"):
        assert after[column].notna().all()
        for key in after.index:
            assert after.at[key, column] == pytest.approx(direct.at[key, column], rel=1e-6), (key, column)
    untouched = [c for c in before.columns if c not in metric_columns() and c != "extras"]
    assert "enc_time_s" in untouched and "bpp" in untouched and "stream_sha256" in untouched
    pd_equal = before[untouched].fillna("NULL").astype(str).equals(after[untouched].fillna("NULL").astype(str))
    assert pd_equal, "score changed a column that is not a metric"
    for column in [c for c in metric_columns() if c not in ("vif", "fsim")]:  # the run's own metrics stay as they were
        assert before[column].fillna(-1.0).equals(after[column].fillna(-1.0)), column
    extras = json.loads(after["extras"].iloc[0])
    assert set(extras["scored"]) == set(SCORED) and extras["scored"]["vif"]["implementation"].startswith("piq")
    manifest = json.loads(read_runs(results)["manifest"].iloc[0])
    assert manifest["scores"][0]["metrics"][-2:] == ["vif", "fsim"]
    assert {m["metric"] for m in manifest["metrics"] if m.get("added_by")} == set(SCORED)


def test_score_resumes_scoring_only_what_is_left(runs, tmp_path, synthetic_images):
    results = copy(runs["kept"], tmp_path / "R")
    first = score(results, synthetic_images, "--rates", "quality=25")  # as if killed after these cells
    assert first.returncode == 0, first.stderr
    assert "2 to score" in first.stderr
    partly = by_key(results)
    assert partly.loc[partly.rate_label == "quality=25", "vif"].notna().all()
    assert partly.loc[partly.rate_label == "quality=75", "vif"].isna().all()
    second = score(results, synthetic_images)
    assert second.returncode == 0, second.stderr
    assert "2 already have every metric asked for, 2 to score" in second.stderr
    done = by_key(results)
    assert done["vif"].notna().all()
    assert done.loc[partly.rate_label == "quality=25", "extras"].equals(partly.loc[partly.rate_label == "quality=25", "extras"])
    third = score(results, synthetic_images)
    assert third.returncode == 0 and "0 to score" in third.stderr
    assert by_key(results)["extras"].equals(done["extras"])


def test_a_missing_or_corrupt_stream_refuses_naming_the_cell_and_changes_nothing(runs, tmp_path, synthetic_images):
    results = copy(runs["kept"], tmp_path / "R")
    rows = by_key(results)
    missing_key, corrupt_key = rows.index[0], rows.index[1]
    stream_path(streams_dir(results), rows.at[missing_key, "stream_sha256"]).unlink()
    corrupt = stream_path(streams_dir(results), rows.at[corrupt_key, "stream_sha256"])
    corrupt.write_bytes(corrupt.read_bytes()[:-1] + b"\0")
    before = results.joinpath("results.sqlite").read_bytes()
    done = score(results, synthetic_images)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "2 cell(s) cannot be scored" in line and missing_key in line and corrupt_key in line
    assert "is missing" in line and "is corrupt: its sha256 is" in line and "nothing was changed" in line
    assert by_key(results)["vif"].isna().all()
    assert results.joinpath("results.sqlite").read_bytes() == before
    # --skip-missing: the other cells are scored, the two are listed
    done = score(results, synthetic_images, "--skip-missing")
    assert done.returncode == 0, done.stderr
    assert "skipped 2 cell(s) cannot be scored" in done.stderr and missing_key in done.stderr
    after = by_key(results)
    assert after["vif"].isna().sum() == 2 and after.loc[[missing_key, corrupt_key], "vif"].isna().all()


def test_a_run_without_kept_streams_and_an_old_store_are_refused(runs, tmp_path, synthetic_images):
    no_streams = copy(runs["direct"], tmp_path / "direct")
    done = python_module("bench", "score", str(no_streams), "--metrics", "nlpd", "--jobs", "1", "--quiet",
                         data_dir=synthetic_images.parent, timeout=600)
    assert done.returncode == 2 and "4 cell(s) cannot be scored" in done.stderr
    assert "no kept stream (the run was made without --keep-streams)" in done.stderr
    old = old_store(tmp_path / "old")
    done = score(old, synthetic_images)
    assert done.returncode == 2 and "1 cell(s) cannot be scored: old|q|a: no kept stream" in done.stderr
    assert "stream_sha256" in {r[1] for r in sqlite3.connect(old / "results.sqlite").execute(
        "PRAGMA table_info(measurements)")}  # migrated in place, the row kept
    assert len(read_measurements(old)) == 1


def test_bad_options_are_one_line_errors(tmp_path, synthetic_images):
    done = score(tmp_path / "nothing", synthetic_images)
    assert done.returncode == 2 and "no results store at" in done.stderr and not (tmp_path / "nothing").exists()
    done = python_module("bench", "score", str(tmp_path), "--metrics", "vif,nope", timeout=120)
    assert done.returncode == 2 and "unknown metric 'nope'" in done.stderr


def test_a_stream_that_decodes_to_another_image_is_reported_and_left_as_it_was(runs, tmp_path, synthetic_images):
    """A row pointing at a valid stream of another cell (as a changed decoder would give another image):
    its PSNR-RGB differs from the stored one, so nothing is stored for it, the others are scored, exit 1."""
    results = copy(runs["kept"], tmp_path / "R")
    rows = by_key(results)
    wrong, other = rows.index[0], rows.index[-1]
    with sqlite3.connect(results / "results.sqlite") as conn:
        conn.execute("UPDATE measurements SET stream_sha256 = ? WHERE cell_key = ?",
                     (rows.at[other, "stream_sha256"], wrong))
    done = score(results, synthetic_images)
    assert done.returncode == 1, done.stderr
    assert f"error {wrong}: the stream decodes to another image than the one measured" in done.stderr
    assert "3 cells" in done.stderr and "1 could not be decoded (left as they were)" in done.stderr
    after = by_key(results)
    assert pd_isna(after.at[wrong, "vif"]) and after.drop(index=wrong)["vif"].notna().all()
    assert after["extras"].fillna("").at[wrong] == rows["extras"].fillna("").at[wrong]


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_a_selection_the_store_lacks_is_refused_with_what_it_holds(runs, tmp_path, synthetic_images):
    results = copy(runs["kept"], tmp_path / "R")
    done = score(results, synthetic_images, "--codecs", "jpeg-444")
    assert done.returncode == 2 and "--codecs: the store holds no jpeg-444 (it holds: jpeg-420)" in done.stderr
    done = score(results, synthetic_images, "--rates", "quality=50")
    assert done.returncode == 2 and "--rates: the store holds no quality=50 (it holds: quality=25, quality=75)" in done.stderr
    assert by_key(results)["vif"].isna().all()
