"""Bootstrap intervals of BD values, the sensitivity table and the JPEG AI summary, on synthetic data
with known answers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from bench.analysis.bd import (AVERAGE_CURVE, MEAN_OF_PER_IMAGE, METHODS, BDError, Curve, average_curve, batch_bd, bd,
                               bd_table, bootstrap_bd, dataset_bd, jpeg_ai_summary, sensitivity_table)
from bench.analysis.bd.bootstrap import FIXED_ANCHOR_NOTE, draw_weights

LADDER = np.array([0.1, 0.2, 0.4, 0.8, 1.6])


def _rows(codec: str, n_images: int = 12, factor: float | np.ndarray = 1.0, seed: int = 0, **extra) -> pd.DataFrame:
    """Per-image rows: image i needs ``m_i * factor_i`` × LADDER bits for quality c_i + 9·log10(b) + …"""
    rng = np.random.default_rng(seed)
    offsets, complexity = rng.uniform(26, 36, n_images), rng.uniform(0.5, 3.0, n_images)
    factors = np.broadcast_to(np.asarray(factor, dtype=float), (n_images,))
    rows = []
    for i in range(n_images):
        for k, b in enumerate(LADDER):
            q = offsets[i] + 9 * math.log10(b) + 0.3 * math.log10(b) ** 2
            rows.append(dict(codec=codec, rate_label=f"q{k}", image=f"img{i:02d}", bpp=b * complexity[i] * factors[i],
                             psnr_rgb=q, nlpd=1.0 / q, device="cpu", status="ok", trained=1, **extra))
    return pd.DataFrame(rows)


# --- the vectorised BD against the scipy one ------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["rate", "quality"])
@pytest.mark.parametrize("higher_is_better", [True, False])
def test_batch_bd_equals_bd(method: str, kind: str, higher_is_better: bool) -> None:
    rng = np.random.default_rng(3)
    sizes = (4, 6) if method == "cubic" else (2, 3, 6)
    compared = 0
    for k in sizes:
        rt = np.sort(rng.uniform(0.05, 2.0, (40, k)), axis=1)
        qt = np.sort(rng.uniform(25, 40, (40, k)), axis=1)
        ra, qa = np.sort(rng.uniform(0.05, 2.0, k)), np.sort(rng.uniform(25, 40, k))
        if not higher_is_better:  # a distortion: falls as the rate rises
            qa, qt = 1 / qa, 1 / qt
        got = batch_bd(ra, qa, rt, qt, kind, method, higher_is_better)
        for i in range(len(rt)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    want = bd(ra, qa, rt[i], qt[i], kind, method, higher_is_better=higher_is_better).value
            except BDError:
                assert math.isnan(got[i])  # no overlap: no value, as bd() refuses
                continue
            assert got[i] == pytest.approx(want, rel=1e-8, abs=1e-8)
            compared += 1
    assert compared > 40


def test_batch_bd_gives_nan_for_a_non_monotonic_row() -> None:
    qt = np.array([[30.0, 33.0, 36.0, 39.0], [30.0, 33.0, 32.0, 39.0]])
    got = batch_bd([0.1, 0.2, 0.4, 0.8], [30, 33, 36, 39], np.tile([0.09, 0.18, 0.36, 0.72], (2, 1)), qt)
    assert got[0] == pytest.approx(-10.0, abs=1e-9) and math.isnan(got[1])


# --- known answers -------------------------------------------------------------------------------

@pytest.mark.parametrize("averaging", [AVERAGE_CURVE, MEAN_OF_PER_IMAGE])
def test_identical_codecs_give_zero_and_a_zero_width_paired_interval(averaging: str) -> None:
    rows = _rows("a")
    ci = bootstrap_bd(rows, rows, averaging=averaging)
    assert ci.paired and ci.n_failed == 0 and ci.n_images == 12 and ci.note == ""
    assert ci.low <= 0 <= ci.high or (abs(ci.low) < 1e-9 and abs(ci.high) < 1e-9)
    assert ci.high - ci.low < 1e-9


@pytest.mark.parametrize("averaging", [AVERAGE_CURVE, MEAN_OF_PER_IMAGE])
@pytest.mark.parametrize("method", METHODS)
def test_constant_rate_saving_gives_a_tight_interval_at_minus_10(averaging: str, method: str) -> None:
    anchor, test = _rows("a"), _rows("t", factor=0.9)
    assert dataset_bd(test, anchor, averaging=averaging, method=method).value == pytest.approx(-10.0, abs=1e-9)
    ci = bootstrap_bd(test, anchor, averaging=averaging, method=method)
    assert ci.low == pytest.approx(-10.0, abs=1e-6) and ci.high == pytest.approx(-10.0, abs=1e-6)


def test_fixed_anchor_interval_covers_the_test_sampling_only() -> None:
    anchor = _rows("a")
    avg = average_curve(anchor)
    curve = Curve(avg["bpp"], avg["psnr_rgb"], "published")
    ci = bootstrap_bd(anchor, curve)  # the same images against their own average curve
    assert not ci.paired and ci.note == FIXED_ANCHOR_NOTE
    assert ci.low < 0 < ci.high and ci.high - ci.low > 1.0  # image sampling moves the average curve
    with pytest.raises(BDError, match="mean-of-per-image needs per-image anchor rows"):
        bootstrap_bd(anchor, curve, averaging=MEAN_OF_PER_IMAGE)


def test_noisy_saving_interval_contains_the_truth_and_is_reproducible() -> None:
    factors = np.random.default_rng(7).normal(0.85, 0.08, 24)
    anchor, test = _rows("a", 24), _rows("t", 24, factor=factors)
    point = dataset_bd(test, anchor, averaging=MEAN_OF_PER_IMAGE).value
    assert point == pytest.approx(np.mean((factors - 1) * 100), abs=1e-9)
    ci = bootstrap_bd(test, anchor, averaging=MEAN_OF_PER_IMAGE, seed=5)
    assert ci.low < point < ci.high and ci.high - ci.low < 10
    assert bootstrap_bd(test, anchor, averaging=MEAN_OF_PER_IMAGE, seed=5) == ci  # same seed, same interval
    other = bootstrap_bd(test, anchor, averaging=MEAN_OF_PER_IMAGE, seed=6)
    assert (other.low, other.high) != (ci.low, ci.high) and other.seed == 6 and ci.n_resamples == 1000


@pytest.mark.parametrize("averaging", [AVERAGE_CURVE, MEAN_OF_PER_IMAGE])
def test_vectorised_bootstrap_equals_a_loop_over_resamples(averaging: str) -> None:
    factors = np.random.default_rng(8).normal(0.9, 0.1, 10)
    anchor, test = _rows("a", 10), _rows("t", 10, factor=factors, seed=0)
    ci = bootstrap_bd(test, anchor, averaging=averaging, n_resamples=60, seed=11)
    weights = draw_weights(10, 60, 11)
    images = sorted(test["image"].unique())
    values = []
    for w in weights:  # the reference: build each resample as rows and call the scipy path
        picks = [img for img, c in zip(images, np.rint(w * 10).astype(int)) for _ in range(c)]
        if averaging == MEAN_OF_PER_IMAGE:
            per = {i: dataset_bd(test[test.image == i], anchor[anchor.image == i], averaging=averaging).value
                   for i in set(picks)}
            values.append(np.mean([per[i] for i in picks]))
        else:
            t = pd.concat([test[test.image == i] for i in picks]).groupby("rate_label")[["bpp", "psnr_rgb"]].mean()
            a = pd.concat([anchor[anchor.image == i] for i in picks]).groupby("rate_label")[["bpp", "psnr_rgb"]].mean()
            values.append(bd(a.bpp, a.psnr_rgb, t.bpp, t.psnr_rgb).value)
    low, high = np.percentile(values, [2.5, 97.5])
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=1e-8)


# --- bd_table: intervals and incomplete images ------------------------------------------------------

def test_bd_table_carries_intervals_and_names_images_left_out() -> None:
    anchor = _rows("a")
    test = _rows("t", factor=0.9)
    test.loc[(test.image == "img03") & (test.rate_label == "q2"), "status"] = "error"  # an error cell
    strict = bd_table(test, anchor).iloc[0]
    assert strict["status"] == "error" and "lacks 1 of 12 images" in strict["reason"]
    row = bd_table(test, anchor, incomplete="drop", seed=3, n_resamples=200).iloc[0]
    assert row["status"] == "ok" and row["n_images"] == 11 and row["n_error_rows"] == 1
    assert row["images_left_out"] == "img03: no finite psnr_rgb at rate point(s) q2"
    assert row["bd_rate_pct"] == pytest.approx(-10.0, abs=1e-9)
    assert (row["bd_rate_low"], row["bd_rate_high"]) == pytest.approx((-10.0, -10.0), abs=1e-6)
    assert row["bd_quality_low"] <= row["bd_quality"] <= row["bd_quality_high"]
    assert (row["ci_resamples"], row["ci_seed"], row["ci_level"], row["ci_paired"]) == (200, 3, 0.95, True)
    none = bd_table(test, anchor, incomplete="drop", n_resamples=0).iloc[0]
    assert math.isnan(none["bd_rate_low"]) and none["bd_rate_pct"] == pytest.approx(-10.0, abs=1e-9)


def test_lower_is_better_metric_gives_the_same_bd_rate() -> None:
    # nlpd = 1/psnr falls as the rate rises: BD-rate equals the PSNR one, BD-quality has the metric's sign
    anchor, test = _rows("a"), _rows("t", factor=0.9)
    row = bd_table(test, anchor, "nlpd", higher_is_better=False, n_resamples=50).iloc[0]
    assert row["status"] == "ok" and row["bd_rate_pct"] == pytest.approx(-10.0, abs=1e-6)
    assert row["bd_quality"] < 0 and row["bd_quality_high"] < 0  # lower NLPD at equal rate: better
    wrong = bd_table(test, anchor, "nlpd", n_resamples=0).iloc[0]
    assert wrong["status"] == "error" and "not monotonic" in wrong["reason"]


# --- sensitivity -------------------------------------------------------------------------------------

def test_sensitivity_table_shows_methods_and_conventions() -> None:
    anchor = _rows("a", 3)
    factors = np.array([0.5, 1.0, 1.0])
    table = sensitivity_table(pd.concat([_rows("uniform", 3, 0.8), _rows("mixed", 3, factors)]), anchor)
    table = table.set_index("codec")
    cells = [f"{m} / {a}" for a in (AVERAGE_CURVE, MEAN_OF_PER_IMAGE) for m in METHODS]
    assert [c for c in table.columns if " / " in c] == cells
    assert table.loc["uniform", cells].to_numpy() == pytest.approx([-20.0] * 6, abs=1e-9)
    assert table.loc["uniform", "spread"] == pytest.approx(0.0, abs=1e-9)
    mixed = table.loc["mixed"]
    assert mixed[f"pchip / {MEAN_OF_PER_IMAGE}"] == pytest.approx(-50.0 / 3, abs=1e-9)
    assert mixed["spread"] > 1.0  # the two conventions disagree for uneven savings
    published = sensitivity_table(_rows("uniform", 3, 0.8), Curve(*average_curve(anchor)[["bpp", "psnr_rgb"]].T.values))
    assert [c for c in published.columns if " / " in c] == [f"{m} / {AVERAGE_CURVE}" for m in METHODS]


# --- JPEG AI summary -----------------------------------------------------------------------------------

SEVEN = {"MS-SSIM": ("ms_ssim_db", True), "VIF": ("vif", True), "FSIM": ("fsim", True), "NLPD": ("nlpd", False),
         "IW-SSIM": ("iw_ssim", True), "VMAF": ("vmaf", True), "PSNR-HVS-M": ("psnr_hvs_m", True)}


def _seven(rows: pd.DataFrame) -> pd.DataFrame:
    q = rows["psnr_rgb"]
    return rows.assign(ms_ssim_db=q - 15, vif=q / 50, fsim=0.5 + q / 100, iw_ssim=q / 45, vmaf=2 * q, psnr_hvs_m=q + 2)


def test_jpeg_ai_summary_mean_of_seven_under_both_conventions() -> None:
    anchor, test = _seven(_rows("a")), _seven(_rows("t", factor=0.9))
    table = jpeg_ai_summary(test, anchor, SEVEN, n_resamples=100).set_index("averaging")
    assert list(table.index) == [MEAN_OF_PER_IMAGE, AVERAGE_CURVE]
    for averaging, row in table.iterrows():
        assert row["status"] == "ok" and row["n_images"] == 12
        assert row["bd_rate_mean_pct"] == pytest.approx(-10.0, abs=1e-6), averaging
        assert row["bd_rate_nlpd_pct"] == pytest.approx(-10.0, abs=1e-6)
        assert (row["bd_rate_low"], row["bd_rate_high"]) == pytest.approx((-10.0, -10.0), abs=1e-5)


def test_jpeg_ai_summary_names_the_missing_metrics() -> None:
    anchor, test = _seven(_rows("a")), _seven(_rows("t", factor=0.9)).drop(columns=["vif"])
    six = {k: v for k, v in SEVEN.items() if k != "FSIM"}
    table = jpeg_ai_summary(test, anchor, six, n_resamples=0)
    assert set(table["status"]) == {"incomplete"}
    reason = table["reason"].iloc[0]
    assert reason.startswith("missing 2 of 7: ") and "VIF (not measured)" in reason
    assert "FSIM (not in the metric list)" in reason and "NLPD" not in reason
