"""``bench export`` on real stores (real SQLite through the Store API): nothing is overwritten by
accident, file names cannot escape the export folder, and the JSON is strict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.cli import main as cli_main
from bench.errors import UsageError
from bench.outfiles import safe_file_name
from bench.store import Store, read_measurements
from tests.conftest import python_module


def make_store(folder: Path, codec: str = "jpeg-444", psnr: tuple[float, ...] = (30.0, 35.0, 40.0)) -> Path:
    """A store with one codec over three rate points and two images."""
    with Store(folder) as store:
        run_id = store.start_run({"command": "test"})
        for i, value in enumerate(psnr):
            for image in ("a", "b"):
                store.add_measurement({
                    "cell_key": f"{codec}|q{i}|{image}", "run_id": run_id, "status": "ok", "codec": codec,
                    "codec_version": "1.0", "rate_label": f"q{i}", "dataset": "kodak", "image": image,
                    "resolution": "native", "bpp": 0.5 * (i + 1), "psnr_rgb": value, "ms_ssim": float("nan"),
                    "enc_time_s": 0.01, "dec_time_s": 0.005})
    return folder


def strict_json(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path} holds {name}, which is not JSON")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_export_never_overwrites_the_store(tmp_path: Path) -> None:
    results = make_store(tmp_path / "R")
    store = results / "results.sqlite"
    before = store.read_bytes()
    for extra in ([], ["--force"]):
        done = python_module("bench", "export", str(results), "--csv", str(store), *extra, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "is the results store itself" in done.stderr
        assert "Traceback" not in done.stderr
    assert store.read_bytes() == before and len(read_measurements(results)) == 6


def test_export_refuses_an_existing_file_unless_forced_and_writes_atomically(tmp_path: Path, capsys) -> None:
    results = make_store(tmp_path / "R")
    out = tmp_path / "out"
    out.mkdir()
    (out / "all.csv").write_text("precious\n")
    assert cli_main(["export", str(results), "--csv", str(out / "all.csv")]) == 2
    assert "all.csv already exists; pass --force" in capsys.readouterr().err
    assert (out / "all.csv").read_text() == "precious\n"
    assert cli_main(["export", str(results), "--csv", str(out / "all.csv"), "--force"]) == 0
    assert len((out / "all.csv").read_text().splitlines()) == 1 + 6
    assert sorted(p.name for p in out.iterdir()) == ["all.csv"]  # no temporary file left behind
    # JSON: every target is checked before the first is written.
    assert cli_main(["export", str(results), "--compressai-json", str(out)]) == 0
    first = (out / "jpeg-444.json").read_text()
    assert cli_main(["export", str(results), "--compressai-json", str(out)]) == 2
    assert "jpeg-444.json already exists" in capsys.readouterr().err
    assert (out / "jpeg-444.json").read_text() == first


def test_codec_name_cannot_escape_the_export_folder(tmp_path: Path) -> None:
    results = make_store(tmp_path / "R", codec="../../x")
    folder = tmp_path / "deep" / "a" / "json"
    assert cli_main(["export", str(results), "--compressai-json", str(folder)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert written == ["deep/a/json/____x.json"]
    assert strict_json(folder / "____x.json")["name"] == "../../x"  # the name itself is kept, as data


@pytest.mark.parametrize("name, safe", [("jpeg-444", "jpeg-444"), ("mlic++ q/2", "mlic___q_2"), ("a\\b", "a_b"),
                                        (".hidden", "hidden"), ("v1..2", "v1_2"), ("ünï", "_n_")])
def test_safe_file_name(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


@pytest.mark.parametrize("name", ["", ".", "..", "/", "../..", "///"])
def test_safe_file_name_refuses_names_with_nothing_usable(name: str) -> None:
    with pytest.raises(UsageError, match="no usable file name"):
        safe_file_name(name)


def test_export_without_flags_is_a_usage_error(tmp_path: Path, capsys) -> None:
    results = make_store(tmp_path / "R")
    assert cli_main(["export", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--csv" in err and "--compressai-json" in err


def test_compressai_json_is_strict_and_a_lossless_point_is_null(tmp_path: Path) -> None:
    results = make_store(tmp_path / "R", psnr=(30.0, 35.0, math.inf))  # the last rate point is lossless
    assert cli_main(["export", str(results), "--compressai-json", str(tmp_path / "json")]) == 0
    doc = strict_json(tmp_path / "json" / "jpeg-444.json")
    assert doc["results"]["psnr-rgb"] == [30.0, 35.0, None]
    assert doc["results"]["ms-ssim-rgb"] == [None, None, None]  # not measured
    assert doc["results"]["bpp"] == [0.5, 1.0, 1.5]


def make_bd_store(folder: Path, codecs: tuple[str, str] = ("jpeg-420", "webp"), dataset: str = "tiny") -> Path:
    """Two codecs over four rate points and three images; the second needs 5–20 % fewer bits."""
    factors = ({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 0.8, "b": 0.9, "c": 0.95})
    with Store(folder) as store:
        run_id = store.start_run({"command": "test"})
        for codec, by_image in zip(codecs, factors):
            for i, psnr in enumerate((30.0, 33.0, 36.0, 39.0)):
                for image, f in by_image.items():
                    store.add_measurement({
                        "cell_key": f"{codec}|q{i}|{image}", "run_id": run_id, "status": "ok", "codec": codec,
                        "codec_version": "1.0", "rate_label": f"q{i}", "dataset": dataset, "image": image,
                        "resolution": "native", "device": "cpu", "trained": 1, "bpp": 0.2 * 2 ** i * f,
                        "psnr_rgb": psnr + (image == "b"), "enc_time_s": 0.01, "dec_time_s": 0.005})
    return folder


def test_bd_export_carries_bootstrap_intervals(tmp_path: Path, capsys) -> None:
    from bench.analysis.bd import bootstrap_bd, dataset_bd

    results = make_bd_store(tmp_path / "R")
    out = tmp_path / "bd.csv"
    assert cli_main(["export", str(results), "--bd", str(out), "--anchor", "codec:jpeg-420"]) == 0
    assert "BD rows (with 95 % bootstrap intervals)" in capsys.readouterr().out
    import pandas as pd

    table = pd.read_csv(out).set_index("codec")
    rows = read_measurements(results)
    webp, jpeg = rows[rows.codec == "webp"], rows[rows.codec == "jpeg-420"]
    assert table.loc["webp", "bd_rate_psnr_pct"] == pytest.approx(dataset_bd(webp, jpeg).value, abs=1e-9)
    ci = bootstrap_bd(webp, jpeg)
    assert (table.loc["webp", "bd_rate_psnr_low"], table.loc["webp", "bd_rate_psnr_high"]) == pytest.approx(
        (ci.low, ci.high), abs=1e-9)
    assert -20.0 - 1e-9 <= ci.low < table.loc["webp", "bd_rate_psnr_pct"] < ci.high <= -5.0 + 1e-9
    assert (table.loc["webp", "ci_resamples"], table.loc["webp", "ci_seed"]) == (1000, 0)
    assert bool(table.loc["webp", "ci_paired_psnr"]) and table.loc["webp", "dataset"] == "tiny"
    assert cli_main(["export", str(results), "--bd", str(out), "--anchor", "codec:jpeg-420"]) == 2  # never overwrites


@pytest.mark.parametrize("codecs, dataset, anchor", [
    (("jpeg-420", "webp"), "tiny", "codec:jpeg-420"),  # no published anchor fits: the measured jpeg-420
    (("webp", "avif"), "tiny", "codec:avif"),  # ... and without jpeg-420 the first codec by name
    (("jpeg-420", "webp"), "kodak", None),  # Kodak: the default published VTM anchor
])
def test_bd_export_and_the_report_choose_the_same_anchor(tmp_path: Path, codecs, dataset, anchor) -> None:
    """Without --anchor, ``bench export --bd`` and the report compare with the same anchor on the
    same dataset and give the same BD values: one rule (bench.anchor_choice) for both."""
    import pandas as pd

    from bench.anchor_choice import DEFAULT_ANCHOR, FALLBACK_ANCHOR
    from bench.report import build_report

    results = make_bd_store(tmp_path / "R", codecs, dataset)
    assert cli_main(["export", str(results), "--bd", str(tmp_path / "bd.csv")]) == 0
    exported = pd.read_csv(tmp_path / "bd.csv").set_index("codec")
    report = build_report(results, tmp_path / "report")
    reported = report.bd.set_index("codec")
    chosen = set(exported["anchor"])
    assert chosen == set(reported["anchor"]) and len(chosen) == 1
    assert chosen == ({anchor} if anchor else {DEFAULT_ANCHOR}) or (anchor is None and chosen == {FALLBACK_ANCHOR})
    assert set(exported["dataset"]) == {dataset} and f"on **{dataset}** (native resolution)" in report.markdown.read_text()
    assert list(exported.index) == list(reported.index) and exported["bd_rate_psnr_pct"].notna().all()
    pd.testing.assert_series_equal(exported["bd_rate_psnr_pct"], reported["bd_rate_psnr_pct"], check_dtype=False)


def test_formula_safe_prefixes_text_that_a_spreadsheet_would_run() -> None:
    import pandas as pd

    from bench.outfiles import formula_safe

    frame = pd.DataFrame({"codec": ["=1+1", "+A1", "-cmd", "@SUM(A1)", "\tx", "jpeg", None],
                          "bpp": [-0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    safe = formula_safe(frame)
    assert list(safe["codec"][:6]) == ["'=1+1", "'+A1", "'-cmd", "'@SUM(A1)", "'\tx", "jpeg"]
    assert pd.isna(safe["codec"].iloc[6]) and list(safe["bpp"]) == list(frame["bpp"])  # numbers stay numbers
    assert list(frame["codec"][:1]) == ["=1+1"]  # the input is not changed


def test_exported_csv_carries_no_formula(tmp_path: Path) -> None:
    """D20: a codec named like a formula, and an error message like one, reach the CSV as text."""
    import csv

    results = make_store(tmp_path / "R", codec='=HYPERLINK("https://example.invalid","x")')
    with Store(results) as store:
        store.add_measurement({"cell_key": "e", "run_id": 1, "status": "error", "error": "@SUM(1+1)", "codec": "-x",
                               "rate_label": "+q", "dataset": "kodak", "image": "=a", "resolution": "native"})
    out = tmp_path / "all.csv"
    assert cli_main(["export", str(results), "--csv", str(out)]) == 0
    with out.open(newline="", encoding="utf-8") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert """'=HYPERLINK("https://example.invalid","x")""" in cells and "'@SUM(1+1)" in cells and "'-x" in cells
    assert "'+q" in cells and "'=a" in cells
    for cell in cells:
        if cell[:1] in ("=", "+", "-", "@"):
            float(cell)  # only a number may start so


def test_a_full_disk_during_export_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    """D12: a failed write (past a file-size limit, as on a full disk) says which file and leaves no
    partial one; it used to say "(path unknown)"."""
    def limit() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    results = tmp_path / "R"
    with Store(results) as store:  # ~300 rows: a CSV well past the limit
        run_id = store.start_run({"command": "test"})
        for i in range(300):
            store.add_measurement({"cell_key": f"c{i}", "run_id": run_id, "status": "ok", "codec": "jpeg",
                                   "codec_version": "1.0", "rate_label": "q1", "dataset": "kodak", "image": f"i{i}",
                                   "resolution": "native", "bpp": 0.5, "psnr_rgb": 30.0, "extras": "x" * 200})
    out = tmp_path / "out"
    done = python_module("bench", "export", str(results), "--csv", str(out / "all.csv"), timeout=120,
                         preexec_fn=limit)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {out / 'all.csv'}: File too large (EFBIG)"), done.stderr
    assert "(path unknown)" not in done.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_export_streams_copies_every_kept_stream_checked_with_its_index(tmp_path, synthetic_images):
    """A real run with --keep-streams, exported with --streams: the store's layout, an index naming each
    cell's file, a re-export that finds the same files, and a corrupt stream refused before anything is written."""
    import csv
    import hashlib

    from tests.test_streams import bench_run

    results = tmp_path / "R"
    done = bench_run(synthetic_images, results, "--keep-streams")
    assert done.returncode == 0, done.stderr
    rows = read_measurements(results).set_index("cell_key")
    out = tmp_path / "export"
    assert cli_main(["export", str(results), "--streams", str(out), "--csv", str(tmp_path / "all.csv")]) == 0
    with open(out / "streams.csv", newline="") as fh:
        index = list(csv.DictReader(fh))
    assert sorted(r["cell_key"] for r in index) == sorted(rows.index)
    for entry in index:
        data = (out / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["stream_sha256"] == rows.at[entry["cell_key"], "stream_sha256"]
        assert len(data) == rows.at[entry["cell_key"], "bytes"]
    assert cli_main(["export", str(results), "--streams", str(out), "--force"]) == 0  # the same files: kept
    victim = results / "streams" / index[0]["path"]
    victim.write_bytes(b"not the stream")
    fresh = tmp_path / "fresh"
    done = python_module("bench", "export", str(results), "--streams", str(fresh), timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"{index[0]['cell_key']}: kept stream" in done.stderr and "is corrupt" in done.stderr
    assert not fresh.exists()


def test_export_streams_of_a_store_without_streams_is_refused(tmp_path: Path, capsys) -> None:
    results = make_store(tmp_path / "R")
    assert cli_main(["export", str(results), "--streams", str(tmp_path / "s")]) == 2
    assert "no kept streams in this store (run with --keep-streams)" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
