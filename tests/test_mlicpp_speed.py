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
