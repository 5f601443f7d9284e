"""BD metrics against published vectors, the FAU package, analytic cases and bad input."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import bjontegaard as fau
import numpy as np
import pandas as pd
import pytest

from bench.analysis.bd import (
    AVERAGE_CURVE,
    MEAN_OF_PER_IMAGE,
    METHODS,
    BDError,
    ConvexHullWarning,
    Curve,
    LowOverlapWarning,
    average_curve,
    average_curve_bd,
    bd,
    bd_curves,
    bd_quality,
    bd_rate,
    bd_table,
    dataset_bd,
    mean_of_per_image_bd,
    upper_hull_mask,
)

# ---------------------------------------------------------------------------------------------
# Published vectors ($BENCH_SHARED_DIR/bd-vectors/vectors.json)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors(shared_dir: Path) -> dict[str, dict]:
    path = shared_dir / "bd-vectors" / "vectors.json"
    return {v["id"]: v for v in json.loads(path.read_text())["vectors"]}


def _args(v: dict) -> tuple:
    return v["anchor"]["rate"], v["anchor"]["dist"], v["test"]["rate"], v["test"]["dist"]


def _methods_for(v: dict) -> tuple[str, ...]:
    """Which of our methods the vector's expected value belongs to."""
    text = (v["method"] + " " + str(v["expected"].get("method", ""))).lower()
    if "cubic" in text or "m33" in text:
        return ("cubic",)
    if "pchip" in text:
        return ("pchip",)
    return METHODS  # "any": analytic results hold for every interpolation


NUMERIC_VECTORS = [
    "vceg_m33_example_4pt",
    "jctvc_e137_1",
    "vmaf_long_identical",
    "vmaf_long_scaled_1.1",
    "vmaf_long_scaled_0.9",
    "psnr_offset_plus2_4pt",
]


@pytest.mark.parametrize("vid", NUMERIC_VECTORS)
def test_published_vector_values(vectors: dict, vid: str) -> None:
    v = vectors[vid]
    exp = v["expected"]
    assert "bd_rate_percent" in exp or "bd_psnr_dB" in exp
    for method in _methods_for(v):
        if "bd_rate_percent" in exp:
            assert bd_rate(*_args(v), method=method) == pytest.approx(exp["bd_rate_percent"], abs=1e-6), method
        if "bd_psnr_dB" in exp:
            assert bd_quality(*_args(v), method=method) == pytest.approx(exp["bd_psnr_dB"], abs=1e-6), method


def test_method_attribution_of_vectors(vectors: dict) -> None:
    # The M33 value is a cubic-fit value and the JCTVC-E137 value a PCHIP one: the other methods
    # miss them by far more than the 1e-6 tolerance, so the attribution matters.
    m33, e137 = vectors["vceg_m33_example_4pt"], vectors["jctvc_e137_1"]
    assert abs(bd_rate(*_args(m33), method="pchip") - m33["expected"]["bd_rate_percent"]) > 1e-2
    assert abs(bd_rate(*_args(e137), method="cubic") - e137["expected"]["bd_rate_percent"]) > 1e-4


@pytest.mark.parametrize(
    "vid, culprit",
    [
        ("vmaf_nonmonotonic_1", "point 0 (rate=108048.8736, quality=39.6471)"),
        ("vmaf_nonmonotonic_2", "point 1 (rate=61279.976, quality=40.3953)"),
    ],
)
@pytest.mark.parametrize("method", METHODS)
def test_non_monotonic_vectors_raise_and_name_the_point(vectors: dict, vid: str, culprit: str, method: str) -> None:
    for fn in (bd_rate, bd_quality):
        with pytest.raises(BDError, match="not monotonic") as err:
            fn(*_args(vectors[vid]), method=method)
        assert "anchor" in str(err.value) and culprit in str(err.value)


@pytest.mark.parametrize("method", METHODS)
def test_log_base_does_not_change_results(vectors: dict, method: str) -> None:
    # M33 defines BD-rate with ln, JVET with log10: equal in exact arithmetic, checked here numerically.
    for vid in NUMERIC_VECTORS + ["fau_readme_example_4pt", "fau_example_6pt"]:
        args = _args(vectors[vid])
        for fn in (bd_rate, bd_quality):
            assert fn(*args, method=method, log_base=math.e) == pytest.approx(
                fn(*args, method=method, log_base=10.0), abs=1e-9
            ), (vid, fn.__name__)


@pytest.mark.parametrize("method", METHODS)
def test_cross_check_with_fau_bjontegaard(vectors: dict, method: str) -> None:
    for vid in NUMERIC_VECTORS + ["fau_readme_example_4pt", "fau_example_6pt"]:
        args = _args(vectors[vid])
        kw = dict(method=method, require_matching_points=False, min_overlap=0)
        assert bd_rate(*args, method=method) == pytest.approx(fau.bd_rate(*args, **kw), abs=1e-8), vid
        assert bd_quality(*args, method=method) == pytest.approx(fau.bd_psnr(*args, **kw), abs=1e-8), vid


def test_unsorted_input_is_sorted(vectors: dict) -> None:
    ra, qa, rt, qt = (np.asarray(x) for x in _args(vectors["fau_example_6pt"]))
    perm = np.random.default_rng(0).permutation(len(ra))
    for method in METHODS:
        assert bd_rate(ra[perm], qa[perm], rt, qt, method=method) == pytest.approx(
            bd_rate(ra, qa, rt, qt, method=method), abs=1e-12
        )


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------

RA, QA = [0.1, 0.2, 0.4, 0.8], [30.0, 33.0, 36.0, 39.0]
RT, QT = [0.09, 0.18, 0.36, 0.72], [30.2, 33.1, 36.0, 39.2]


def test_too_few_points_says_what_each_method_needs() -> None:
    with pytest.raises(BDError, match=r"'cubic' needs at least 4") as err:
        bd_rate(RA[:3], QA[:3], RT, QT, method="cubic")
    assert "pchip needs 2" in str(err.value) and "akima needs 2" in str(err.value)
    with pytest.raises(BDError, match=r"'pchip' needs at least 2"):
        bd_rate(RA, QA, RT[:1], QT[:1], method="pchip")
    # 3 points are enough for pchip and akima
    assert math.isfinite(bd_rate(RA[:3], QA[:3], RT, QT, method="pchip"))
    assert math.isfinite(bd_rate(RA[:3], QA[:3], RT, QT, method="akima"))


@pytest.mark.parametrize(
    "rates, quals, pattern",
    [
        ([0.1, 0.2, float("nan"), 0.8], QA, r"point 2 has a non-finite rate"),
        (RA, [30.0, float("nan"), 36.0, 39.0], r"point 1 has a non-finite quality"),
        (RA, [30.0, float("inf"), 36.0, 39.0], r"non-finite quality"),
        ([0.1, 0.0, 0.4, 0.8], QA, r"point 1 has rate 0; rates must be > 0"),
        ([0.1, -0.2, 0.4, 0.8], QA, r"rates must be > 0"),
        ([0.1, 0.2, 0.2, 0.8], QA, r"points 1 and 2 have the same rate"),
        (RA, [30.0, 33.0, 33.0, 39.0], r"point 2 .* does not have a higher quality than point 1"),
        (RA[:3], QA, r"3 rates but 4 qualities"),
    ],
)
def test_bad_curves_raise_clear_errors(rates: list, quals: list, pattern: str) -> None:
    with pytest.raises(BDError, match=pattern):
        bd_rate(rates, quals, RT, QT)
    with pytest.raises(BDError, match="^test: "):
        bd_quality(RA, QA, rates, quals)


def test_unknown_method_and_kind() -> None:
    with pytest.raises(BDError, match="unknown BD method 'spline'"):
        bd_rate(RA, QA, RT, QT, method="spline")  # type: ignore[arg-type]
    with pytest.raises(BDError, match="unknown BD kind"):
        bd(RA, QA, RT, QT, kind="psnr")  # type: ignore[arg-type]


def test_no_overlap_is_an_error() -> None:
    with pytest.raises(BDError, match=r"do not overlap in quality: anchor spans \[30, 39\]"):
        bd_rate(RA, QA, [1, 2, 4, 8], [40, 41, 42, 43])
    with pytest.raises(BDError, match="do not overlap in log rate"):
        bd_quality(RA, QA, [1, 2, 4, 8], [30, 33, 36, 39])


def test_low_overlap_warns_with_fraction() -> None:
    # test spans 37..46 dB, anchor 30..39 dB: overlap 2 dB of the shorter 9 dB range = 22.2 %
    qt = [37.0, 40.0, 43.0, 46.0]
    with pytest.warns(LowOverlapWarning, match=r"share 22\.2% of the shorter curve's range"):
        res = bd(RA, QA, [0.7, 1.4, 2.8, 5.6], qt)
    assert res.overlap == pytest.approx(2 / 9)
    assert res.interval == (37.0, 39.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bd(RA, QA, [0.7, 1.4, 2.8, 5.6], qt, min_overlap=0.2)  # threshold below: silent


def test_nested_ranges_have_full_overlap() -> None:
    res = bd(RA, QA, [0.15, 0.3], [32.0, 35.0])
    assert res.overlap == 1.0 and res.n_anchor == 4 and res.n_test == 2
    assert bd_curves(Curve(RA, QA), Curve([0.15, 0.3], [32.0, 35.0])) == res
    with pytest.raises(BDError, match="2 rates but 1 qualities"):
        Curve([0.1, 0.2], [30.0])


# ---------------------------------------------------------------------------------------------
# Convex hull
# ---------------------------------------------------------------------------------------------


def test_upper_hull_mask() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([30.0, 31.0, 35.0, 37.0, 38.0, 36.0])  # point 1 below chord 0->2; point 5 dominated
    assert upper_hull_mask(x, y).tolist() == [True, False, True, True, True, False]
    # collinear points lie on the hull and are kept
    assert upper_hull_mask(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])).all()
    # a point worse than an earlier, cheaper one is dominated
    assert upper_hull_mask(np.array([0.0, 1.0, 2.0]), np.array([40.0, 38.0, 39.0])).tolist() == [True, False, False]


def test_convex_hull_is_explicit_and_reported(vectors: dict) -> None:
    ra, qa, rt, qt = _args(vectors["vmaf_nonmonotonic_1"])
    with pytest.raises(BDError, match="not monotonic"):
        bd_rate(ra, qa, rt, qt)  # never applied silently
    with pytest.warns(ConvexHullWarning, match=r"removed 1 of 4 points .*point 0 \(rate=108048\.8736, quality=39\.6471\)"):
        value = bd_rate(ra, qa, rt, qt, method="pchip", convex_hull=True)
    assert value == pytest.approx(bd_rate(ra[1:], qa[1:], rt, qt, method="pchip"), abs=1e-12)
    # cubic needs 4 points, and only 3 remain after the hull
    with pytest.warns(ConvexHullWarning), pytest.raises(BDError, match=r"anchor \(after convex hull\): 3 point"):
        bd_rate(ra, qa, rt, qt, method="cubic", convex_hull=True)


def test_convex_hull_drops_a_point_below_the_hull() -> None:
    ra = [0.1, 0.2, 0.4, 0.8, 1.6]
    qa = [30.0, 31.0, 36.0, 39.0, 41.0]  # monotonic, but 0.2 bpp is far below the chord
    with pytest.warns(ConvexHullWarning, match=r"point 1 \(rate=0\.2, quality=31\)"):
        hull = bd_rate(ra, qa, RT, QT, convex_hull=True)
    without = bd_rate([0.1, 0.4, 0.8, 1.6], [30.0, 36.0, 39.0, 41.0], RT, QT)
    assert hull == pytest.approx(without, abs=1e-12)
    assert hull != pytest.approx(bd_rate(ra, qa, RT, QT), abs=1e-3)


# ---------------------------------------------------------------------------------------------
# Per-image rows and averaging conventions
# ---------------------------------------------------------------------------------------------

IMAGES = {"kodim01": 28.0, "kodim02": 31.0, "kodim03": 34.0}  # per-image quality offset c_i
COMPLEXITY = {"kodim01": 3.0, "kodim02": 1.0, "kodim03": 1.0}  # per-image bits factor m_i
ANCHOR_BPP = [0.1, 0.2, 0.4, 0.8, 1.6]


def _rows(codec: str, scale: dict[str, float] | float = 1.0, **extra) -> pd.DataFrame:
    """Rows at bpp = b*m_i*s_i with quality c_i + f(b): the codec needs s_i x the anchor's bits."""
    rows = []
    for image, c in IMAGES.items():
        s = scale[image] if isinstance(scale, dict) else scale
        for k, b in enumerate(ANCHOR_BPP):
            rows.append(dict(codec=codec, rate_label=f"q{k}", image=image, bpp=b * COMPLEXITY[image] * s,
                             psnr_rgb=c + 9 * math.log10(b) + 0.3 * math.log10(b) ** 2, **extra))
    return pd.DataFrame(rows)


def test_average_curve_means_bpp_and_quality_per_rate_point() -> None:
    df = _rows("x")
    avg = average_curve(df)
    assert list(avg.columns) == ["rate_label", "bpp", "psnr_rgb", "n_images"]
    assert avg["n_images"].tolist() == [3] * 5
    q2 = df[df.rate_label == "q2"]
    assert avg.loc[avg.rate_label == "q2", "psnr_rgb"].item() == pytest.approx(q2.psnr_rgb.mean())
    assert avg["bpp"].tolist() == sorted(avg["bpp"])


@pytest.mark.parametrize("averaging", [AVERAGE_CURVE, MEAN_OF_PER_IMAGE])
@pytest.mark.parametrize("method", METHODS)
def test_uniform_rate_scaling_gives_exact_bd_rate(averaging: str, method: str) -> None:
    # every image needs 0.8x the bits at equal quality -> BD-rate is -20 % under either convention
    res = dataset_bd(_rows("t", 0.8), _rows("a"), averaging=averaging, method=method)
    assert res.value == pytest.approx(-20.0, abs=1e-9)
    assert res.averaging == averaging and res.n_images == 3


def test_conventions_differ_when_images_differ() -> None:
    scale = {"kodim01": 0.5, "kodim02": 1.0, "kodim03": 1.0}
    test, anchor = _rows("t", scale), _rows("a")
    per_image = mean_of_per_image_bd(test, anchor)
    assert per_image.per_image == pytest.approx({"kodim01": -50.0, "kodim02": 0.0, "kodim03": 0.0}, abs=1e-9)
    assert per_image.value == pytest.approx(-50.0 / 3, abs=1e-9)
    # average curve: mean test bpp = sum(m_i s_i)/sum(m_i) = (1.5 + 1 + 1)/5 = 0.7 x the anchor's
    assert average_curve_bd(test, anchor).value == pytest.approx(-30.0, abs=1e-9)


def test_average_curve_bd_accepts_a_published_curve() -> None:
    anchor_avg = average_curve(_rows("a"))
    curve = Curve(anchor_avg["bpp"], anchor_avg["psnr_rgb"], "published")
    assert average_curve_bd(_rows("t", 0.8), curve).value == pytest.approx(-20.0, abs=1e-9)
    with pytest.raises(BDError, match="mean-of-per-image needs per-image anchor rows"):
        mean_of_per_image_bd(_rows("t"), curve)  # type: ignore[arg-type]


def test_average_curve_rejects_incomplete_or_repeated_rows() -> None:
    df = _rows("x")
    with pytest.raises(BDError, match=r"rate point 'q3' lacks 1 of 3 images"):
        average_curve(df.drop(index=df[(df.rate_label == "q3") & (df.image == "kodim02")].index))
    with pytest.raises(BDError, match="repeat a \\(rate label, image\\) pair"):
        average_curve(pd.concat([df, df.iloc[:1]]))
    bad = df.copy()
    bad.loc[4, "psnr_rgb"] = np.nan
    with pytest.raises(BDError, match="missing or non-finite 'psnr_rgb'"):
        average_curve(bad)
    with pytest.raises(BDError, match="missing column"):
        average_curve(df, quality="ms_ssim")


def test_anchor_rows_must_cover_the_same_images() -> None:
    anchor = _rows("a")
    with pytest.raises(BDError, match="compare on the same images"):
        average_curve_bd(_rows("t"), anchor[anchor.image != "kodim03"])
    with pytest.raises(BDError, match="compare on the same images"):
        mean_of_per_image_bd(_rows("t"), anchor[anchor.image != "kodim03"])


def test_mean_of_per_image_names_failing_images() -> None:
    test = _rows("t", 0.8)
    test.loc[(test.image == "kodim02") & (test.rate_label == "q4"), "psnr_rgb"] = 0.0  # non-monotonic
    with pytest.raises(BDError, match=r"failed for 1 of 3 images: kodim02: test: curve is not monotonic"):
        mean_of_per_image_bd(test, _rows("a"))


# ---------------------------------------------------------------------------------------------
# bd_table
# ---------------------------------------------------------------------------------------------


def _store_rows() -> pd.DataFrame:
    good = _rows("good", 0.8, status="ok", trained=1, dataset="kodak", resolution="native", device="cpu")
    untrained = _rows("untrained", 0.5, status="ok", trained=0, dataset="kodak", resolution="native", device="cpu")
    broken = _rows("broken", 0.9, status="ok", trained=1, dataset="kodak", resolution="native", device="cpu")
    broken.loc[broken.rate_label == "q4", "psnr_rgb"] -= 20.0  # quality falls at the top rate
    flaky = _rows("flaky", 0.9, status="ok", trained=1, dataset="kodak", resolution="native", device="cpu")
    flaky.loc[flaky.index[0], "status"] = "error"
    return pd.concat([good, untrained, broken, flaky], ignore_index=True)


def test_bd_table_one_row_per_codec_with_errors_recorded() -> None:
    table = bd_table(_store_rows(), average_curve(_rows("a")).pipe(lambda a: Curve(a.bpp, a.psnr_rgb)),
                     anchor_name="synthetic")
    table = table.set_index("codec")
    assert sorted(table.index) == ["broken", "flaky", "good", "untrained"]
    assert table.loc["good", "status"] == "ok"
    assert table.loc["good", "bd_rate_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert table.loc["good", "bd_quality"] > 0
    assert table.loc["good", "overlap"] == pytest.approx(1.0)
    assert table.loc["good", ["n_points", "n_anchor_points", "n_images"]].tolist() == [5, 5, 3]
    assert table.loc["good", "method"] == "pchip" and table.loc["good", "averaging"] == AVERAGE_CURVE
    assert table.loc["untrained", "status"] == "excluded"
    assert "trained=0" in table.loc["untrained", "reason"] and np.isnan(table.loc["untrained", "bd_rate_pct"])
    assert table.loc["broken", "status"] == "error" and "not monotonic" in table.loc["broken", "reason"]
    assert "points by rate label: 0=q0, 1=q1" in table.loc["broken", "reason"]
    assert table.loc["flaky", "status"] == "error" and table.loc["flaky", "n_error_rows"] == 1
    assert "lacks 1 of 3 images" in table.loc["flaky", "reason"]
    assert set(table["anchor"]) == {"synthetic"}


def test_bd_table_mean_of_per_image_with_anchor_rows_and_warnings() -> None:
    df = _store_rows()
    df = df[df.codec == "good"]
    table = bd_table(df, _rows("a"), averaging=MEAN_OF_PER_IMAGE, method="akima", min_overlap=1.01)
    row = table.iloc[0]
    assert row["status"] == "ok" and row["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert "low overlap" in row["warnings"]


def test_bd_table_with_store_rows_as_anchor() -> None:
    """Anchor rows straight from the store carry a dataset column (a Series attribute, not a name)."""
    df = _store_rows()
    anchor = _rows("a", status="ok", trained=1, dataset="kodak", resolution="native", device="cpu")
    table = bd_table(df[df.codec == "good"], anchor, averaging=MEAN_OF_PER_IMAGE).iloc[0]
    assert table["status"] == "ok" and table["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert table["warnings"] == ""
    other = bd_table(df[df.codec == "good"], anchor.assign(dataset="tecnick")).iloc[0]
    assert "anchor is 'tecnick'" in other["warnings"]


def test_bd_table_argument_errors_raise() -> None:
    df = _store_rows()
    curve = Curve(ANCHOR_BPP, [30, 33, 36, 39, 42])
    with pytest.raises(BDError, match="one dataset"):
        bd_table(pd.concat([df, df.assign(dataset="tecnick")]), curve)
    with pytest.raises(BDError, match="mean-of-per-image needs per-image anchor rows"):
        bd_table(df, curve, averaging=MEAN_OF_PER_IMAGE)
    with pytest.raises(BDError, match="unknown averaging"):
        bd_table(df, curve, averaging="median")  # type: ignore[arg-type]
    with pytest.raises(BDError, match="missing column"):
        bd_table(df, curve, quality="psnr_y")
    with pytest.raises(BDError, match="several codecs"):
        bd_table(df, df)
    with pytest.raises(BDError, match="anchor rows: untrained"):
        bd_table(df, df[df.codec == "untrained"])
