"""CompressAI zoo adapter: configurations, local-only weights, untrained labelling, real bitstreams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.codecs import registry
from bench.codecs.base import CodecConfig, RatePoint
from bench.errors import CheckpointError, CodecError
from bench.hashing import file_sha256
from bench.models import zoo
from bench.models.imageio import to_tensor, to_uint8
from bench.models.quantizers import hard_round

CODECS = Path(__file__).resolve().parents[2] / "codecs"
Q12 = (RatePoint("quality=1", {"quality": 1}), RatePoint("quality=2", {"quality": 2}))


def config(architecture: str = "bmshj2018-hyperprior", rates=Q12, **params) -> CodecConfig:
    return CodecConfig(name=f"{architecture}-test", adapter="compressai",
                       params={"architecture": architecture, **params}, rates=rates)


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 * np.ones((h, w))], -1) * 220
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def no_user_weights(tmp_path_factory):
    """Point the weights folder at an empty one: tests never see (or fetch) real weights."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
        mp.delenv("BENCH_WEIGHTS_DIR", raising=False)
        yield


@pytest.fixture(scope="module")
def hyperprior():
    with pytest.warns(UserWarning, match="UNTRAINED"):
        return registry.create(config())


def with_weights(rates, **weights) -> tuple[RatePoint, ...]:
    return tuple(RatePoint(r.label, {**r.params, "weights": dict(weights)}) for r in rates)


def test_configurations_in_codecs_dir() -> None:
    configs = registry.load_configs(CODECS)
    for name in ("mbt2018", "bmshj2018-hyperprior"):
        cfg = configs[name]
        assert cfg.adapter == "compressai" and cfg.params["architecture"] == name
        assert [r.params["quality"] for r in cfg.rates] == list(range(1, 9))
        assert registry.availability(cfg) is None  # absent weights: untrained, not unavailable
        for r in cfg.rates:  # CompressAI's published files, pinned by the hash in their names
            w = r.params["weights"]
            assert w["url"] == zoo.weights_url(name, "mse", r.params["quality"]) and w["url"].endswith(f"-{w['sha256']}.pth.tar")
            assert w["lambda"] == zoo.MSE_LAMBDAS[r.params["quality"]] and w["licence"].startswith("BSD")
    assert registry.adapter_class("compressai").__name__ == "CompressAIZooCodec"


def test_bad_configurations_are_reported(tmp_path: Path) -> None:
    assert "unknown CompressAI architecture" in registry.availability(config("mbt2019"))
    assert "qualities" in registry.availability(config("cheng2020-anchor", rates=(RatePoint("q7", {"quality": 7}),)))
    assert "unknown parameter" in registry.availability(config(qualty=3))
    assert "MSE models only" in registry.availability(config(metric="ms-ssim", lof_iterations=5))
    assert "no weights table" in registry.availability(config(require_trained=True))
    missing = config(require_trained=True, rates=with_weights(Q12, path=str(tmp_path / "w.pth.tar")))
    msg = registry.availability(missing)
    assert "2 of 2 weights files not found" in msg and str(tmp_path) in msg and "require_trained" in msg
    url = config(require_trained=True, rates=with_weights(Q12[:1], url=zoo.weights_url("mbt2018", "mse", 1), sha256="3f36cd77"))
    assert "python -m bench.codecs.weights" in registry.availability(url)
    with pytest.raises(ValueError, match="unknown CompressAI architecture"):
        registry.create(config("mbt2019"))


def test_untrained_is_labelled(hyperprior) -> None:
    assert hyperprior.trained is False
    info = hyperprior.describe()
    assert info["trained"] is False and info["weights"]["quality=1"] == "untrained"
    assert "compressai 1.2.8" in hyperprior.library_version()


@pytest.mark.parametrize("h,w", [(64, 64), (80, 112), (131, 97)])
def test_round_trip_any_size(hyperprior, h: int, w: int) -> None:
    img = image(h, w)
    enc = hyperprior.encode(img, Q12[0])
    assert enc.data[:4] == b"CAZ1" and enc.extras["sequential_steps"] == 2
    assert enc.extras["trained"] is False and enc.extras["estimated_bits"] > 0
    out = hyperprior.decode(enc.data)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    # the decoder's image is g_s(ŷ) with ŷ = round(y): recompute it from the encoder's latent
    model = hyperprior._model(0)
    with torch.no_grad():
        y = model.analysis(to_tensor(img))
        _, y_hat = model.rate_bits(y, hard_round)
        expected = to_uint8(model.synthesis(y_hat, (h, w)))
    assert np.array_equal(out, expected)


def test_real_bytes_track_estimated_bits(hyperprior) -> None:
    enc = hyperprior.encode(image(128, 128, seed=1), Q12[1])
    est = enc.extras["estimated_bits"]
    assert abs(8 * len(enc.data) - est) < 0.05 * est + 8 * 64


def test_quality_selects_model(hyperprior) -> None:
    img = image(64, 64, seed=2)
    a, b = hyperprior.encode(img, Q12[0]).data, hyperprior.encode(img, Q12[1]).data
    assert zoo.read_header(a)[0][2] == 1 and zoo.read_header(b)[0][2] == 2
    assert hyperprior.decode(b).shape == (64, 64, 3)


def test_corrupt_bitstreams(hyperprior) -> None:
    data = hyperprior.encode(image(64, 64), Q12[0]).data
    with pytest.raises(CodecError, match="CRC"):
        hyperprior.decode(data[:-5] + bytes([data[-5] ^ 0x40]) + data[-4:])
    with pytest.raises(CodecError):
        hyperprior.decode(data[: len(data) // 2])
    with pytest.raises(CodecError, match="not a CAZ1"):
        hyperprior.decode(b"MSP1" + data[4:])


def test_mbt2018_serial_context_round_trip(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="UNTRAINED"):
        codec = registry.create(config("mbt2018", rates=Q12[:1]))
    img = image(64, 80, seed=3)
    enc = codec.encode(img, Q12[0])
    assert enc.extras["sequential_steps"] == 1 + 4 * 8  # z, then one step per latent position
    out = codec.decode(enc.data)
    assert out.shape == (64, 80, 3)
    assert np.array_equal(out, codec.decode(enc.data))
    assert codec.sequential_steps(2048, 1365) > 100 * codec.sequential_steps(128, 128) // 2


def test_local_weights_are_used_and_marked_trained(tmp_path: Path, monkeypatch) -> None:
    """A url's file already in the weights folder is loaded (no download), its sha256 checked."""
    reference = zoo.load_model("mbt2018-mean", 1, seed=7)
    url = "https://example.invalid/models/mbt2018-mean-1-test.pth.tar"
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    torch.save(reference.net.state_dict(), tmp_path / "mbt2018-mean-1-test.pth.tar")
    sha = file_sha256(tmp_path / "mbt2018-mean-1-test.pth.tar")
    cfg = config("mbt2018-mean", rates=with_weights(Q12[:1], url=url, sha256=sha), require_trained=True)
    assert registry.availability(cfg) is None
    codec = registry.create(cfg)
    assert codec.trained is True and codec.describe()["weights"]["quality=1"]["url"] == url
    img = image(64, 64, seed=4)
    from_file = zoo.load_model("mbt2018-mean", 1, weights=tmp_path / "mbt2018-mean-1-test.pth.tar",
                               portable=True)  # the codec's default path
    assert from_file.trained and codec.encode(img, Q12[0]).data == from_file.compress(to_tensor(img))
    assert codec.weights_sha256(Q12[0]) == sha


def test_weights_with_another_sha256_are_refused(tmp_path: Path) -> None:
    """Loading a weights file whose sha256 differs from the configuration's names both hashes."""
    path = tmp_path / "w.pth.tar"
    torch.save(zoo.load_model("bmshj2018-hyperprior", 1).net.state_dict(), path)
    actual, wrong = file_sha256(path), "0" * 64
    codec = registry.create(config(rates=with_weights(Q12[:1], path=str(path), sha256=wrong)))
    with pytest.raises(CheckpointError) as err:
        codec.encode(image(64, 64), Q12[0])
    assert actual in str(err.value) and wrong in str(err.value)


def test_lof_option_for_zoo(tmp_path: Path) -> None:
    cfg = config("mbt2018-mean", rates=Q12[:1], lof_iterations=3, lof_eval_every=1)
    with pytest.warns(UserWarning):
        codec = registry.create(cfg)
    enc = codec.encode(image(48, 48, seed=5), Q12[0])
    assert enc.extras["lof_iterations"] == 3
    assert enc.extras["lof_cost_after"] <= enc.extras["lof_cost_before"]
    assert codec.decode(enc.data).shape == (48, 48, 3)


def test_model_bytes_of_a_zoo_model(hyperprior) -> None:
    """The shared CompressAI-protocol wrapper exposes its network's tensors: model_bytes is stored
    for zoo cells too (it was NULL: the wrapper had no parameters())."""
    from bench.memory import model_bytes

    net = hyperprior._model(0).net
    tensors = {id(t): t for t in (*net.parameters(), *net.buffers())}
    expected = sum(t.numel() * t.element_size() for t in tensors.values())
    assert model_bytes(hyperprior, Q12[0]) == expected > 10**6

