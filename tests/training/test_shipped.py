"""The shipped compact models (codecs/msp-tiny*.toml, codecs/mbt2018-tiny*.toml, weights in
codecs/weights/): they load by their TOML's sha256, are trained, decode alike at 1 and 2 threads in
fresh processes, and beat their untrained selves in rate-distortion on Kodak crops by far."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.codecs import registry
from bench.codecs.learned import weights_specs
from bench.crossdecode import cross_check
from bench.models.weights import resolve
from tests.conftest import PROJECT, photo_like

pytest.importorskip("torch")
pytest.importorskip("compressai")

SHIPPED = ("msp-tiny", "mbt2018-tiny")
#: Every configuration that uses shipped weights (the LOF variants share them).
USERS = SHIPPED + ("msp-tiny-lof", "mbt2018-tiny-lof")
LIMIT_BYTES = 16 * 2**20


def config(name: str):
    return registry.load_config(PROJECT / "codecs" / f"{name}.toml")


@pytest.mark.parametrize("name", USERS)
def test_weights_match_their_description(name):
    specs = weights_specs(config(name))
    assert len(specs) >= 4 and all(s is not None for s in specs)
    for spec in specs:
        path, digest = resolve(spec)  # raises if the file changed without its TOML
        assert digest.startswith(spec.sha256) and len(spec.sha256) == 64
        assert spec.lam and spec.metric == "mse" and spec.licence and "non-commercial" in spec.licence
    lambdas = [s.lam for s in specs]
    assert lambdas == sorted(lambdas) and lambdas[0] <= 0.0018 and lambdas[-1] >= 0.0932


def test_all_shipped_weights_fit_the_budget():
    files = sorted((PROJECT / "codecs" / "weights").glob("*.pt"))
    assert files and sum(f.stat().st_size for f in files) <= LIMIT_BYTES


@pytest.mark.parametrize("name", USERS)
def test_listed_as_trained(name):
    assert registry.availability(config(name)) is None
    codec = registry.create(config(name), device="cpu")
    assert codec.trained


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_decode_alike_at_1_and_2_threads(name, tmp_path):
    cfg = config(name)
    images = [photo_like(96, 128, 11), np.ascontiguousarray(photo_like(150, 200, 12)[7:135, 9:201])]
    for point in (cfg.rates[0], cfg.rates[-1]):
        one = dataclasses.replace(cfg, rates=(point,))
        result = cross_check(one, images, tmp_path, decode_threads=(1, 2), encode_threads=2)
        assert result["mismatches"] == {1: [0, 0], 2: [0, 0]}, (name, point.label, result["mismatches"])


def rd_cost(codec, image, rate, lam: float) -> float:
    """Real bitstream bpp + λ·255²·MSE of the decoded image."""
    data = codec.encode(image, rate).data
    out = codec.decode(data).astype(np.float64)
    mse = np.mean((out - image.astype(np.float64)) ** 2) / 255**2
    return len(data) * 8 / (image.shape[0] * image.shape[1]) + lam * 255**2 * mse


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", SHIPPED)
def test_trained_beats_untrained_on_kodak_crops(name, data_dir):
    from PIL import Image

    crops = []
    for file in ("kodim01.png", "kodim23.png"):
        with Image.open(data_dir / "kodak" / file) as im:
            crops.append(np.asarray(im.convert("RGB"))[128:384, 128:384].copy())
    cfg = config(name)
    middle = cfg.rates[len(cfg.rates) // 2]
    trained = registry.create(dataclasses.replace(cfg, rates=(middle,)), device="cpu")
    bare = {k: v for k, v in middle.params.items() if k != "weights"}
    untrained = registry.create(dataclasses.replace(cfg, rates=(dataclasses.replace(middle, params=bare),)),
                                device="cpu")
    assert trained.trained and not untrained.trained
    lam = float(middle.params["weights"]["lambda"])
    for crop in crops:
        good = rd_cost(trained, crop, trained.config.rates[0], lam)
        bad = rd_cost(untrained, crop, untrained.config.rates[0], lam)
        assert good < 0.5 * bad, (name, good, bad)
