"""The MLIC++ decode benchmark's per-part timer (bench.tools.mlicpp_speed): it splits, it does not change."""

from __future__ import annotations

import time

import torch

import bench.models.mlicpp.model as model_module
from bench.models.mlicpp import untrained_model
from bench.tools.mlicpp_speed import PARTS, DecodeTimer, timed_rans


def test_decode_timer_splits_the_decode_and_leaves_it_unchanged():
    model = untrained_model(seed=3)
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    data = model.compress(x).data
    plain = model.decompress(data)
    original = model_module.RansDecoder
    timer = DecodeTimer(model)
    DecodeTimer.active = timer
    t, c = time.perf_counter(), time.process_time()
    with timed_rans():
        timed = model.decompress(data)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert torch.equal(timed, plain)  # instrumentation changes no value
    assert model_module.RansDecoder is original and DecodeTimer.active is None  # patch undone
    for total, parts in ((wall, timer.parts(wall)), (cpu, timer.parts(cpu, cpu=True))):
        assert set(parts) == set(PARTS)
        assert abs(sum(parts.values()) - total) < 1e-9
    walls = timer.parts(wall)
    assert walls["g_s"] > 0 and walls["hyper_decoder"] > 0 and walls["entropy_coding"] > 0
    assert walls["entropy_model"] > 0  # the recursion's networks: what is left


def test_benchmark_compares_modes_side_by_side_and_stores_every_part(tmp_path, monkeypatch, capsys):
    import json
    import sqlite3

    import numpy as np
    from PIL import Image

    from bench.tools.mlicpp_speed import main
    from tests.conftest import photo_like

    Image.fromarray(photo_like(96, 128, seed=5)).save(tmp_path / "photo.png")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    modes = ["reference", "fast", "portable"]
    assert main(["--sizes", "128x64", "--source", "photo.png", "--repeats", "1", "--modes", *modes,
                 "--json", str(tmp_path / "speed.json"), "--results", str(tmp_path / "results")]) == 0
    record = json.loads((tmp_path / "speed.json").read_text())["records"][0]
    assert list(record["modes"]) == modes and set(record["matmul_gflops"]) == {"float32", "float64"}
    assert record["modes"]["portable"]["dtype"] == "float64"
    for m in record["modes"].values():
        assert m["gflop"] > 0 and m["decode_s"] > 0 and m["over_reference"]["decode_s"] > 0
        assert abs(sum(p["seconds"] for p in m["parts"].values()) - m["decode_s"]) < 1e-9
    # counted work is the direct convolutions' in every mode (Winograd does not change the count)
    assert record["modes"]["fast"]["parts"]["g_s"]["gflop"] == record["modes"]["reference"]["parts"]["g_s"]["gflop"]
    rows = sqlite3.connect(tmp_path / "results" / "results.sqlite").execute(
        "SELECT mode, part, dtype, seconds FROM decode_parts").fetchall()
    assert len(rows) == len(modes) * 5 and {r[2] for r in rows if r[0] == "portable"} == {"float64"}
    assert "portable" in capsys.readouterr().out
    assert np.isfinite([r[3] for r in rows]).all()
