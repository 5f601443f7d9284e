"""MSP model: pyramid, coding plan, exact round trips at odd sizes, corrupt bitstreams."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
import torch

from bench.errors import CodecError
from bench.models.msp import PROFILES, MSPProfile, create_model, get_profile, profile_from_params, pyramid, read_header
from bench.models.msp.plan import build_plan, group_sizes
from bench.models.msp.transforms import STRIDE

TINY = MSPProfile("tiny", levels=3, steps_per_level=3, groups=2, N=16, M=12, context_width=16, feature_channels=8)
TINY2 = dataclasses.replace(TINY, name="tiny2", steps_per_level=2, groups=1)


def image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random 1×3×h×w test image in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (smooth + 0.05 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def tiny() -> object:
    return create_model(TINY, seed=1)


# --- pyramid ------------------------------------------------------------------------------------
@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (2, 3), (7, 4), (9, 7), (16, 16), (13, 1)])
def test_pyramid_split_merge_is_exact_inverse(h: int, w: int) -> None:
    y = torch.randn(2, 3, h, w)
    parts = pyramid.split(y)
    assert sum(p.numel() for p in parts.values()) == y.numel()  # every element exactly once
    for name, part in parts.items():
        assert tuple(part.shape[-2:]) == pyramid.part_size(name, h, w)
    assert torch.equal(pyramid.merge(parts, (h, w)), y)


def test_pyramid_decompose_covers_all_levels() -> None:
    y = torch.randn(1, 2, 9, 7)
    top, details = pyramid.decompose(y, 3)
    assert tuple(top.shape[-2:]) == pyramid.level_sizes(9, 7, 3)[3] == (2, 1)
    assert top.numel() + sum(p.numel() for d in details for p in d.values()) == y.numel()
    rebuilt = top
    for s in range(2, -1, -1):
        rebuilt = pyramid.merge({"Y": rebuilt, **details[s]}, pyramid.level_sizes(9, 7, 3)[s])
    assert torch.equal(rebuilt, y)


# --- plan and profiles ----------------------------------------------------------------------------
def test_profile_table_step_counts() -> None:
    expected = {"msp-fast": 7, "msp-base": 10, "msp-base-lof": 10, "msp-tiny": 7, "msp-best": 20}
    assert {n: p.sequential_steps for n, p in PROFILES.items()} == expected
    for p in PROFILES.values():
        assert len(build_plan(p.levels, p.steps_per_level, p.groups)) == p.sequential_steps
    assert [PROFILES[n].lof_iterations for n in expected] == [0, 0, 500, 0, 2000]


def test_transform_choice_keeps_elic_fingerprints() -> None:
    """The ``transform`` field enters the fingerprint only when it is not the original ELIC one."""
    import dataclasses

    fast = PROFILES["msp-fast"]
    assert fast.fingerprint() == dataclasses.replace(fast, transform="elic").fingerprint()
    assert fast.fingerprint() != dataclasses.replace(fast, transform="gdn").fingerprint()
    with pytest.raises(ValueError, match="transform"):
        dataclasses.replace(fast, transform="vit").validate()


def test_profile_errors() -> None:
    with pytest.raises(KeyError, match="unknown MSP profile 'msp-huge'.*msp-fast"):
        get_profile("msp-huge")
    with pytest.raises(KeyError, match="unknown MSP profile"):
        profile_from_params({"profile": "nope"})
    with pytest.raises(ValueError, match="steps_per_level"):
        profile_from_params({"profile": "msp-base", "steps_per_level": 4})
    with pytest.raises(ValueError, match="unknown MSP parameter"):
        profile_from_params({"profile": "msp-base", "levls": 3})
    with pytest.raises(ValueError, match="needs params.profile"):
        profile_from_params({})
    assert profile_from_params({"profile": "msp-base", "groups": 4}).sequential_steps == 40


def test_group_sizes() -> None:
    assert group_sizes(320, 2) == [160, 160]
    assert group_sizes(13, 3) == [5, 4, 4]
    with pytest.raises(ValueError):
        group_sizes(2, 3)


# --- coding ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("h,w", [(64, 64), (80, 112), (131, 97), (17, 5), (1, 1)])
def test_round_trip_bit_exact_and_constant_steps(tiny, h: int, w: int) -> None:
    x = image(h, w)
    with torch.no_grad():
        y = tiny.analysis(x)
        data, y_hat_enc = tiny.compress_latent(y, (h, w))
        x_enc = tiny.synthesis(y_hat_enc, (h, w)).clamp(0, 1)
    y_hat_dec, header = tiny.decompress_latent(data)
    x_dec = tiny.decompress(data)
    assert torch.equal(y_hat_dec, y_hat_enc)
    assert torch.equal(x_dec, x_enc)  # decoder output bit-identical to the encoder's
    assert x_dec.shape == (1, 3, h, w)
    assert (header.height, header.width) == (h, w)
    # one string and one timed step per sequential step, whatever the size
    assert len(read_header(data)[1]) == tiny.sequential_steps == TINY.sequential_steps == 20
    assert [n for n, _ in tiny.last_decode_step_times] == [s.name for s in tiny.plan]
    assert all(t >= 0 for _, t in tiny.last_decode_step_times)
    assert tiny.compress(x) == data  # deterministic


def test_quantized_latent_matches_coding_rule(tiny) -> None:
    """ŷ differs from y by at most ½ per element (symbol = round(y − μ), ŷ = symbol + μ)."""
    x = image(48, 80, seed=3)
    with torch.no_grad():
        y = tiny.analysis(x)
        _, y_hat = tiny.compress_latent(y, (48, 80))
    assert y_hat.shape == y.shape
    assert float((y_hat - y).abs().max()) <= 0.5 + 1e-5
    assert tiny.last_encode_stats["symbols"] == y.numel()


def test_real_bytes_track_estimated_bits() -> None:
    model = create_model(get_profile("msp-fast"), seed=0)
    x = image(80, 112, seed=2)
    data = model.compress(x)
    stats = model.last_encode_stats
    frac = stats["nonzero_symbols"] / stats["symbols"]
    assert 0.3 < frac < 0.7, f"untrained calibration: {frac:.2f} of symbols non-zero"
    overhead = 8 * (4 + 4 + 2 + 17 + 2 + 4 * model.sequential_steps + 4 * model.sequential_steps)
    assert abs(8 * len(data) - stats["estimated_bits"]) < 0.03 * stats["estimated_bits"] + overhead
    assert model.sequential_steps == 7
    assert torch.equal(model.decompress(data), model.decompress(data))


def test_real_profile_round_trip_msp_best() -> None:
    model = create_model(get_profile("msp-best"), seed=0)
    x = image(64, 64, seed=5)
    with torch.no_grad():
        data, y_hat = model.compress_latent(model.analysis(x), (64, 64))
        x_enc = model.synthesis(y_hat, (64, 64)).clamp(0, 1)
    assert torch.equal(model.decompress(data), x_enc)
    assert len(model.last_decode_step_times) == 20


def test_forward_likelihoods_cover_every_element(tiny) -> None:
    x = image(40, 56)
    tiny.train()
    try:
        out = tiny(x)
    finally:
        tiny.eval()
    liks = out["likelihoods"]["y"]
    n = TINY.M * -(-40 // STRIDE) * -(-56 // STRIDE)
    assert sum(t.numel() for t in liks) == n
    assert all(((t > 0) & (t <= 1)).all() for t in liks)
    assert out["x_hat"].shape == x.shape
    loss = sum(-torch.log2(t).sum() for t in liks) + out["x_hat"].square().mean()
    loss.backward()
    assert tiny.g_a[0].weight.grad is not None and tiny.context["L0_D_g0"].head.weight.grad is not None
    tiny.zero_grad(set_to_none=True)


# --- bad input --------------------------------------------------------------------------------------
def test_corrupt_and_truncated_bitstreams_raise_codec_error(tiny) -> None:
    data = tiny.compress(image(64, 48))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    cases = {
        "empty": b"",
        "truncated": data[: len(data) - 7],
        "flipped": bytes(flipped),
        "magic": b"XXXX" + data[4:],
        "extra": data + b"\0",
    }
    for name, bad in cases.items():
        with pytest.raises(CodecError, match="MSP"):
            tiny.decompress(bad)


def test_bitstream_from_other_profile_is_rejected(tiny) -> None:
    other = create_model(TINY2, seed=1)
    data = other.compress(image(32, 32))
    with pytest.raises(CodecError, match="another architecture"):
        tiny.decompress(data)


def test_header_layout_documented(tiny) -> None:
    data = tiny.compress(image(33, 50))
    assert data[:4] == b"MSP1"
    (header_len,) = struct.unpack_from(">H", data, 8)
    version, fp, rate, s, k, g, h, w, flags = struct.unpack_from(">BIBBBBIIB", data, 10)
    assert header_len == 18 and version == 2 and (s, k, g, h, w) == (3, 3, 2, 33, 50)
    assert flags == int(tiny.portable)  # bit 0: the float64 (portable) decoder path
    assert fp == TINY.fingerprint() and rate == 0
    assert np.frombuffer(data, np.uint8).size == len(data)
