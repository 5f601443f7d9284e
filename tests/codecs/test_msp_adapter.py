"""MSP adapter: profiles from codecs/*.toml, untrained labelling, checkpoints, extras, bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.codecs import registry
from bench.codecs.base import CodecConfig, Encoded, RatePoint
from bench.errors import CodecError
from bench.hashing import file_sha256
from bench.models.msp import create_model, profile_from_params

CODECS = Path(__file__).resolve().parents[2] / "codecs"
# A tiny variant of msp-base (overridden widths) so coding tests stay fast.
TINY = {"profile": "msp-base", "N": 16, "M": 8, "context_width": 16, "feature_channels": 8}
RATES = (RatePoint("lambda=0.0067", {"lambda": 0.0067}), RatePoint("lambda=0.025", {"lambda": 0.025}))


def config(**params) -> CodecConfig:
    return CodecConfig(name="msp-test", adapter="msp", params={**TINY, **params}, rates=RATES)


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_codec():
    with pytest.warns(UserWarning, match="UNTRAINED"):
        return registry.create(config())


def test_profiles_declared_in_codecs_dir() -> None:
    configs = registry.load_configs(CODECS)
    expected = {"msp-fast": (7, 0), "msp-base": (10, 0), "msp-base-lof": (10, 500), "msp-best": (20, 2000)}
    for name, (steps, lof) in expected.items():
        cfg = configs[name]
        assert cfg.adapter == "msp" and registry.availability(cfg) is None
        assert "re-implementation" in cfg.description
        profile = profile_from_params(cfg.params)
        assert (profile.sequential_steps, profile.lof_iterations) == (steps, lof)
        assert all("lambda" in r.params for r in cfg.rates)
    assert registry.adapter_class("msp").__name__ == "MSPCodec"


def test_unknown_profile_and_bad_params_are_reported() -> None:
    bad = CodecConfig(name="x", adapter="msp", params={"profile": "msp-turbo"}, rates=RATES)
    assert "unknown MSP profile 'msp-turbo'" in registry.availability(bad)
    with pytest.raises(KeyError, match="msp-turbo"):
        registry.create(bad)
    typo = CodecConfig(name="x", adapter="msp", params={"profile": "msp-base", "level": 2}, rates=RATES)
    assert "unknown MSP parameter" in registry.availability(typo)
    no_lambda = CodecConfig(name="x", adapter="msp", params=dict(TINY), rates=(RatePoint("q1", {"q": 1}),))
    with pytest.raises(ValueError, match="no 'lambda'"):
        registry.create(no_lambda)


def with_weights(paths: list[Path], **params) -> CodecConfig:
    rates = tuple(RatePoint(r.label, {**r.params, "weights": {"path": str(p)}}) for r, p in zip(RATES, paths))
    return dataclasses.replace(config(**params), rates=rates)


def test_weights_availability_messages(tmp_path: Path) -> None:
    assert "require_trained" in registry.availability(config(require_trained=True))
    missing = with_weights([tmp_path / "a.pth", tmp_path / "b.pth"])
    assert "2 of 2 weights files not found" in registry.availability(missing)
    bad = dataclasses.replace(config(), rates=(RatePoint("r", {"lambda": 0.01, "weights": {"file": "a.pth"}}),))
    assert "unknown weights key 'file'" in registry.availability(bad)


def test_untrained_codec_is_labelled(tiny_codec) -> None:
    assert tiny_codec.trained is False
    info = tiny_codec.describe()
    assert info["trained"] is False and set(info["weights"].values()) == {"untrained"}
    assert "re-implementation" in info["reimplementation"]
    assert info["profile"]["sequential_steps"] == tiny_codec.sequential_steps == 10
    assert "MSP" in tiny_codec.library_version()


@pytest.mark.parametrize("h,w", [(64, 64), (80, 112), (131, 97)])
def test_encode_decode_through_registry(tiny_codec, h: int, w: int) -> None:
    img = image(h, w)
    enc = tiny_codec.encode(img, RATES[1])
    assert isinstance(enc, Encoded) and enc.data[:4] == b"MSP1"
    assert enc.extras["sequential_steps"] == 10 and enc.extras["lof_iterations"] == 0
    assert enc.extras["estimated_bits"] > 0 and 0 <= enc.extras["nonzero_symbol_fraction"] <= 1
    out = tiny_codec.decode(enc.data)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert [n for n, _ in tiny_codec.last_decode_step_times][0] == "L3_Y_g0"
    assert len(tiny_codec.last_decode_step_times) == 10
    assert set(tiny_codec.last_decode_times) == {"entropy_decoding_s", "synthesis_s"}


def test_rate_index_selects_model(tiny_codec) -> None:
    img = image(48, 48, seed=1)
    a, b = tiny_codec.encode(img, RATES[0]).data, tiny_codec.encode(img, RATES[1]).data
    assert a != b  # rate index in the header and (untrained) a different seed per rate point
    assert tiny_codec.decode(a).shape == tiny_codec.decode(b).shape == (48, 48, 3)


def test_corrupt_bitstreams(tiny_codec) -> None:
    data = tiny_codec.encode(image(32, 48), RATES[0]).data
    with pytest.raises(CodecError, match="CRC"):
        tiny_codec.decode(data[:10] + bytes([data[10] ^ 1]) + data[11:])
    with pytest.raises(CodecError):
        tiny_codec.decode(data[:-3])
    with pytest.raises(CodecError):
        tiny_codec.decode(b"MSP1")


def test_bad_image_is_rejected(tiny_codec) -> None:
    with pytest.raises(CodecError, match="uint8"):
        tiny_codec.encode(np.zeros((8, 8), np.uint8), RATES[0])


def test_checkpoints_load_as_trained(tmp_path: Path) -> None:
    profile = profile_from_params(TINY)
    paths = []
    for i in range(len(RATES)):
        model = create_model(profile, seed=100 + i)
        paths.append(tmp_path / f"r{i}.pth")
        torch.save({"state_dict": model.state_dict()}, paths[-1])
    cfg = with_weights(paths)
    assert registry.availability(cfg) is None
    codec = registry.create(cfg)
    assert codec.trained is True
    assert codec.weights_sha256(RATES[1]) is None  # not loaded yet
    img = image(40, 56, seed=2)
    direct = create_model(profile, seed=101).make_portable()  # the codec's default path
    direct.rate_index = 1
    from bench.models.imageio import to_tensor

    with torch.no_grad():
        expected = direct.encode_latent(direct.analysis(to_tensor(img)), (40, 56))
    assert codec.encode(img, RATES[1]).data == expected  # the checkpoint's weights were used
    assert codec.weights_sha256(RATES[1]) == file_sha256(paths[1])  # recorded per cell


def test_lof_through_the_adapter() -> None:
    cfg = config(lof_iterations=3, lof_eval_every=1, lof_lr=1e-2)
    with pytest.warns(UserWarning):
        codec = registry.create(cfg)
    img = image(32, 32, seed=3)
    enc = codec.encode(img, RATES[0])
    x = enc.extras
    assert x["lof_iterations"] == 3 and x["lof_time_s"] > 0
    assert x["lof_cost_after"] <= x["lof_cost_before"] and x["lof_bytes_after"] == len(enc.data)
    assert codec.decode(enc.data).shape == (32, 32, 3)


def test_profile_override_changes_steps() -> None:
    cfg = dataclasses.replace(config(), params={**TINY, "groups": 2, "steps_per_level": 2})
    with pytest.warns(UserWarning):
        codec = registry.create(cfg)
    assert codec.sequential_steps == 14
    enc = codec.encode(image(24, 40), RATES[0])
    codec.decode(enc.data)
    assert len(codec.last_decode_step_times) == 14
