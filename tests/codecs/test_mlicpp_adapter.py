"""The ``mlicpp`` adapter: registry, configurations, availability, untrained mode, real bytes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.codecs.base import CodecConfig, Encoded, RatePoint
from bench.codecs.mlicpp import MLICPlusPlusCodec
from bench.errors import CodecError, CodecUnavailable
from bench.hashing import file_sha256
from bench.models.mlicpp.bitstream import peek
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
    weights = [p.params["weights"] for p in config.rates]
    assert [w["lambda"] for w in weights] == [0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483]
    assert all(w["metric"] == "mse" and "MLICPP_CHECKPOINT_DIR" in w["path"] and w["source"] for w in weights)
    assert config.params["threads"] == 2
    lof = load_config(CODECS / "mlicpp-lof.toml")
    assert lof.params["untrained"] is True and lof.params["lof_iterations"] > 0 and lof.rates[0].params["lambda"] > 0


def test_missing_checkpoints_are_explained(monkeypatch, tmp_path):
    config = load_config(CODECS / "mlicpp.toml")
    monkeypatch.delenv("MLICPP_CHECKPOINT_DIR", raising=False)
    assert "MLICPP_CHECKPOINT_DIR, which is not set" in availability(config)
    monkeypatch.setenv("MLICPP_CHECKPOINT_DIR", str(tmp_path))
    reason = availability(config)
    assert "6 of 6 weights files not found" in reason and str(tmp_path) in reason
    assert "untrained" in reason and "JiangWeibeta/MLIC" in reason
    no_weights = CodecConfig(name="m", adapter="mlicpp", rates=(RatePoint("r"),))
    assert "has no weights table" in availability(no_weights)


def test_untrained_mode_is_labelled(untrained_codec):
    assert availability(untrained_codec.config) is None
    assert untrained_codec.trained is False
    info = untrained_codec.describe()
    assert info["trained"] is False and "UNTRAINED" in info["warning"] and info["torch_threads"] == 2
    assert "CompressAI 1.2.8" in untrained_codec.library_version()
    # the stored codec version says what computation ran (the default: portable, Winograd)
    assert "fast, float64 decoder, Winograd F(4,3) convolutions" in untrained_codec.library_version()
    assert info["winograd"] is True and info["portable"] is True
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
    wrong_rate = data[:11] + bytes([5]) + data[12:]  # the header's model id (rate index)
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
    sha = file_sha256(tmp_path / "ckpt" / "a.pth.tar")
    config = CodecConfig(name="mlicpp-test", adapter="mlicpp", params={"threads": 2}, rates=(
        RatePoint("a", {"weights": {"path": "$MY_CKPT/a.pth.tar", "sha256": sha, "lambda": 0.0018, "metric": "mse"}}),
        RatePoint("b", {"weights": {"path": "~/ckpt/a.pth.tar", "lambda": 0.0035, "metric": "mse"}}),
    ))
    assert availability(config) is None
    codec = create(config)
    assert codec.trained is True
    image = np.ascontiguousarray(photo[:64, :64])
    a, b = codec.encode(image, config.rates[0]), codec.encode(image, config.rates[1])
    assert peek(a.data).model_id == 0 and peek(b.data).model_id == 1  # the rate index travels in the stream
    assert a.data[12:] == b.data[12:]  # same weights under both labels (only CRC and model id differ)
    assert np.array_equal(codec.decode(a.data), codec.decode(b.data))
    assert codec.weights_sha256(config.rates[0]) == codec.weights_sha256(config.rates[1]) == sha


def test_devices_any_torch_string():
    """Every device string torch accepts is taken; refused only when the device is absent."""
    for device in ("cpu", "cpu:0"):
        config = CodecConfig(name="m", adapter="mlicpp", params={"untrained": True}, rates=(RatePoint("r"),), device=device)
        assert availability(config) is None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    absent = CodecConfig(name="m", adapter="mlicpp", params={"untrained": True}, rates=(RatePoint("r"),),
                         device=f"cuda:{count}")
    assert f"has {count} CUDA device(s)" in availability(absent)
    with pytest.raises(CodecUnavailable, match=f"cuda:{count}"):
        create(absent)
    bogus = CodecConfig(name="m", adapter="mlicpp", params={"untrained": True}, rates=(RatePoint("r"),), device="gpu7")
    assert "not a torch device" in availability(bogus)


def test_models_are_bounded_and_released(monkeypatch):
    """The base keeps at most max_loaded models (least recently used evicted, close() called)."""
    from bench.codecs.learned import LearnedCodec

    closed: list[int] = []

    class Model:
        def __init__(self, index: int):
            self.index = index

        def close(self) -> None:
            closed.append(self.index)

    class Tiny(LearnedCodec):
        adapter = "tiny-test"
        max_loaded = 2

        def _load(self, rate_index: int):
            return Model(rate_index)

        def library_version(self) -> str:
            return "tiny"

        def encode(self, image, rate):
            raise NotImplementedError

        def decode(self, data):
            raise NotImplementedError

    codec = Tiny(CodecConfig(name="t", adapter="tiny-test", rates=tuple(RatePoint(f"r{i}") for i in range(3))))
    a = codec._model(0)
    codec._model(1)
    assert codec._model(0) is a  # cached, and now the most recently used
    codec._model(2)
    assert closed == [1] and list(codec._models) == [0, 2]
    codec.close()
    assert sorted(closed) == [0, 1, 2] and not codec._models


@pytest.mark.slow
def test_lof_through_the_adapter(photo):
    """mlicpp-lof: LOF runs inside encode, keeps a stream the unchanged decoder reads, never worse."""
    config = load_config(CODECS / "mlicpp-lof.toml")
    config = dataclasses.replace(config, params={**config.params, "lof_iterations": 2, "lof_eval_every": 1})
    with pytest.warns(UserWarning, match="UNTRAINED"):
        codec = create(config)
    image = np.ascontiguousarray(photo[:64, :64])
    enc = codec.encode(image, config.rates[0])
    x = enc.extras
    assert x["lof_iterations"] == 2 and x["lof_cost_after"] <= x["lof_cost_before"]
    assert x["lof_bytes_after"] == len(enc.data) and x["estimated_bits"] > 0
    assert codec.decode(enc.data).shape == image.shape
    codec.close()


def test_rows_say_what_thread_counts_were_timed(untrained_codec, photo):
    """Issue 18: MLIC++ encodes at its TOML's ``threads = 2``; a portable stream decodes at the
    run's pin, a float32 stream at the count in its header. ``threads_used`` (stored per row as
    enc_threads / dec_threads / threads_pinned_by) says so, where the row's ``threads`` says only
    the run's --threads."""
    from bench import procenv
    from bench.codecs.base import ThreadUse

    image = np.ascontiguousarray(photo[:64, :64])
    rate = untrained_codec.config.rates[0]
    with pytest.warns(UserWarning, match="UNTRAINED"):
        float32 = create(dataclasses.replace(untrained_codec.config, params={
            **untrained_codec.config.params, "portable": False}))
    before = torch.get_num_threads()
    try:
        with procenv.pinned_for(1):  # the run's --threads 1
            untrained_codec.decode(untrained_codec.encode(image, rate).data)
            portable = untrained_codec.threads_used(1)
            float32.decode(float32.encode(image, rate).data)
            pinned = float32.threads_used(1)
    finally:
        float32.close()
        torch.set_num_threads(before)
    assert portable == ThreadUse(2, 1, "mlicpp params threads=2 (encode)")
    assert pinned == ThreadUse(2, 2, "mlicpp params threads=2 (encode), the float32 stream's header (decode)")
