"""decode_scaling: helpers and one tiny end-to-end run (MSP vs the serial mbt2018)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import decode_scaling as ds


def test_helpers() -> None:
    assert ds.parse_sizes("256x256, 2048X1365") == [(256, 256), (2048, 1365)]
    with pytest.raises(ValueError, match="is not WxH"):
        ds.parse_sizes("256*256")
    img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    crop = ds.centre_crop(img, 4, 2)
    assert crop.shape == (2, 4, 3) and np.array_equal(crop, img[2:4, 2:6])
    with pytest.raises(ValueError, match="cannot crop"):
        ds.centre_crop(img, 9, 2)
    pixels = [1000, 4000, 16000]
    assert ds.fit_exponent(pixels, [2e-3 * p for p in pixels]) == pytest.approx(1.0)
    assert ds.fit_exponent(pixels, [0.5, 0.5, 0.5]) == pytest.approx(0.0, abs=1e-12)
    assert ds.fit_exponent([10], [1.0]) is None


def test_end_to_end_small(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # never real weights
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "src.png")
    out = tmp_path / "r.json"
    threads = torch.get_num_threads()
    try:
        rc = ds.main(["--image", str(tmp_path / "src.png"), "--sizes", "64x64,128x96", "--mbt-sizes",
                      "64x64,128x96", "--codecs", "mbt2018,msp-fast", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)  # main() sets 1 thread for the process
    assert rc == 0
    doc = json.loads(out.read_text())
    mbt, fast = doc["results"]["mbt2018"]["rows"], doc["results"]["msp-fast"]["rows"]
    assert [r["sequential_steps"] for r in fast] == [7, 7]  # constant
    assert [r["sequential_steps"] for r in mbt] == [1 + 16, 1 + 8 * 8]  # one per latent position
    assert all(r["decode_s"] > 0 and r["bytes"] > 0 for r in mbt + fast)
    assert len(fast[-1]["step_times"]) == 7 and "synthesis_s" in mbt[-1]
    s = doc["summary"]
    assert math.isfinite(s["exponents"]["msp-fast"]["decode"])
    assert s["speedup_vs_mbt2018"]["msp-fast"]["size"] == "128x96"
    assert doc["environment"]["torch_threads"] == 1
