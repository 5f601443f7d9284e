"""The report end to end on a real small results store.

The store comes from the real CLI: the 2 large synthetic photo-like images (conftest.py), JPEG
4:2:0 and WebP over their ladders, a 2-size resolution ladder, plus a real learned codec on random weights (CompressAI's factorized
model, untrained) that must appear in the complexity sections only, and a JPEG whose encoder
fails at one rate point, whose errors the report must show without failing.
"""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.analysis.bd import average_curve, average_curve_bd, bootstrap_bd, mean_of_per_image_bd
from bench.analysis.scaling import fit_power_law
from bench.anchors import Anchor, load_anchor, save_anchor
from bench.errors import ReportError
from bench.report import ReportOptions, build_report
from bench.report.progress import STEPS
from bench.store import read_measurements, read_runs

PROJECT = Path(__file__).resolve().parents[1]
FIGURES = ("rd_synthetic", "scaling_time", "scaling_memory", "tradeoff")
CSVS = ("bd_rate", "complexity", "rd_synthetic_psnr_rgb", "rd_synthetic_ms_ssim_db", "scaling_fits", "scaling_points",
        "tradeoff")
UNTRAINED = "random-factorized"
FAULTY = "faulty-jpeg"


@pytest.fixture(scope="module")
def store(tmp_path_factory, run_python, synthetic_images: Path) -> Path:
    """A real store: 2 synthetic images × (jpeg-420, webp, an untrained learned codec) + a 2-size ladder."""
    root = tmp_path_factory.mktemp("report")
    codecs = root / "codecs"
    codecs.mkdir()
    for name in ("jpeg-420", "webp"):
        (codecs / f"{name}.toml").write_text((PROJECT / "codecs" / f"{name}.toml").read_text())
    (codecs / f"{UNTRAINED}.toml").write_text(
        'adapter = "tests.support.untrained_codecs:RandomWeightsFactorized"\n'
        'description = "CompressAI bmshj2018-factorized on random weights (test)"\n'
        '[[rates]]\nlabel = "q1"\nquality = 1\n')
    (codecs / f"{FAULTY}.toml").write_text(
        'adapter = "tests.support.faulty_codecs:FaultyJpeg"\n'
        '[[rates]]\nlabel = "q25"\nquality = 25\n[[rates]]\nlabel = "q50"\nquality = 50\n'
        '[[rates]]\nlabel = "q75"\nquality = 75\nfault = "raise"\n')
    out = root / "results"
    done = run_python("bench", "--codecs-dir", str(codecs), "run", "--codecs", f"jpeg-420,webp,{UNTRAINED},{FAULTY}",
                      "--dataset", str(synthetic_images), "--images", "2", "--ladder-set", str(synthetic_images),
                      "--ladder", "128x128,256x256", "--ladder-per-size", "1", "--repeats", "1", "--jobs", "2",
                      "--out", str(out), "--quiet", data_dir=synthetic_images.parent, timeout=1800)  # slow when loaded
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def report(store: Path, tmp_path_factory, run_python) -> Path:
    out = tmp_path_factory.mktemp("report-out")
    done = run_python("bench.report", str(store), "--anchor", "kodak/vtm", "--dataset", "synthetic", "--method", "pchip",
                      "--averaging", "average-curve", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert str(out / "report.html") in done.stdout
    return out


def test_every_file_and_section_is_written(report: Path) -> None:
    for stem in FIGURES:
        png, svg = report / "figures" / f"{stem}.png", report / "figures" / f"{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert "<svg" in svg.read_text()[:2000], svg
    for stem in CSVS:
        frame = pd.read_csv(report / "data" / f"{stem}.csv")
        assert len(frame) > 0, stem
    md = (report / "report.md").read_text()
    for heading in ("## Provenance", "### Runs", "#### Package versions", "### Codecs", "### Definitions",
                    "### Excluded from rate-distortion", "### Errors and notes", "## Rate-distortion", "### synthetic",
                    "## BD-rate", "## Complexity", "## Complexity scaling", "## Decode time vs BD-rate", "## Files"):
        assert f"\n{heading}\n" in md, heading
    for stem in FIGURES:  # Markdown links the files
        assert f"(figures/{stem}.png)" in md and f"(figures/{stem}.svg)" in md


def test_html_is_self_contained(report: Path) -> None:
    html = (report / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert not re.search(r"<(script|link|iframe)\b", html)
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == len(FIGURES)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in html and "BD-rate PSNR-RGB (%)" in html


def test_bd_table_matches_bd_computed_directly(report: Path, store: Path) -> None:
    rows = read_measurements(store)
    native = rows[(rows.resolution == "native") & (rows.dataset == "synthetic")]
    table = pd.read_csv(report / "data" / "bd_rate.csv").set_index("codec")
    md = (report / "report.md").read_text()
    anchor = load_anchor("kodak/vtm")
    for codec in ("jpeg-420", "webp"):
        group = native[native.codec == codec]
        psnr = average_curve_bd(group, anchor, "psnr_rgb", method="pchip").value
        msssim = average_curve_bd(group, anchor, "ms_ssim_db", method="pchip").value
        assert table.loc[codec, "bd_rate_psnr_pct"] == pytest.approx(psnr, abs=1e-9)
        assert table.loc[codec, "bd_rate_msssim_pct"] == pytest.approx(msssim, abs=1e-9)
        assert table.loc[codec, "method"] == "pchip" and table.loc[codec, "averaging"] == "average-curve"
        for value in (psnr, msssim):  # the PSNR and SSIM family tables, each value with its interval
            # †: 2 images (< 8), the interval is marked as not meaningful
            assert re.search(rf"\| {codec} \| cpu \| {re.escape(f'{value:+.2f}')} \\\[[-+][0-9.]+, [-+][0-9.]+\\\]† \|", md)
    # Against one anchor, the codecs keep their order: WebP needs fewer bits than JPEG.
    assert table.loc["webp", "bd_rate_psnr_pct"] < table.loc["jpeg-420", "bd_rate_psnr_pct"]
    # The method, averaging and the anchor's codec version are printed beside the table.
    assert "Method **pchip**" in md and "Averaging **average-curve**" in md
    assert f"version **{anchor.codec['version']}**" in md and "kodak/vtm" in md


def test_bd_intervals_families_jpeg_ai_and_sensitivity(report: Path, store: Path) -> None:
    rows = read_measurements(store)
    native = rows[(rows.resolution == "native") & (rows.dataset == "synthetic")]
    table = pd.read_csv(report / "data" / "bd_rate.csv").set_index("codec")
    anchor = load_anchor("kodak/vtm")
    webp = native[native.codec == "webp"]
    interval = bootstrap_bd(webp, anchor, "psnr_rgb", seed=0, n_resamples=1000)  # a published curve: fixed anchor
    assert (table.loc["webp", "bd_rate_psnr_low"], table.loc["webp", "bd_rate_psnr_high"]) == pytest.approx(
        (interval.low, interval.high), abs=1e-9)
    assert interval.low <= table.loc["webp", "bd_rate_psnr_pct"] <= interval.high
    assert tuple(table.loc["webp", ["ci_resamples", "ci_seed", "ci_level"]]) == (1000, 0, 0.95)
    assert not table.loc["webp", "ci_paired_psnr"]
    md = (report / "report.md").read_text()
    section = md.split("\n## BD-rate\n", 1)[1].split("\n## ", 1)[0]
    for heading in ("### PSNR family", "### Structural family", "### JPEG AI summary",
                    "### Sensitivity to the BD method and averaging"):
        assert f"\n{heading}\n" in section, heading
    assert "1000 resamples" in section and "seed 0" in section
    assert "covers only the tested codec's image sampling" in section
    # the default metrics hold one of the seven (MS-SSIM on Y), which the published anchor lacks
    assert "Not computed: missing 7 of 7: MS-SSIM-Y (the anchor lacks it" in section
    assert "IW-SSIM (not measured)" in section
    sens = pd.read_csv(report / "data" / "bd_sensitivity.csv")
    row = sens[(sens.codec == "webp") & (sens.metric == "PSNR-RGB")].iloc[0]
    assert row["pchip / average-curve"] == pytest.approx(table.loc["webp", "bd_rate_psnr_pct"], abs=1e-9)
    assert row["cubic / average-curve"] == pytest.approx(average_curve_bd(webp, anchor, method="cubic").value, abs=1e-9)
    assert "mean-of-per-image" not in " ".join(sens.columns)  # a published average curve has no per-image points


def test_measured_anchor_file_with_per_image_points_is_paired(store: Path, tmp_path: Path, monkeypatch) -> None:
    rows = read_measurements(store)
    native = rows[(rows.resolution == "native") & (rows.dataset == "synthetic")]
    jpeg = native[native.codec == "jpeg-420"]
    per_image = {str(img): {"bpp": tuple(g.sort_values("bpp")["bpp"]), "psnr_rgb": tuple(g.sort_values("bpp")["psnr_rgb"])}
                 for img, g in jpeg.groupby("image")}
    mean = average_curve(jpeg, "psnr_rgb")
    anchors = tmp_path / "anchors"
    codec = {"name": "JPEG", "version": "test", "kind": "classical"}
    save_anchor(Anchor("synthetic/jpeg-measured", "JPEG (measured)", "synthetic", codec,
                       {"source": "measured", "runs": [{"run_id": 1}], "store": {"sha256": "0" * 64}}, {},
                       {"bpp": tuple(mean["bpp"]), "psnr_rgb": tuple(mean["psnr_rgb"])}, per_image=per_image), anchors)
    monkeypatch.setenv("BENCH_ANCHORS_DIR", str(anchors))
    report = build_report(store, tmp_path / "out", ReportOptions(anchor="synthetic/jpeg-measured",
                                                                 averaging="mean-of-per-image"))
    table = report.bd.set_index("codec")
    webp = native[native.codec == "webp"]
    direct = mean_of_per_image_bd(webp, jpeg, "psnr_rgb")
    assert table.loc["webp", "bd_rate_psnr_pct"] == pytest.approx(direct.value, abs=1e-9)
    assert bool(table.loc["webp", "ci_paired_psnr"])
    paired = bootstrap_bd(webp, jpeg, "psnr_rgb", "mean-of-per-image")
    assert table.loc["webp", "bd_rate_psnr_low"] == pytest.approx(paired.low, abs=1e-9)
    assert table.loc["jpeg-420", "bd_rate_psnr_low"] == pytest.approx(0.0, abs=1e-9)  # itself, paired: exactly 0
    md = report.markdown.read_text()
    assert "per-image points are used for the 2 tested images" in md and "paired: the anchor is resampled" in md


def test_untrained_codec_only_in_complexity(report: Path) -> None:
    md = (report / "report.md").read_text()
    excluded = md.split("### Excluded from rate-distortion", 1)[1].split("###", 1)[0]
    assert UNTRAINED in excluded and "trained = 0" in excluded
    bd = pd.read_csv(report / "data" / "bd_rate.csv").set_index("codec")
    assert bd.loc[UNTRAINED, "status_psnr"] == "excluded" and math.isnan(bd.loc[UNTRAINED, "bd_rate_psnr_pct"])
    for stem in ("rd_synthetic_psnr_rgb", "rd_synthetic_ms_ssim_db", "tradeoff"):
        assert UNTRAINED not in set(pd.read_csv(report / "data" / f"{stem}.csv")["codec"]), stem
    assert UNTRAINED not in (report / "figures" / "rd_synthetic.svg").read_text()
    assert UNTRAINED in set(pd.read_csv(report / "data" / "complexity.csv")["codec"])
    assert UNTRAINED in set(pd.read_csv(report / "data" / "scaling_points.csv")["codec"])
    assert UNTRAINED in (report / "figures" / "scaling_time.svg").read_text()


def test_scaling_fit_is_the_power_law_of_the_ladder(report: Path, store: Path) -> None:
    rows = read_measurements(store)
    ladder = rows[(rows.codec == "jpeg-420") & (rows.resolution != "native")]
    assert sorted(ladder.resolution.unique()) == ["128x128", "256x256"]
    medians = ladder.groupby("pixels")["dec_time_s"].median()
    fit = fit_power_law(medians.index.to_numpy(), medians.to_numpy())
    fits = pd.read_csv(report / "data" / "scaling_fits.csv")
    row = fits[(fits.codec == "jpeg-420") & (fits.cost == "dec_time_s")].iloc[0]
    assert row["exponent"] == pytest.approx(fit.exponent, rel=1e-9)
    svg = (report / "figures" / "scaling_time.svg").read_text()
    assert f"jpeg-420: k={fit.exponent:.2f} (2 sizes)" in svg  # the exponent is in the legend


def test_errors_are_shown_not_fatal(report: Path) -> None:
    md = (report / "report.md").read_text()
    errors = md.split("### Errors and notes", 1)[1].split("\n## ", 1)[0]
    assert re.search(rf"\| {FAULTY} \| 2 \| codec error: injected encoder failure \(×2\) \|", errors)
    bd = pd.read_csv(report / "data" / "bd_rate.csv").set_index("codec")
    # The two good rate points still give a BD-rate; the error cells are counted beside it.
    assert bd.loc[FAULTY, "status_psnr"] == "ok" and bd.loc[FAULTY, "n_error_rows"] == 2
    assert bd.loc[FAULTY, "n_points_psnr"] == 2
    assert re.search(rf"\| {FAULTY} \| cpu \| \+[0-9.]+ \\\[.*2 error cell\(s\) left out \|", md)


def test_provenance_comes_from_the_run_manifest(report: Path, store: Path) -> None:
    manifest = json.loads(read_runs(store).iloc[-1]["manifest"])
    md = (report / "report.md").read_text()
    provenance = md.split("## Rate-distortion", 1)[0]
    for value in (manifest["git_commit"][:12], manifest["cpu"], manifest["packages"]["pillow"], "--repeats 1"):
        assert value and str(value) in provenance, value
    runs = pd.read_csv(report / "data" / "runs.csv")
    assert runs["git commit"].iloc[-1] == manifest["git_commit"] and runs["command"].iloc[-1] == manifest["command"]
    from bench.metrics.registry import BY_NAME

    # metric definitions from the registry, with the implementation version the run recorded
    assert "`psnr_rgb`" in provenance and BY_NAME["psnr-rgb"].definition in provenance
    ms_ssim = next(m for m in manifest["metrics"] if m["metric"] == "ms-ssim")
    assert ms_ssim["implementation"].startswith("pytorch-msssim ") and ms_ssim["implementation"] in provenance
    assert "`vmaf`" not in provenance  # not measured: not defined
    versions = read_measurements(store).groupby("codec")["codec_version"].first()
    assert versions["jpeg-420"] in provenance


def test_measured_anchor_with_mean_of_per_image(store: Path, tmp_path: Path) -> None:
    options = ReportOptions(anchor="codec:jpeg-420", averaging="mean-of-per-image")
    report = build_report(store, tmp_path / "out", options)
    table = report.bd.set_index("codec")
    assert table.loc["jpeg-420", "bd_rate_psnr_pct"] == pytest.approx(0.0, abs=1e-9)
    rows = read_measurements(store)
    native = rows[rows.resolution == "native"]
    direct = mean_of_per_image_bd(native[native.codec == "webp"], native[native.codec == "jpeg-420"], "psnr_rgb")
    assert table.loc["webp", "bd_rate_psnr_pct"] == pytest.approx(direct.value, abs=1e-9)
    assert direct.value < 0  # WebP beats JPEG


@pytest.mark.parametrize("options, message", [
    (ReportOptions(anchor="kodak/vtmm"), "did you mean kodak/vtm"),
    (ReportOptions(anchor="kodak/vtm", averaging="mean-of-per-image"), "needs per-image anchor rows"),
    (ReportOptions(anchor="clic-pro-valid/vtm-17.0"), "is for dataset 'clic-pro-valid'"),
    (ReportOptions(method="linear"), "unknown BD method"),
])
def test_bad_options_are_explained(store: Path, tmp_path: Path, options: ReportOptions, message: str) -> None:
    with pytest.raises(ReportError, match=re.escape(message)):
        build_report(store, tmp_path / "out", options)


def test_missing_store_is_a_clear_error(tmp_path: Path, run_python) -> None:
    done = run_python("bench.report", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "no results store" in done.stderr and "bench run" in done.stderr


def test_default_anchor_is_the_measured_vtm_with_the_difference_stated(store: Path, tmp_path: Path, monkeypatch) -> None:
    """Default Kodak anchor: kodak/vtm-23.13 when generated (with its BD-rate difference to
    CompressAI's kodak/vtm stated), else kodak/vtm with a note."""
    anchors = tmp_path / "anchors"
    published = load_anchor("kodak/vtm")
    save_anchor(published, anchors)
    monkeypatch.setenv("BENCH_ANCHORS_DIR", str(anchors))
    fallback = build_report(store, tmp_path / "a", ReportOptions(dataset="synthetic"))
    md = fallback.markdown.read_text()
    assert "default anchor `kodak/vtm-23.13` is not generated yet" in md and "Against `kodak/vtm`" in md
    # A stand-in measured anchor needing 10 % more bits than kodak/vtm at every quality:
    # kodak/vtm against it is exactly 1/1.1 - 1 = -9.09 %.
    measured = Anchor("kodak/vtm-23.13", "VTM 23.13 (measured)", "kodak",
                      {"name": "VTM", "version": "23.13", "kind": "classical"},
                      {"source": "measured", "runs": [{"run_id": 1}], "store": {"sha256": "0" * 64}}, {},
                      {"bpp": tuple(b * 1.1 for b in published.points["bpp"]), "psnr_rgb": published.points["psnr_rgb"]})
    save_anchor(measured, anchors)
    report = build_report(store, tmp_path / "b", ReportOptions(dataset="synthetic"))
    md = report.markdown.read_text()
    assert "Against `kodak/vtm-23.13`" in md and "not generated yet" not in md
    assert "has a BD-rate of **-9.09 %** (PSNR-RGB, pchip" in md


# --- a store with no published anchor, and text that tries to inject HTML ------------------------

SCRIPT = "<script>alert('description')</script>"
IMG = "<img src=x onerror=alert('error')>"
#: Markdown that would fetch or link out if rendered: a remote image, a live link, an autolink.
MARKDOWN = "![n](https://example.invalid/n.png) [x](https://example.invalid/x) <https://example.invalid/a>"


@pytest.fixture(scope="module")
def plain_store(tmp_path_factory, run_python) -> Path:
    """2 photo crops (dataset 'tiny': no published anchor) × jpeg-420, webp and a JPEG whose description and
    error message carry HTML. Needs no Kodak."""
    from tests.test_cli import write_photos

    root = tmp_path_factory.mktemp("plain")
    photos = write_photos(root / "tiny")
    codecs = root / "codecs"
    codecs.mkdir()
    for name in ("jpeg-420", "webp"):
        (codecs / f"{name}.toml").write_text((PROJECT / "codecs" / f"{name}.toml").read_text())
    (codecs / "hostile.toml").write_text(  # rate labels that a spreadsheet would run as formulas
        f'adapter = "tests.support.faulty_codecs:FaultyJpeg"\ndescription = "{SCRIPT} {MARKDOWN}"\n'
        '[[rates]]\nlabel = "=q25"\nquality = 25\n[[rates]]\nlabel = "@q50"\nquality = 50\n'
        f'[[rates]]\nlabel = "q75"\nquality = 75\nfault = "raise"\nmessage = "{IMG} {MARKDOWN}"\n')
    out = root / "results"
    done = run_python("bench", "--codecs-dir", str(codecs), "run", "--codecs", "jpeg-420,webp,hostile",
                      "--dataset", str(photos), "--ladder", "none", "--repeats", "1", "--jobs", "1", "--out", str(out),
                      "--quiet", timeout=1800)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def plain_report(plain_store: Path, tmp_path_factory, run_python) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("plain-report")
    done = run_python("bench.report", str(plain_store), "--out", str(out))  # defaults: no --anchor
    assert done.returncode == 0, done.stderr
    return out, done


def test_default_report_without_published_anchor_uses_jpeg420(plain_report, plain_store: Path) -> None:
    out, done = plain_report
    md = (out / "report.md").read_text()
    assert "no published anchor fits these data" in md and "no published anchor fits these data" in done.stderr
    assert "Against the measured codec `jpeg-420`" in md and "No BD-rate table" not in md
    assert (out / "figures" / "tradeoff.png").is_file() and "No BD-rate table, so no trade-off plot" not in md
    table = pd.read_csv(out / "data" / "bd_rate.csv")
    assert set(table["anchor"]) == {"codec:jpeg-420"}
    rows = read_measurements(plain_store)
    native = rows[(rows["resolution"] == "native") & (rows["codec"] != "hostile")]
    expected = average_curve_bd(native[native["codec"] == "webp"], native[native["codec"] == "jpeg-420"],
                                "psnr_rgb", kind="rate", method="pchip")
    got = table.loc[table["codec"] == "webp", "bd_rate_psnr_pct"].iloc[0]
    assert math.isclose(got, expected.value, rel_tol=1e-9, abs_tol=1e-9)
    assert table.loc[table["codec"] == "jpeg-420", "bd_rate_psnr_pct"].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_markdown_and_html_carry_no_raw_html_from_the_data(plain_report) -> None:
    out, _ = plain_report
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for text in (md, page):
        assert "<script" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert('description')&lt;/script&gt;" in md  # the description, shown, not run
    assert "&lt;img src=x onerror=alert('error')&gt;" in md  # the error message of the hostile codec
    assert "&lt;script&gt;alert('description')&lt;/script&gt;" in page
    assert "\n| codec | device |" in md and "\n## BD-rate\n" in md  # Markdown structure is intact


def limit_file_size(limit: int):
    """A ``preexec_fn``: files may not grow past ``limit`` bytes (a write past it fails with EFBIG,
    as on a full disk, instead of killing the process)."""
    def apply() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_while_writing_the_report_is_one_line_and_leaves_no_partial_file(plain_store: Path, tmp_path: Path,
                                                                                   run_python) -> None:
    """D12: a write that fails (here: past a 40 kB file-size limit, as on a full disk) leaves no
    truncated file behind, and the one-line error names the file it was writing."""
    out = tmp_path / "out"
    done = run_python("bench.report", str(plain_store), "--out", str(out), preexec_fn=limit_file_size(40_000))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error[0].startswith(f"error: {out}/figures/rd_tiny.png: File too large (EFBIG)")
    assert "(path unknown)" not in done.stderr
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert left and all(p.startswith("data/") and p.endswith(".csv") for p in left), left  # written before the PNG
    for name in left:
        assert len(pd.read_csv(out / name)) > 0, name  # whole files only


def test_timings_are_grouped_by_machine_class_with_a_warning_for_mixed_codecs(plain_store: Path,
                                                                               tmp_path: Path) -> None:
    """Real rows record the machine that timed them; half of webp's rows are then marked as timed
    on another machine class (as a cluster run would store them): the report warns for webp only
    and splits its complexity rows by class."""
    import shutil
    import sqlite3

    from bench.machine import MachineClass

    rows = read_measurements(plain_store)
    here = str(MachineClass.here())
    assert rows["host"].notna().all() and (rows["executor"] == "local").all()
    assert {str(MachineClass.of_row(r)) for r in rows.to_dict("records")} == {here}
    copy = tmp_path / "store"
    shutil.copytree(plain_store, copy)
    with sqlite3.connect(copy / "results.sqlite") as conn:
        conn.execute("UPDATE measurements SET cpu_model = 'Other CPU', logical_cpus = 64 "
                     "WHERE codec = 'webp' AND image = (SELECT MIN(image) FROM measurements)")
    report = build_report(copy, tmp_path / "out")
    other = "Other CPU, 64 logical CPUs, " + str(rows["arch"].iloc[0])
    warned = [n for n in report.notes if "machine classes" in n]
    assert len(warned) == 1 and warned[0].startswith("webp: cells timed on 2 machine classes")
    assert other in warned[0] and here in warned[0]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**Warning: timings from different machine classes.** webp:" in md and "| machine class |" in md
    table = pd.read_csv(tmp_path / "out" / "data" / "complexity.csv")
    webp = table[(table["codec"] == "webp") & (table["resolution"] == "native")]
    assert sorted(webp["machine"]) == sorted([here, other]) and webp["cells"].sum() == len(
        rows[(rows["codec"] == "webp") & (rows["resolution"] == "native")])
    assert set(table.loc[table["codec"] == "jpeg-420", "machine"]) == {here}


def test_memory_scaling_has_a_clean_point_at_every_ladder_size(report: Path, store: Path) -> None:
    rows = read_measurements(store)
    ladder = rows[(rows.resolution != "native") & (rows.status == "ok")]
    # --memory size (the default): one measured cell per codec and size, the others repeat its reading
    assert ladder.mem_method.str.startswith("fork").all() and (ladder.dec_mem_growth_bytes > 0).all()
    assert (ladder.mem_method == "fork").groupby([ladder.codec, ladder.resolution]).any().all()
    points = pd.read_csv(report / "data" / "scaling_points.csv")
    memory = points[points.cost == "dec_mem_bytes"]
    for codec in ("jpeg-420", "webp", UNTRAINED):
        assert sorted(memory[memory.codec == codec].resolution) == ["128x128", "256x256"], codec
    webp = ladder[ladder.codec == "webp"].groupby("pixels")["dec_mem_growth_bytes"].median()
    fit = fit_power_law(webp.index.to_numpy(), webp.to_numpy())
    fits = pd.read_csv(report / "data" / "scaling_fits.csv")
    assert fits[(fits.codec == "webp") & (fits.cost == "dec_mem_bytes")].iloc[0]["exponent"] == pytest.approx(fit.exponent)
    complexity = pd.read_csv(report / "data" / "complexity.csv")
    shown = complexity[(complexity.codec == UNTRAINED) & (complexity.resolution == "256x256")].iloc[0]
    cells = ladder[(ladder.codec == UNTRAINED) & (ladder.resolution == "256x256")]
    assert shown["dec_mem_mib"] == pytest.approx(cells.dec_mem_growth_bytes.max() / 2**20)
    assert "Memory growth (clean process)" in (report / "figures" / "scaling_memory.svg").read_text()


# --- bad input (issue 21: D1, D9, D10, D17, D20) ---------------------------------------------------

def test_markdown_from_the_data_is_shown_not_rendered_and_nothing_remote_is_linked(plain_report) -> None:
    """D1: a description and an error message carrying a remote image, a link and an autolink: the
    Markdown file shows them escaped and the page has no link or image pointing anywhere remote."""
    out, _ = plain_report
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "\\!\\[n\\](https://example.invalid/n.png)" in md and "\\[x\\](https://example.invalid/x)" in md
    targets = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert targets and all(t.startswith("data:image/png;base64,") or "://" not in t for t in targets), targets
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)
    assert "![n](https://example.invalid/n.png)" in page  # the text itself is shown


def test_document_renders_no_remote_target_even_from_unescaped_text(tmp_path: Path) -> None:
    from bench.report.document import Document, md_code, md_escape, md_prose

    doc = Document("t")
    doc.text("[x](https://example.invalid) ![i](//example.invalid/i.png) <https://example.invalid> [ok](data/a.csv) "
             "[up](../secret) [abs](/etc/passwd) [js](javascript:alert(1))")
    doc.text(md_escape("*a* [b](https://example.invalid) `c`") + " " + md_code("`d` e``f") + " "
             + md_prose("codec `[n](https://example.invalid)` and [m](https://example.invalid)"))
    page = doc.html(tmp_path)
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == ["data/a.csv"]
    assert "<em>" not in page and "*a* [b](https://example.invalid) `c`" in page
    assert "<code>`d` e``f</code>" in page and "<code>[n](https://example.invalid)</code>" in page


def _copy_store(store: Path, where: Path, *sql: str) -> Path:
    import shutil
    import sqlite3

    shutil.copytree(store, where)
    with sqlite3.connect(where / "results.sqlite") as conn:
        for statement in sql:
            conn.execute(statement)
    return where


def test_a_null_device_is_reported_as_unrecorded(plain_store: Path, tmp_path: Path) -> None:
    """D9: one row with a NULL device used to crash the codecs table (sorting NULL with text)."""
    copy = _copy_store(plain_store, tmp_path / "store",
                       "UPDATE measurements SET device = NULL WHERE id = (SELECT MIN(id) FROM measurements "
                       "WHERE codec = 'webp' AND status = 'ok')")
    report = build_report(copy, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "data" / "complexity.csv")
    webp = table[table["codec"] == "webp"]
    assert set(webp["device"]) == {"cpu", "unrecorded"} and webp["cells"].sum() == len(
        read_measurements(plain_store).query("codec == 'webp'"))
    codecs = report.markdown.read_text().split("### Codecs", 1)[1].split("###", 1)[0]
    assert re.search(r"\| webp \| .* \| cpu, unrecorded \| yes \|", codecs)


def test_a_store_without_a_status_column_is_one_line(plain_store: Path, tmp_path: Path, run_python) -> None:
    """D10: a measurements table without ``status`` (not written by lic-bench) is refused with one line."""
    copy = _copy_store(plain_store, tmp_path / "store", "ALTER TABLE measurements DROP COLUMN status")
    done = run_python("bench.report", str(copy), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error == [f"error: {copy / 'results.sqlite'}: the measurements table has no column status; it is not a "
                     "lic-bench results store or it is damaged (write a new one with `python -m bench run`)"]


def test_an_anchor_with_ms_ssim_one_is_reported(plain_store: Path, tmp_path: Path, monkeypatch) -> None:
    """D17: MS-SSIM = 1 (valid per the schema) is +inf dB; it used to kill the RD figure's axis limits."""
    anchors = tmp_path / "anchors"
    save_anchor(Anchor("tiny/perfect", "Perfect at the top", "tiny", {"name": "X", "version": "1", "kind": "classical"},
                       {"source": "file", "files": [{"path": "perfect.json"}]}, {},
                       {"bpp": (0.2, 0.5, 1.0, 2.0), "psnr_rgb": (26.0, 30.0, 34.0, 40.0),
                        "ms_ssim": (0.9, 0.96, 0.99, 1.0)}), anchors)
    monkeypatch.setenv("BENCH_ANCHORS_DIR", str(anchors))
    report = build_report(plain_store, tmp_path / "out", ReportOptions(anchor="tiny/perfect"))
    assert (tmp_path / "out" / "figures" / "rd_tiny.png").read_bytes()[:4] == b"\x89PNG"
    published = pd.read_csv(tmp_path / "out" / "data" / "rd_tiny_ms_ssim_db.csv").query("source == 'published'")
    assert len(published) == 4 and math.isinf(published["ms_ssim_db"].max())  # kept in the data, not drawn
    assert report.bd is not None and "Perfect at the top" in (tmp_path / "out" / "figures" / "rd_tiny.svg").read_text()


def test_csv_cells_never_start_a_formula(plain_report) -> None:
    """D20: rate labels ``=q25`` and ``@q50`` reach the report's CSVs as text, never as a formula."""
    import csv

    out, _ = plain_report
    cells = []
    for path in (out / "data").glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as fh:
            cells += [c for row in csv.reader(fh) for c in row]
    assert "'=q25" in cells and "'@q50" in cells
    for cell in cells:
        if cell[:1] in ("=", "+", "-", "@"):
            float(cell)  # only a number may start so


# --- layout (issue 21, item 4) ------------------------------------------------------------------

def test_tables_are_narrow_times_have_units_and_ladder_rows_say_what_they_are(report: Path) -> None:
    md = (report / "report.md").read_text()
    runs = md.split("### Runs", 1)[1].split("####", 1)[0]
    assert "| command |" not in runs and "Commands:" in runs and "`python -m bench" in runs
    assert not re.search(r"[0-9a-f]{13,}", runs)  # commits cut to 12 digits
    complexity = md.split("\n## Complexity\n", 1)[1].split("\n## ", 1)[0]
    assert "ladder:" not in complexity and "| crops of synthetic | 128x128 |" in complexity
    time_table = complexity.split("### Time", 1)[1].split("###", 1)[0]
    assert re.search(r"\| [0-9.]+ (ms|µs|s) \| [0-9.]+ (ms|µs|s) \|", time_table)
    assert "(s) |" not in time_table and "mem (MiB)" not in time_table
    assert "| encode mem (MiB) |" in complexity.split("### Memory", 1)[1]


def test_memory_scaling_ticks_are_plain_numbers(report: Path) -> None:
    svg = (report / "figures" / "scaling_memory.svg").read_text()
    assert "\\times10" not in svg and "10^{" not in svg


def test_the_anchor_row_and_point_say_they_are_the_anchor(plain_report) -> None:
    out, _ = plain_report
    md = (out / "report.md").read_text()
    assert re.search(r"\| jpeg-420 \| cpu \|.*\| the anchor itself \(0 by definition\) \|", md)
    assert not re.search(r"\| webp \| cpu \|.*the anchor itself", md)
    svg = (out / "figures" / "tradeoff.svg").read_text()
    assert "jpeg-420 (anchor)" in svg and "anchor codec:jpeg-420 (0 %)" in svg


def test_tradeoff_labels_do_not_overlap() -> None:
    """The anchor's own point at 0 % is the fastest, at the left edge, where the anchor line used to
    carry its label: no two texts of the plot may overlap."""
    from bench.report import figures as figs

    frame = pd.DataFrame({"codec": ["jpeg-420", "jpeg-444", "webp", "avif"], "device": "cpu",
                          "family": ["jpeg", "jpeg", "webp", "avif"], "dec_time_s": [0.0011, 0.0013, 0.0056, 0.0044],
                          "dec_kmac_per_px": math.nan, "bd_rate_pct": [0.0, 8.0, -37.0, -58.0]})
    fig = figs.tradeoff_figure(frame, "codec:jpeg-420", figs.colours(list(frame["codec"])))
    fig.canvas.draw()
    ax = fig.axes[0]
    boxes = [t.get_window_extent() for t in ax.texts]
    assert len(boxes) >= 4
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)


def test_a_wall_time_fit_of_waiting_is_flagged_with_its_cpu_fit(store: Path, tmp_path: Path) -> None:
    """A scaling fit of wall time where the cells waited (wall ≫ CPU) is marked ⚠ and given on CPU
    time: jpeg-420's ladder encodes made to wait 9× their CPU time; webp's wall set to its CPU time."""
    copy = _copy_store(store, tmp_path / "store",
                       "UPDATE measurements SET enc_time_s = 10 * enc_cpu_s WHERE codec = 'jpeg-420' "
                       "AND resolution != 'native'",
                       "UPDATE measurements SET enc_time_s = enc_cpu_s WHERE codec = 'webp' AND resolution != 'native'")
    build_report(copy, tmp_path / "out", ReportOptions(anchor="codec:jpeg-420"))
    md = (tmp_path / "out" / "report.md").read_text()
    rows = read_measurements(copy)
    ladder = rows[(rows.codec == "jpeg-420") & (rows.resolution != "native")]
    cpu = ladder.groupby("pixels")["enc_cpu_s"].median()
    k = fit_power_law(cpu.index.to_numpy(), cpu.to_numpy()).exponent
    assert re.search(rf"- ⚠ jpeg-420 encode time: k = [-0-9.]+ rests on wall times far above CPU time \(at "
                     rf"[0-9x]+: wall .*, ×10\.0\).*; on CPU time k = {k:.2f}\.", md)
    assert "⚠ webp encode time" not in md
    legend = (tmp_path / "out" / "figures" / "scaling_time.svg").read_text()
    assert re.search(r"jpeg-420: k=[-0-9.]+ \(2 sizes\) ⚠ wall ≫ CPU", legend) and "webp: k" in legend
    flags = pd.read_csv(tmp_path / "out" / "data" / "scaling_wall_vs_cpu.csv")
    row = flags[(flags.codec == "jpeg-420") & (flags.cost == "enc_time_s")].iloc[0]
    assert bool(row["flagged"]) and row["ratio"] == pytest.approx(10.0)


def test_progress_is_shown_on_stderr(plain_report) -> None:
    _, done = plain_report
    steps = [line for line in done.stderr.splitlines() if line.startswith("report [")]
    assert [s.split("] ", 1)[1].rsplit(" (", 1)[0] for s in steps] == list(STEPS)


# --- a real browser (Debian's Chromium, headless) --------------------------------------------------

@pytest.mark.parametrize("which", ["report", "plain_report"])
def test_the_page_in_a_real_browser(which: str, request) -> None:
    """The page loads with no console error and fetches nothing; every figure is an image that
    decodes; no table is wider than the page at 1024 px."""
    from tests.support import browser

    why = browser.missing()
    if why:
        pytest.skip(why)
    out = request.getfixturevalue(which)
    out = out[0] if isinstance(out, tuple) else out
    with browser.chromium(1024) as driver:
        seen = browser.inspect_page(driver, out / "report.html")
    assert seen.errors == [] and seen.resources == []
    assert len(seen.images) == len(list((out / "figures").glob("*.png")))
    assert all(i["error"] is None and i["width"] > 100 and i["src"].startswith("data:image/png") for i in seen.images)
    assert seen.tables and seen.wide_tables == [], seen.wide_tables
    assert seen.viewport == 1024 and seen.page <= seen.viewport


def test_ladder_crops_of_the_bundled_photographs_are_named() -> None:
    """The quick-start ladder comes from scikit-image's photographs, stored as ``ladder:data``."""
    from bench.report.costsection import dataset_label

    assert dataset_label("ladder:data", {"astronaut", "hubble_deep_field"}) == \
        "crops of samples (scikit-image photographs)"
    assert dataset_label("ladder:data", {"mine"}) == "crops of data"
    assert dataset_label("ladder:clic-pro-valid-subset", {"a"}) == "crops of clic-pro-valid-subset"
    assert dataset_label("samples", {"astronaut"}) == "samples"
