"""The ``mlicpp`` adapter: registry, configurations, availability, untrained mode, real bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.codecs.base import CodecConfig, Encoded, RatePoint
from bench.errors import CodecError
from bench.codecs.mlicpp import MLICPlusPlusCodec
from bench.codecs.registry import BUILTIN_ADAPTERS, adapter_class, availability, create, load_config

PROJECT = Path(__file__).resolve().parents[2]
CODECS = PROJECT / "codecs"


@pytest.fixture(scope="module")
def untrained_codec() -> MLICPlusPlusCodec:
    config = load_config(CODECS / "mlicpp-untrained.toml")
    with pytest.warns(UserWarning, match="UNTRAINED"):
        codec = create(config)
    yield codec
    codec.close()


def test_registered_and_configs_load():
    assert BUILTIN_ADAPTERS["mlicpp"] == "bench.codecs.mlicpp:MLICPlusPlusCodec"
    assert adapter_class("mlicpp") is MLICPlusPlusCodec
    config = load_config(CODECS / "mlicpp.toml")
    assert config.adapter == "mlicpp" and len(config.rates) == 6
    assert [p.params["lmbda"] for p in config.rates] == [0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483]
    assert all(p.params["metric"] == "mse" and "checkpoint" in p.params for p in config.rates)
    assert config.params["threads"] == 2


def test_missing_checkpoints_are_explained(monkeypatch, tmp_path):
    config = load_config(CODECS / "mlicpp.toml")
    monkeypatch.delenv("MLICPP_CHECKPOINT_DIR", raising=False)
    assert "MLICPP_CHECKPOINT_DIR, which is not set" in availability(config)
    monkeypatch.setenv("MLICPP_CHECKPOINT_DIR", str(tmp_path))
    reason = availability(config)
    assert "6 of 6 MLIC++ checkpoint files not found" in reason and str(tmp_path) in reason
    assert "untrained" in reason


def test_untrained_mode_is_labelled(untrained_codec):
    assert availability(untrained_codec.config) is None
    assert untrained_codec.trained is False
    info = untrained_codec.describe()
    assert info["trained"] is False and "UNTRAINED" in info["warning"] and info["torch_threads"] == 2
    assert "CompressAI 1.2.8" in untrained_codec.library_version()
    untrained_codec.synchronize()  # CPU: a no-op that must not raise


@pytest.mark.parametrize("size", [(64, 64), (96, 80), (80, 112)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_round_trip_with_estimated_bits(untrained_codec, photo, size):
    h, w = size
    image = np.ascontiguousarray(photo[37:37 + h, 101:101 + w])  # odd offsets
    rate = untrained_codec.config.rates[0]
    encoded = untrained_codec.encode(image, rate)
    assert isinstance(encoded, Encoded) and isinstance(encoded.data, bytes)
    extras = encoded.extras
    assert extras["estimated_bits"] == pytest.approx(extras["estimated_bits_y"] + extras["estimated_bits_z"])
    assert extras["trained"] is False and 0 < extras["y_nonzero_fraction"] < 1
    decoded = untrained_codec.decode(encoded.data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.array_equal(untrained_codec.decode(encoded.data), decoded)  # deterministic
    print(f"{h}x{w}: {len(encoded.data)} bytes, estimated/real bits {extras['estimated_bits'] / (8 * len(encoded.data)):.3f}")


def test_decoder_output_is_the_encoder_reconstruction(untrained_codec, photo):
    image = np.ascontiguousarray(photo[:64, :64])
    model = untrained_codec.model(0)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)
    with untrained_codec._threads():
        result = model.compress(x, reconstruct=True)
    assert np.array_equal(untrained_codec.decode(result.data), untrained_codec.to_uint8(result.x_hat))


def test_bad_input_and_corrupt_streams(untrained_codec, photo):
    rate = untrained_codec.config.rates[0]
    with pytest.raises(CodecError, match="uint8"):
        untrained_codec.encode(photo[:64, :64].astype(np.float32), rate)
    with pytest.raises(CodecError, match="unknown rate point"):
        untrained_codec.encode(np.ascontiguousarray(photo[:64, :64]), RatePoint("nope"))
    data = untrained_codec.encode(np.ascontiguousarray(photo[:64, :64]), rate).data
    for bad in (b"", data[:10], data[:-3], data[:20] + bytes([data[20] ^ 0x10]) + data[21:]):
        with pytest.raises(CodecError):
            untrained_codec.decode(bad)
    wrong_rate = data[:1] + bytes([5]) + data[2:]
    with pytest.raises(CodecError, match="rate point #5"):
        untrained_codec.decode(wrong_rate)


def test_cuda_request_without_cuda_is_explained():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = CodecConfig(name="m", adapter="mlicpp", params={"untrained": True}, rates=(RatePoint("r"),), device="cuda")
    assert "cuda" in availability(config).lower()


def test_invalid_params_are_reported():
    config = CodecConfig(name="m", adapter="mlicpp", params={"untrained": True, "mode": "turbo"}, rates=(RatePoint("r"),))
    assert "mode must be one of" in availability(config)


@pytest.mark.slow
def test_checkpoint_ladder_with_env_and_home(monkeypatch, tmp_path, photo):
    """A ladder of checkpoint files (official layout) found through $VARS and ~."""
    from bench.models.mlicpp import untrained_model

    source = untrained_model(seed=3)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}  # DDP prefix, 1.2.8 names
    (tmp_path / "ckpt").mkdir()
    torch.save({"epoch": 9, "state_dict": state}, tmp_path / "ckpt" / "a.pth.tar")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MY_CKPT", str(tmp_path / "ckpt"))
    config = CodecConfig(name="mlicpp-test", adapter="mlicpp", params={"threads": 2}, rates=(
        RatePoint("a", {"checkpoint": "$MY_CKPT/a.pth.tar", "lmbda": 0.0018, "metric": "mse"}),
        RatePoint("b", {"checkpoint": "~/ckpt/a.pth.tar", "lmbda": 0.0035, "metric": "mse"}),
    ))
    assert availability(config) is None
    codec = create(config)
    assert codec.trained is True
    image = np.ascontiguousarray(photo[:64, :64])
    a, b = codec.encode(image, config.rates[0]), codec.encode(image, config.rates[1])
    assert a.data[1] == 0 and b.data[1] == 1  # the rate index travels in the stream
    assert a.data[2:-4] == b.data[2:-4]  # same weights under both labels
    assert np.array_equal(codec.decode(a.data), codec.decode(b.data))
