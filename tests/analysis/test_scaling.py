"""Power-law complexity fits on exact, noisy and bad data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.analysis.scaling import ScalingError, fit_power_law, fit_power_law_by

SIZES = np.array([512 * 768, 1200 * 1200, 1363 * 2048, 2048 * 3072], dtype=float)


@pytest.mark.parametrize("k, c", [(1.0, 3e-7), (1.5, 2e-10), (0.5, 4e-3)])
def test_exact_power_law_is_recovered(k: float, c: float) -> None:
    fit = fit_power_law(SIZES, c * SIZES**k)
    assert fit.exponent == pytest.approx(k, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(c), abs=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.n == 4 and fit.n_sizes == 4
    assert fit.predict(1e6) == pytest.approx(c * 1e6**k, rel=1e-9)


def test_noisy_power_law_within_error() -> None:
    rng = np.random.default_rng(1)
    pixels = np.repeat(SIZES, 10)
    cost = 1e-8 * pixels**1.2 * np.exp(rng.normal(0, 0.05, pixels.size))
    fit = fit_power_law(pixels, cost)
    assert abs(fit.exponent - 1.2) < 3 * fit.exponent_stderr + 1e-3
    assert fit.exponent_stderr < 0.05
    assert 0.95 < fit.r2 < 1.0
    assert fit.n == 40 and fit.n_sizes == 4


def test_two_points_are_exact_without_stderr() -> None:
    fit = fit_power_law([1e5, 4e5], [1.0, 2.0])
    assert fit.exponent == pytest.approx(0.5) and fit.r2 == pytest.approx(1.0)
    assert math.isnan(fit.exponent_stderr)


def test_constant_cost_has_zero_exponent_and_undefined_r2() -> None:
    fit = fit_power_law(SIZES, [2.0] * 4)
    assert fit.exponent == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(fit.r2)


@pytest.mark.parametrize(
    "pixels, cost, pattern",
    [
        ([1e6, 1e6, 1e6], [1.0, 1.1, 0.9], "1 distinct size"),
        ([1e6], [1.0], "at least 2 sizes"),
        ([1e5, 1e6], [1.0, 0.0], r"cost\[1\] = 0\.0"),
        ([1e5, -1e6], [1.0, 2.0], r"pixels\[1\]"),
        ([1e5, 1e6], [1.0, float("nan")], r"cost\[1\] = nan"),
        ([1e5, 1e6, 1e7], [1.0, 2.0], "equal length"),
    ],
)
def test_bad_input_raises(pixels: list, cost: list, pattern: str) -> None:
    with pytest.raises(ScalingError, match=pattern):
        fit_power_law(pixels, cost)


def _store_rows() -> pd.DataFrame:
    rows = []
    for codec, k, device in [("linear", 1.0, "cpu"), ("quadratic", 2.0, "cpu"), ("linear", 1.0, "cuda")]:
        for p in SIZES:
            for rep, noise in enumerate((0.98, 1.0, 1.02)):
                rows.append(dict(codec=codec, device=device, pixels=p, enc_time_s=1e-7 * p**k * noise,
                                 dec_gpu_peak_bytes=np.nan if device == "cpu" else 4.0 * p, status="ok", trained=0))
    rows.append(dict(codec="onesize", device="cpu", pixels=1e6, enc_time_s=1.0, status="ok", trained=1))
    rows.append(dict(codec="onesize", device="cpu", pixels=4e6, enc_time_s=1.0, status="error", trained=1))
    return pd.DataFrame(rows)


def test_fit_by_group_records_errors_per_group() -> None:
    table = fit_power_law_by(_store_rows()).set_index(["codec", "device"])
    assert table.loc[("linear", "cpu"), "exponent"] == pytest.approx(1.0, abs=1e-9)
    assert table.loc[("quadratic", "cpu"), "exponent"] == pytest.approx(2.0, abs=1e-9)
    assert table.loc[("linear", "cuda"), "n"] == 12
    assert table.loc[("linear", "cpu"), "r2"] > 0.999
    # untrained rows are kept (timings are valid); the error row of 'onesize' is not used
    assert table.loc[("onesize", "cpu"), "error"].startswith("1 point(s) at 1 distinct size")
    assert math.isnan(table.loc[("onesize", "cpu"), "exponent"])


def test_fit_by_group_median_and_dropped_rows() -> None:
    table = fit_power_law_by(_store_rows(), cost="dec_gpu_peak_bytes", aggregate="median").set_index(["codec", "device"])
    assert table.loc[("linear", "cuda"), "exponent"] == pytest.approx(1.0, abs=1e-12)
    assert table.loc[("linear", "cuda"), "n"] == 4  # one median per size
    assert table.loc[("linear", "cpu"), "n_dropped"] == 12  # no GPU memory on CPU rows
    assert "0 point(s)" in table.loc[("linear", "cpu"), "error"]


def test_fit_by_group_argument_errors() -> None:
    with pytest.raises(ScalingError, match="missing column"):
        fit_power_law_by(_store_rows(), cost="enc_peak_rss_bytes")
    with pytest.raises(ScalingError, match="unknown aggregate"):
        fit_power_law_by(_store_rows(), aggregate="max")  # type: ignore[arg-type]


# --- decode scaling: steps, exponents, speed-ups over a serial decoder -----------------------------

def _ladder_rows() -> pd.DataFrame:
    """A serial codec (steps = 1 + pixels/256) and a constant-steps one on two sizes, two images
    each, with made-up times: per-size medians are the means of each pair."""
    rows = []
    for codec, steps, wall, cpu in (("serial", lambda p: 1 + p // 256, (0.2, 1.0), (0.1, 0.5)),
                                    ("msp", lambda p: 7, (0.1, 0.2), (0.05, 0.1))):
        for i, (res, pixels) in enumerate((("64x64", 4096), ("128x128", 16384))):
            for k, jitter in enumerate((0.9, 1.1)):
                rows.append({"codec": codec, "device": "cpu", "status": "ok", "resolution": res, "pixels": pixels,
                             "image": f"im{k}", "dec_time_s": wall[i] * jitter, "dec_cpu_s": cpu[i] * jitter,
                             "sequential_steps": float(steps(pixels))})
    return pd.DataFrame(rows)


def test_decode_points_fits_and_speedups_from_rows() -> None:
    from bench.analysis.scaling import decode_points, decode_scaling_fits, decode_speedups, serial_codecs

    ladder = _ladder_rows()
    points = decode_points(ladder)
    assert list(points["cells"]) == [2, 2, 2, 2]
    serial_big = points[(points["codec"] == "serial") & (points["pixels"] == 16384)].iloc[0]
    assert serial_big["dec_time_s"] == pytest.approx(1.0) and serial_big["sequential_steps"] == 65
    assert serial_codecs(points) == [("serial", "cpu")]
    fits = decode_scaling_fits(ladder).set_index("codec")
    assert fits.loc["msp", "steps_k"] == 0.0 and fits.loc["msp", "steps_largest"] == 7
    assert fits.loc["serial", "steps_k"] == pytest.approx(math.log(65 / 17) / math.log(4))
    assert fits.loc["serial", "dec_time_k"] == pytest.approx(math.log(5) / math.log(4))
    (speed,) = decode_speedups(ladder).to_dict("records")
    assert (speed["codec"], speed["reference"], speed["resolution"]) == ("msp", "serial", "128x128")
    assert speed["wall_speedup"] == pytest.approx(5.0) and speed["cpu_speedup"] == pytest.approx(5.0)


def test_speedups_need_a_shared_size_and_a_serial_codec() -> None:
    from bench.analysis.scaling import decode_speedups

    ladder = _ladder_rows()
    assert decode_speedups(ladder[ladder["codec"] == "msp"]).empty  # no serial decoder
    apart = ladder[~((ladder["codec"] == "msp") & (ladder["pixels"] == 16384))]
    (speed,) = decode_speedups(apart).to_dict("records")  # the largest size both decoded
    assert speed["resolution"] == "64x64" and speed["wall_speedup"] == pytest.approx(2.0)
    no_cpu = ladder.assign(dec_cpu_s=np.where(ladder["codec"] == "msp", 0.0, ladder["dec_cpu_s"]))
    (speed,) = decode_speedups(no_cpu).to_dict("records")  # no CPU time recorded: no CPU ratio, not ∞
    assert math.isnan(speed["cpu_speedup"]) and speed["wall_speedup"] == pytest.approx(5.0)

