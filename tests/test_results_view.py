"""The results view (bench.results) is the one read path: the report's RD curves, its BD rows, the run
summary, the CompressAI export and the gate's curve rest on the same images, chosen by one rule.

The store is real SQLite written through the Store API: three codecs on three images × five rate
points — ``jpeg-420`` (complete; the anchor), ``gappy`` (image ``c`` failed at ``q2``) and
``lossless`` (its top rate point is lossless: PSNR infinite on every image).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bench.analysis.bd import AVERAGE_CURVE
from bench.report import ReportOptions, build_report
from bench.results import load
from bench.results_rd import measured_anchor
from bench.store import Store, read_measurements

IMAGES = ("a", "b", "c")
RATES = 5


def _row(run_id: int, codec: str, i: int, image: str, psnr: float, status: str = "ok") -> dict:
    k = IMAGES.index(image)
    row = {"cell_key": f"{codec}|q{i}|{image}", "run_id": run_id, "status": status, "codec": codec,
           "codec_version": "1.0", "config_hash": f"{codec}-1", "rate_label": f"q{i}", "dataset": "photos",
           "image": image, "resolution": "native", "device": "cpu", "trained": 1, "enc_time_s": 0.01,
           "dec_time_s": 0.005}
    if status == "ok":
        row.update(bpp=0.25 * (i + 1) * (1 + 0.2 * k), psnr_rgb=psnr)
    else:
        row.update(error="encoder failed")
    return row


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("view") / "R"
    with Store(folder) as s:
        run_id = s.start_run({"command": "test"})
        for image in IMAGES:
            k = IMAGES.index(image)
            for i in range(RATES):
                base = 27.0 + 3.0 * i + k
                s.add_measurement(_row(run_id, "jpeg-420", i, image, base))
                failed = image == "c" and i == 2
                s.add_measurement(_row(run_id, "gappy", i, image, base + 0.8 + 0.1 * k,
                                       status="error" if failed else "ok"))
                s.add_measurement(_row(run_id, "lossless", i, image, math.inf if i == RATES - 1 else base + 0.4))
    return folder


@pytest.fixture(scope="module")
def report(store: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report(store, out, ReportOptions(anchor="codec:jpeg-420"))
    return out


def test_the_rd_curve_and_the_bd_row_rest_on_the_same_images(report: Path) -> None:
    """One image misses one rate point: the RD figure's curve and the BD row both leave it out and
    count the same images. A lossless top rate point (no image has a finite PSNR there) is not part
    of the curve; before the one rule the figure dropped every image of that codec — the codec
    vanished from the RD figure while its BD row stood on all three images."""
    rd = pd.read_csv(report / "data" / "rd_photos_psnr_rgb.csv")
    rd = rd[rd["source"] == "measured"]
    bd = pd.read_csv(report / "data" / "bd_rate.csv").set_index("codec")
    for codec, images, points in (("gappy", 2, RATES), ("lossless", 3, RATES - 1), ("jpeg-420", 3, RATES)):
        curve = rd[rd["codec"] == codec]
        assert len(curve) == points, (codec, curve)
        assert set(curve["n_images"]) == {images} and set(curve["n_images_total"]) == {3}
        assert bd.loc[codec, "status_psnr"] == "ok" and bd.loc[codec, "n_images_psnr"] == images
    assert str(bd.loc["gappy", "images_left_out_psnr"]).startswith("c: no finite psnr_rgb at rate point(s) q2")


def test_the_view_drops_the_lossless_point_not_the_images(store: Path) -> None:
    curves = load(store).curves("psnr_rgb")
    lossless = curves[curves["codec"] == "lossless"]
    assert list(lossless["rate_label"]) == [f"q{i}" for i in range(RATES - 1)]
    assert lossless["psnr_rgb"].map(math.isfinite).all()


def test_the_summary_draws_no_bootstrap_and_uses_the_reports_images(store: Path, monkeypatch) -> None:
    """The run summary prints one BD number per codec: no resamples are drawn (it used to draw 1,000
    per codec and throw the interval away), and an image that misses a rate point is left out as in
    the report, rather than making the codec 'n/a (error)'."""
    import bench.analysis.bd.table as bd_tables
    from bench.summary import summary_tables

    def no_bootstrap(*args, **kwargs):
        raise AssertionError("the summary drew bootstrap resamples")

    view = load(store)
    native = view.native
    expected = view.bd("photos", measured_anchor(native, "jpeg-420"), "jpeg-420", "pchip", AVERAGE_CURVE,
                       metrics=("psnr_rgb",), n_resamples=0).table.set_index("codec")
    monkeypatch.setattr(bd_tables, "bootstrap_values", no_bootstrap)
    rows = read_measurements(store, status=None).to_dict("records")
    per_codec, _ = summary_tables(rows)
    columns = {c.header: list(c.cells) for c in per_codec.columns}
    shown = dict(zip(columns["codec"], columns["BD-rate vs jpeg-420"]))
    assert shown["jpeg-420"] == "+0.0 %"
    for codec in ("gappy", "lossless"):
        assert shown[codec] == f"{expected.loc[codec, 'bd_rate_psnr_pct']:+.1f} %"
    assert float(shown["gappy"].rstrip(" %")) < 0
    assert dict(zip(columns["codec"], columns["errors"]))["gappy"] == "1"


def test_the_compressai_export_averages_the_complete_images(store: Path, tmp_path: Path) -> None:
    """Every point of the exported curve is a mean over the same images: ``gappy``'s image c, which
    misses q2, is left out of every point (it was in the other four, so the curve mixed image sets)."""
    from bench.export import to_compressai_json

    to_compressai_json(store, tmp_path / "json")
    doc = json.loads((tmp_path / "json" / "gappy.json").read_text())
    rows = read_measurements(store)
    complete = rows[(rows["codec"] == "gappy") & rows["image"].isin(["a", "b"])]
    means = complete.groupby("rate_label")["bpp"].mean().sort_values()
    assert doc["results"]["bpp"] == pytest.approx(list(means))
    assert "mean over 2 images" in doc["description"]
    lossless = json.loads((tmp_path / "json" / "lossless.json").read_text())
    assert lossless["results"]["psnr-rgb"][-1] is None and len(lossless["results"]["bpp"]) == RATES


def test_the_compressai_export_refuses_a_codec_without_a_complete_image(tmp_path: Path) -> None:
    """Each image misses another rate point: there is no curve over the same images, and the export
    says so in one line and writes nothing (it used to average a different image set at every point)."""
    from bench.errors import UsageError
    from bench.export import to_compressai_json

    with Store(tmp_path / "R") as s:
        run_id = s.start_run({"command": "test"})
        for i in range(3):
            for image in IMAGES:
                missing = i == IMAGES.index(image)
                s.add_measurement(_row(run_id, "holes", i, image, 30.0 + i, status="error" if missing else "ok"))
    with pytest.raises(UsageError, match="holes: no image of 'photos' has every rate point"):
        to_compressai_json(tmp_path / "R", tmp_path / "json")
    assert not (tmp_path / "json").exists()


def test_sequential_steps_are_read_from_extras() -> None:
    from bench.results import sequential_steps

    extras = pd.Series(['{"sequential_steps": 7}', '{"estimated_bits": 3.0}', None, "not json", '{"sequential_steps": true}',
                        "[1, 2]"])
    got = sequential_steps(extras)
    assert got.iloc[0] == 7.0 and got.iloc[1:].isna().all()
