"""The trainer (bench.training): data split and batches, the loss going down, exact resume, and
export → codec load → identical decoded pixels. No timing is asserted anywhere."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bench.codecs import registry
from bench.codecs.base import CodecConfig, RatePoint
from tests.conftest import PROJECT, photo_like

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from bench.training.data import TrainingSet, list_images  # noqa: E402
from bench.training.export import curve_path, export_weights  # noqa: E402
from bench.training.loop import CHECKPOINT, CURVE, Trainer, TrainOptions  # noqa: E402
from bench.models.weights import load_weights_file  # noqa: E402

#: A very narrow msp-tiny (same structure, 16 channels) so that steps take milliseconds.
NARROW = {"profile": "msp-tiny", "N": 16, "M": 16, "context_width": 16, "feature_channels": 8}


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("train")
    for i in range(6):
        Image.fromarray(photo_like(96 + 8 * i, 128, 500 + i)).save(folder / f"img{i}.png")
    return folder


def narrow_codec(tmp_path: Path | None = None, weights: dict | None = None):
    rate = {"lambda": 0.01, **({"weights": weights} if weights else {})}
    source = str(tmp_path / "narrow.toml") if tmp_path else ""
    config = CodecConfig("narrow", "msp", dict(NARROW), (RatePoint("lambda=0.01", rate),), source=source)
    return registry.create(config, device="cpu")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_split_and_batches_are_fixed(train_dir):
    data = TrainingSet.load(train_dir, 64, holdout_every=3)
    assert data.heldout_names == ["img2.png", "img5.png"] and len(data.train) == 4
    a, b = data.batch(7, 11, 4, 64), data.batch(7, 11, 4, 64)
    assert a.shape == (4, 64, 64, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, data.batch(7, 12, 4, 64))


def test_test_sets_are_refused(tmp_path):
    (tmp_path / "kodak").mkdir()
    for i in range(2):
        (tmp_path / "kodak" / f"kodim0{i}.png").write_bytes(b"")
    with pytest.raises(ValueError, match="test set"):
        list_images(tmp_path)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_few_steps_lower_the_held_out_loss(train_dir, tmp_path, one_thread):
    data = TrainingSet.load(train_dir, 64, holdout_every=3)
    options = TrainOptions("narrow", lam=0.01, steps=40, batch=4, crop=64, lr=1e-3)
    trainer = Trainer(narrow_codec().untrained_network(0), data, options, tmp_path, eval_every=20)
    before = trainer.evaluate()
    after = trainer.run()
    assert after["loss"] < 0.5 * before["loss"], (before, after)
    rows = (tmp_path / CURVE).read_text().splitlines()
    assert rows[0].startswith("step,split") and sum(",heldout," in r for r in rows) == 2  # steps 20, 40


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_resume_continues_exactly(train_dir, tmp_path, one_thread):
    """3 steps, a new process-like trainer resuming, 3 more == 6 steps at once (same batches, noise, Adam state)."""
    data = TrainingSet.load(train_dir, 64, holdout_every=3)
    options = TrainOptions("narrow", lam=0.01, steps=6, batch=2, crop=64, lr=1e-3)
    straight = Trainer(narrow_codec().untrained_network(0), data, options, tmp_path / "a")
    straight.run()
    first = Trainer(narrow_codec().untrained_network(0), data, dataclasses.replace(options, steps=6), tmp_path / "b",
                    checkpoint_every=3)
    first.train_step(), first.train_step(), first.train_step()
    first.save()
    second = Trainer(narrow_codec().untrained_network(0), data, options, tmp_path / "b")
    assert second.resume() and second.step == 3
    second.run()
    for (name, x), (_, y) in zip(straight.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(x, y), name
    other = Trainer(narrow_codec().untrained_network(0), data, dataclasses.replace(options, lam=0.02), tmp_path / "b")
    with pytest.raises(Exception, match="other options"):
        other.resume()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_export_load_decode_identical(train_dir, tmp_path, small_photo, one_thread):
    """Export (float16) → the codec loads it by its sha256 → a second codec decodes the first's
    stream to the same pixels; a changed file is refused by the sha256 check."""
    data = TrainingSet.load(train_dir, 64, holdout_every=3)
    options = TrainOptions("narrow", lam=0.01, steps=3, batch=2, crop=64)
    Trainer(narrow_codec().untrained_network(0), data, options, tmp_path / "run").run()
    path, digest, lam = export_weights(tmp_path / "run", tmp_path / "weights" / "narrow.pt", half=True)
    assert curve_path(path).is_file() and lam == 0.01
    state = load_weights_file(path)  # the one safe loader, as every weights file is read
    bounds = {k: v for k, v in state.items() if k.endswith("likelihood_lower_bound.bound")}
    assert bounds and all(v.dtype == torch.float32 and float(v) == pytest.approx(1e-9) for v in bounds.values())
    assert all(v.dtype in (torch.float16, torch.int32, torch.int64) for k, v in state.items() if k not in bounds)
    weights = {"path": "weights/narrow.pt", "sha256": digest, "lambda": 0.01, "metric": "mse"}
    encoder, decoder = narrow_codec(tmp_path, weights), narrow_codec(tmp_path, weights)
    assert encoder.trained
    rate = encoder.config.rates[0]
    data_bytes = encoder.encode(small_photo, rate).data
    assert np.array_equal(encoder.decode(data_bytes), decoder.decode(data_bytes))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one byte of a tensor changed, the description not
    path.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="sha256"):
        narrow_codec(tmp_path, weights).encode(small_photo, rate)


def test_relative_weights_path_may_not_leave_its_folder(tmp_path):
    from bench.models.weights import WeightsSpec

    spec = WeightsSpec.parse({"path": "weights/a.pt"}, "x", tmp_path)
    assert spec.location() == tmp_path / "weights" / "a.pt"
    with pytest.raises(ValueError, match="leaves"):
        WeightsSpec.parse({"path": "../a.pt"}, "x", tmp_path)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_exported_curve_chains_the_runs_it_started_from(train_dir, tmp_path, one_thread):
    """A fine-tune's exported curve starts with its base run, cut at the step the fine-tune took
    (even after the base trained on), and counts steps from the base run's first."""
    data = TrainingSet.load(train_dir, 64, holdout_every=3)
    base = TrainOptions("narrow", lam=0.01, steps=4, batch=2, crop=64)
    Trainer(narrow_codec().untrained_network(0), data, base, tmp_path / "base", eval_every=2).run()
    tune = TrainOptions("narrow", lam=0.02, steps=3, batch=2, crop=64, init=str(tmp_path / "base" / CHECKPOINT))
    tuner = Trainer(narrow_codec().untrained_network(0), data, tune, tmp_path / "tune", eval_every=3)
    assert not tuner.resume()  # starts from the base's checkpoint
    tuner.run()
    longer = Trainer(narrow_codec().untrained_network(0), data, dataclasses.replace(base, steps=6),
                     tmp_path / "base", eval_every=2)
    assert longer.resume()
    longer.run()  # the base trains on after the fine-tune started from its step 4
    path, _, _ = export_weights(tmp_path / "tune", tmp_path / "weights" / "tune.pt")
    with curve_path(path).open(newline="") as f:
        held = [(r["run"], int(r["step"]), int(r["total_step"])) for r in csv.DictReader(f) if r["split"] == "heldout"]
    assert held == [("base", 2, 2), ("base", 4, 4), ("tune", 3, 7)]
