"""Bring your own model (``adapter = "compressai-model"``): a CompressAI-protocol class named by a
TOML, its weights, its bitstream in the suite's container — compared with the model's own
compress()/decompress() called directly, and run through the real pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.codecs import registry
from bench.codecs.base import CodecConfig, RatePoint
from bench.errors import CheckpointError, CodecError
from bench.hashing import file_sha256
from bench.models import bitstream
from bench.models.compressai_net import PAD_MODES, family_rate_bits, pad_to
from bench.models.imageio import to_tensor, to_uint8
from bench.models.quantizers import hard_round
from tests.conftest import PROJECT, photo_like, python_module
from tests.support.byom_models.split_prior import SplitPrior

SPLIT = "tests.support.byom_models.split_prior:SplitPrior"
MSH = "compressai.models:MeanScaleHyperprior"
R1 = RatePoint("r1", {})


def config(model: str = SPLIT, rates=(R1,), name: str = "byom", source: str = "", **params) -> CodecConfig:
    return CodecConfig(name=name, adapter="compressai-model", params={"model": model, **params}, rates=rates,
                       source=source)


def create(cfg: CodecConfig):
    if any("weights" not in r.params for r in cfg.rates):
        with pytest.warns(UserWarning, match="UNTRAINED"):
            return registry.create(cfg)
    return registry.create(cfg)


def strings_of(data: bytes) -> tuple[list, object]:
    """The [strings, shape] a CAM1 stream holds."""
    _, strings = bitstream.unpack(data, b"CAM1", "test")
    return bitstream.rebuild(strings[0], strings[1:], "test")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return photo_like(72, 100, 5)  # not a multiple of 16 or 64: padding and cropping are exercised


def save_weights(net: torch.nn.Module, path: Path, nest: bool = False) -> dict:
    """Save ``net``'s state dict (``nest``: under "state_dict" with DataParallel's "module." prefix,
    as training scripts do) and return the TOML weights table with its sha256."""
    state = net.state_dict()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}} if nest else state, path)
    return {"path": str(path), "sha256": file_sha256(path), "lambda": 0.0067, "metric": "mse"}


# --- the container -------------------------------------------------------------------------------

def test_nested_strings_and_shapes_are_stored_exactly() -> None:
    value = [[[b"a", b""], [b"bc"]], [torch.Size([3, 4]), (5, (-6, None)), [np.int64(7), 2**63 - 1, -(2**63)]]]
    layout, leaves = bitstream.flatten(value)
    assert leaves == [b"a", b"", b"bc"]
    assert bitstream.rebuild(layout, leaves, "t") == [[[b"a", b""], [b"bc"]],
                                                      [(3, 4), (5, (-6, None)), [7, 2**63 - 1, -(2**63)]]]
    assert len(bitstream.flatten((12, 8))[0]) == 3 + 2 * 2  # a tuple of two small sizes: 7 bytes
    with pytest.raises(TypeError, match="float"):
        bitstream.flatten([b"x", 1.5])
    for bad_layout, bad_leaves in ((layout[:-3], leaves), (layout, leaves[:2]), (layout, [*leaves, b"z"]),
                                   (b"X" + layout[1:], leaves), (b"L\xff\xff", []), (b"I" + b"\xff" * 10, [])):
        with pytest.raises(CodecError, match="t: "):
            bitstream.rebuild(bad_layout, bad_leaves, "t")


# --- configuration -------------------------------------------------------------------------------

def test_model_string_is_a_plain_import_path_never_evaluated(tmp_path: Path) -> None:
    for bad in ("__import__('os').system('touch x'):A", "pkg.mod", "a:b:c", "pkg.mod:Cls()", "pkg..mod:C", 3):
        assert "must be 'package.module:ClassName'" in registry.availability(config(bad)), bad
    assert "has no class 'system'" in registry.availability(config("os:system"))  # found, not called
    assert "is not a torch.nn.Module" in registry.availability(config("tests.support.byom_models.split_prior:NotAModel"))
    assert "lacks CompressAI's compress, decompress" in registry.availability(config("torch.nn:Conv2d"))
    reason = registry.availability(config("no_such_package_xyz.models:Net"))
    assert "cannot import no_such_package_xyz.models: ModuleNotFoundError" in reason
    assert "model_kwargs" in registry.availability(config(model_kwargs={"not an identifier": 1}))
    assert "complexity_parts.eb_a = 'entropy'" in registry.availability(config(complexity_parts={"eb_a": "entropy"}))
    assert registry.availability(config()) is None


def test_models_path_stays_inside_the_configuration_folder(tmp_path: Path) -> None:
    codecs, outside = tmp_path / "codecs", tmp_path / "elsewhere"
    (codecs / "models").mkdir(parents=True)
    outside.mkdir()
    (codecs / "out").symlink_to(outside)
    source = str(codecs / "byom.toml")
    for path, why in (("..", "leaves the configuration's folder"), ("../elsewhere", "leaves"),
                      ("out", "leaves"), (str(outside), "must be relative"), ("~/models", "must be relative"),
                      ("absent", "no such folder")):
        assert why in registry.availability(config(models_path=path, source=source)), path
    # inside: the folder is searched first (the class is still found on PYTHONPATH here)
    assert registry.availability(config(models_path="models", source=source)) is None


def test_lof_is_refused_for_an_unknown_entropy_structure_and_without_lambda() -> None:
    reason = registry.availability(config(lof_iterations=2))
    assert "LOF unavailable" in reason and "SplitPrior is not one of them" in reason
    reason = registry.availability(config(MSH, model_kwargs={"N": 8, "M": 12}, lof_iterations=2))
    assert "LOF needs λ at rate point(s) r1" in reason
    lam = (RatePoint("r1", {"lambda": 0.01}),)
    assert registry.availability(config(MSH, rates=lam, model_kwargs={"N": 8, "M": 12}, lof_iterations=2)) is None


# --- coding: identical to the model's own calls ---------------------------------------------------

def test_own_class_round_trip_is_the_models_own_compress_and_decompress(tmp_path: Path, image) -> None:
    """Nested strings and a list-of-sizes shape, byte for byte; per-rate constructor arguments."""
    rates = (R1, RatePoint("r2", {"model_kwargs": {"M": 16}}))
    codec = create(config(rates=rates, pad=16, model_kwargs={"N": 8}))
    for index, rate in enumerate(rates):
        enc = codec.encode(image, rate)
        assert enc.data[:4] == b"CAM1" and enc.extras["trained"] is False
        assert "estimated_bits" not in enc.extras  # not a structure whose rate the suite knows
        net = codec._model(index).net
        assert net.eb_b.channels == (8 if index else 6)  # M = 16 at r2, the class default 12 at r1
        x = pad_to(to_tensor(image), 16, "replicate")
        assert x.shape[-2:] == (80, 112)
        with torch.no_grad():
            direct = net.compress(x)
            expected = to_uint8(net.decompress(direct["strings"], direct["shape"])["x_hat"][..., :72, :100])
        assert strings_of(enc.data) == [direct["strings"], [tuple(s) for s in direct["shape"]]]
        assert np.array_equal(codec.decode(enc.data), expected)


def test_compressai_mean_scale_hyperprior_by_import_path(tmp_path: Path, image) -> None:
    """CompressAI's own class with random weights saved as a training script would (nested, with
    DataParallel's prefix), checked by sha256: bytes and pixels equal the direct calls."""
    torch.manual_seed(1)
    reference = __import__("compressai.models", fromlist=["MeanScaleHyperprior"]).MeanScaleHyperprior(16, 24)
    weights = save_weights(reference, tmp_path / "msh.pth.tar", nest=True)
    cfg = config(MSH, rates=(RatePoint("r1", {"weights": weights}),), model_kwargs={"N": 16, "M": 24})
    assert registry.availability(cfg) is None
    codec = create(cfg)
    assert codec.trained and codec.describe()["weights"]["r1"]["sha256"] == weights["sha256"]
    enc = codec.encode(image, cfg.rates[0])
    assert codec.weights_sha256(cfg.rates[0]) == weights["sha256"]
    assert enc.extras["trained"] is True and enc.extras["sequential_steps"] == 2
    direct_net = __import__("compressai.models", fromlist=["MeanScaleHyperprior"]).MeanScaleHyperprior(16, 24)
    direct_net.load_state_dict(reference.state_dict())
    direct_net.update(force=True)
    direct_net.eval()
    with torch.no_grad():
        direct = direct_net.compress(pad_to(to_tensor(image), 64, "replicate"))
        expected = to_uint8(direct_net.decompress(direct["strings"], direct["shape"])["x_hat"][..., :72, :100])
    assert strings_of(enc.data) == [direct["strings"], tuple(direct["shape"])]
    assert np.array_equal(codec.decode(enc.data), expected)
    with torch.no_grad():  # the estimate is the family's −Σlog₂ p of the latent the encoder coded
        y = direct_net.g_a(pad_to(to_tensor(image), 64, "replicate"))
        assert enc.extras["estimated_bits"] == pytest.approx(float(family_rate_bits(direct_net, y, hard_round)[0]))
    assert set(codec.last_decode_times) == {"entropy_decoding_s", "synthesis_s"}
    assert "compressai.models:MeanScaleHyperprior" in codec.library_version()


def test_lof_runs_on_a_compressai_structure(tmp_path: Path, image) -> None:
    cfg = config(MSH, rates=(RatePoint("r1", {"lambda": 0.0067}),), model_kwargs={"N": 8, "M": 12},
                 lof_iterations=2, lof_eval_every=1)
    codec = create(cfg)
    enc = codec.encode(image[:48, :48], cfg.rates[0])
    assert enc.extras["lof_iterations"] == 2 and enc.extras["lof_cost_after"] <= enc.extras["lof_cost_before"]
    assert codec.decode(enc.data).shape == (48, 48, 3)


def test_checkpoint_with_missing_and_extra_keys_is_refused_naming_them(tmp_path: Path, image) -> None:
    state = SplitPrior().state_dict()
    state.pop("g_s.2.bias")
    state["g_x.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    cfg = config(rates=(RatePoint("r1", {"weights": {"path": str(path), "sha256": file_sha256(path)}}),))
    with pytest.raises(CheckpointError) as err:
        create(cfg).encode(image, cfg.rates[0])
    assert "missing keys: g_s.2.bias" in str(err.value) and "unexpected keys: g_x.weight" in str(err.value)
    torch.save({"epoch": 1, "optimizer": {"lr": torch.tensor(1.0)}}, path)
    cfg = config(rates=(RatePoint("r1", {"weights": {"path": str(path)}}),))
    with pytest.raises(CheckpointError, match=r"holds a dict with keys epoch, optimizer, not a state dict"):
        create(cfg).encode(image, cfg.rates[0])


def test_corrupt_or_foreign_streams_are_a_clear_codec_error(image) -> None:
    codec = create(config(pad=16))
    data = codec.encode(image, R1).data
    flipped = data[:-7] + bytes([data[-7] ^ 0x10]) + data[-6:]
    with pytest.raises(CodecError, match="CRC-32 mismatch"):
        codec.decode(flipped)
    with pytest.raises(CodecError, match="byom"):
        codec.decode(data[: len(data) // 2])
    with pytest.raises(CodecError, match="not a CAM1 bitstream"):
        codec.decode(b"CAZ1" + data[4:])
    other = create(config(pad=16, seed=1))  # same class, other (untrained) weights
    with pytest.raises(CodecError, match="made by another model"):
        other.decode(data)
    with pytest.raises(CodecError, match="stream was coded on the float32 path"):
        create(config(pad=16, portable=True)).decode(data)


def test_complexity_counts_the_padded_forward_with_the_configurations_parts(image) -> None:
    codec = create(config(pad=16, complexity_parts={"eb_a": "entropy_model", "eb_b": "entropy_model"}))
    columns = codec.complexity(R1, 72, 100).columns()
    net = codec._model(0).net
    assert columns["params"] == sum(p.numel() for p in net.parameters())
    detail = columns["complexity"]
    assert detail["counted_size"] == [80, 112] and set(detail["params"]) == {"analysis", "synthesis", "entropy_model"}
    # g_a: 5×5 convs 3→8 (stride 2: 40×56 outputs) and 8→12 (20×28) — a hand count
    analysis = (40 * 56 * 8 * 3 * 25 + 20 * 28 * 12 * 8 * 25) / (72 * 100) / 1e3
    assert detail["kmac_per_px"]["analysis"] == pytest.approx(analysis)
    assert columns["enc_kmac_per_px"] == pytest.approx(analysis)  # the entropy models are neither side's
    assert set(PAD_MODES) == set(__import__("bench.codecs.compressai_model", fromlist=["x"]).PADDINGS)


# --- the real pipeline, TOML only -----------------------------------------------------------------

def test_own_model_by_toml_alone_through_bench_run(tmp_path: Path, synthetic_images: Path) -> None:
    """A copy of the test package in the configuration's models folder (not importable otherwise),
    trained-style weights (after update(), nested, prefixed) with sha256: `bench run` stores ok rows
    with complexity, memory, model bytes and a cross-decode."""
    codecs = tmp_path / "codecs"
    shutil.copytree(PROJECT / "tests" / "support" / "byom_models", codecs / "models" / "byom_models")
    torch.manual_seed(2)
    net = SplitPrior(N=8, M=12)
    net.update(force=True)  # the coder tables are saved too, sized: loading must resize them
    weights = [save_weights(net, codecs / f"w{i}.pth.tar", nest=bool(i)) for i in (0, 1)]
    (codecs / "mine.toml").write_text(f"""
adapter = "compressai-model"
description = "a researcher's own model class"
default_run = false
[params]
model = "byom_models.split_prior:SplitPrior"
models_path = "models"
pad = 16
[params.model_kwargs]
N = 8
M = 12
[params.complexity_parts]
eb_a = "entropy_model"
eb_b = "entropy_model"
[[rates]]
label = "a"
weights = {{ path = "{weights[0]['path']}", sha256 = "{weights[0]['sha256']}", lambda = 0.01 }}
[[rates]]
label = "b"
weights = {{ path = "{weights[1]['path']}", sha256 = "{weights[1]['sha256'][:12]}" }}
""")
    out = tmp_path / "results"
    proc = python_module("bench", "--codecs-dir", str(codecs), "run", "--codecs", "mine", "--dataset",
                         str(synthetic_images), "--images", "1", "--ladder", "none", "--out", str(out), "--jobs", "1",
                         "--repeats", "1", "--cross-decode", "--memory", "all", "--quiet",
                         data_dir=synthetic_images.parent, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    from bench.store import read_measurements

    rows = read_measurements(out)
    assert len(rows) == 2 and (rows.status == "ok").all(), rows.get("error")
    assert dict(zip(rows.rate_label, rows.weights_sha256)) == {"a": weights[0]["sha256"], "b": weights[1]["sha256"]}
    assert (rows.trained == 1).all() and (rows.bytes > 0).all()
    assert rows.codec_version.str.startswith("byom_models.split_prior:SplitPrior (module sha256").all()
    assert (rows.enc_kmac_per_px > 0).all() and (rows.params == sum(p.numel() for p in net.parameters())).all()
    assert all(set(json.loads(c)["params"]) == {"analysis", "synthesis", "entropy_model"} for c in rows.complexity)
    assert (rows.mem_method == "fork").all() and (rows.model_bytes > 0).all()
    assert (rows.dec_mem_peak_bytes > 0).all()
    assert rows.cross_decode.str.match(r"(identical|differs) \(").all(), list(rows.cross_decode)


def test_models_path_option_names_a_folder_of_model_code(tmp_path: Path) -> None:
    codecs, code = tmp_path / "codecs", tmp_path / "code"
    codecs.mkdir()
    shutil.copytree(PROJECT / "tests" / "support" / "byom_models", code / "byom_models")
    (codecs / "mine.toml").write_text('adapter = "compressai-model"\n[params]\n'
                                      'model = "byom_models.split_prior:SplitPrior"\n[[rates]]\nlabel = "a"\n')
    refused = python_module("bench", "--codecs-dir", str(codecs), "run", "--codecs", "mine", "--out",
                            str(tmp_path / "r"), cwd=tmp_path)
    assert refused.returncode == 2 and "cannot import byom_models.split_prior" in refused.stderr, refused.stderr
    listed = python_module("bench", "--models-path", str(code), "--codecs-dir", str(codecs), "list",
                           env={"COLUMNS": "200"}, cwd=tmp_path)
    row = next(line for line in listed.stdout.splitlines() if "mine" in line)
    assert listed.returncode == 0 and "yes" in row and "module sha256" in row, listed.stdout
    refused = python_module("bench", "--codecs-dir", str(codecs), "run", "--models-path", str(tmp_path / "nope"),
                            "--codecs", "mine", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip() == f"error: --models-path: no such folder {tmp_path / 'nope'}"


def test_the_readme_example_is_a_valid_configuration(tmp_path: Path) -> None:
    readme = (PROJECT / "README.md").read_text()
    start = readme.index("```toml\nadapter = \"compressai-model\"")
    block = readme[start + len("```toml\n"): readme.index("```", start + 8)]
    text = "\n".join(line for line in block.splitlines() if not line.startswith("weights = "))
    (tmp_path / "my-hyperprior.toml").write_text(text)
    cfg = registry.load_config(tmp_path / "my-hyperprior.toml")
    assert cfg.params["model"] == MSH and cfg.rates[1].params["model_kwargs"] == {"N": 192, "M": 320}
    assert registry.availability(cfg) is None
