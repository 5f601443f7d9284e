import math

import numpy as np
import pytest

from bench import metrics


def test_psnr_rgb_matches_definition():
    a = np.zeros((20, 30, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # one error of 10 over 1800 samples
    mse = 100 / 1800
    assert metrics.psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-12)


def test_psnr_identical_is_infinite_not_capped():
    a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert metrics.psnr_rgb(a, a) == math.inf


def test_psnr_y_uses_bt709_luma():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[..., 2] = 10  # blue only: luma error 0.0722·10
    assert metrics.psnr_y(a, b) == pytest.approx(10 * math.log10(255**2 / (0.722**2)), abs=1e-9)
    g = a.copy()
    g[..., 1] = 10
    assert metrics.psnr_y(a, g) < metrics.psnr_y(a, b)


def test_ms_ssim_null_for_small_images_and_one_for_identical():
    small = np.zeros((100, 300, 3), np.uint8)
    assert metrics.ms_ssim(small, small) is None
    assert metrics.ms_ssim_db(None) is None
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    value = metrics.ms_ssim(a, noisy)
    assert 0.5 < value < 0.999
    assert metrics.ms_ssim_db(value) == pytest.approx(-10 * math.log10(1 - value))
