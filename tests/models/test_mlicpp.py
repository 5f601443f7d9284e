"""MLIC++ rebuild: official state-dict layout, real coding round trips, corrupt streams, parts.

Uses $BENCH_SHARED_DIR (spec/mlicpp_state_dict.json): tests that need it skip when it is unset.
Images are the synthetic photo-like ones of conftest.py. Weights are the seeded untrained model (complexity-grade, non-trivial
symbols), so estimated and real bits are recorded, not compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.errors import CodecError
from bench.models.mlicpp import CheckpointError, MLICPlusPlus, load_checkpoint, parameter_count, untrained_model
from bench.models import bitstream as shared_bitstream
from bench.models.mlicpp import bitstream
from bench.models.mlicpp.checkerboard import ANCHOR, NONANCHOR, keep, parity_mask, squeeze, unsqueeze
from bench.models.mlicpp.checkpoint import check_state_dict, normalize_state_dict
from bench.models.mlicpp.layers import GDN
from bench.models.mlicpp.local_context import LocalContext

PROJECT = Path(__file__).resolve().parents[2]


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec_entries(shared_dir: Path) -> list:
    return json.loads((shared_dir / "spec" / "mlicpp_state_dict.json").read_text())


@pytest.fixture(scope="module")
def blank() -> MLICPlusPlus:
    """A freshly built model, never loaded into: the reference for layout checks."""
    return MLICPlusPlus()


@pytest.fixture(scope="module")
def model() -> MLICPlusPlus:
    torch.set_num_threads(2)
    return untrained_model()


def assert_same_up_to_reordering(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float32 rounding of reordered sums: a few ulps of the values' scale."""
    assert actual.shape == expected.shape
    scale = float(expected.abs().max()) or 1.0
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255)


def official_state_dict(entries: list, source: MLICPlusPlus | None = None) -> dict[str, torch.Tensor]:
    """A state dict named exactly as the official file (CompressAI 1.2.0 EB names).

    Values come from ``source`` (renamed) when given, else random of the listed shape/dtype.
    """
    mine = source.state_dict() if source is not None else {}
    old_to_new = {"_matrix": "matrices.", "_bias": "biases.", "_factor": "factors."}
    out = {}
    for key, shape, dtype in entries:
        if source is not None:
            name = key
            for old, new in old_to_new.items():
                name = name.replace(f"entropy_bottleneck.{old}", f"entropy_bottleneck.{new}")
            out[key] = mine[name].clone().contiguous()
        else:  # distinct cheap values per entry
            out[key] = torch.full(shape, len(out) % 97, dtype=getattr(torch, dtype))
    return out


# --- architecture and strict loading ---------------------------------------------------------
def test_parameter_count_and_entries(spec_entries, blank):
    m = blank
    assert parameter_count(m) == 83_501_408
    assert m.entropy_bottleneck.quantiles.numel() == 576
    assert len(m.state_dict()) == len(spec_entries) == 1023
    assert m.channel_context[0] is None and m.global_inter_context[0] is None and m.global_intra_context[0] is None


def test_official_layout_loads_strictly(spec_entries):
    sd = official_state_dict(spec_entries)
    assert "entropy_bottleneck._matrix0" in sd  # CompressAI 1.2.0 spelling, as in the official files
    m = MLICPlusPlus()
    normalized = normalize_state_dict({f"module.{k}": v for k, v in sd.items()})  # DDP prefix too
    check_state_dict(m, normalized)
    m.load_state_dict(normalized, strict=True)
    assert torch.equal(m.entropy_bottleneck.matrices[0], sd["entropy_bottleneck._matrix0"])
    assert torch.equal(m.entropy_bottleneck.factors[3], sd["entropy_bottleneck._factor3"])
    shapes = {k: tuple(s) for k, s, _ in spec_entries}
    assert tuple(m.gaussian_conditional._quantized_cdf.shape) == shapes["gaussian_conditional._quantized_cdf"]
    assert tuple(m.entropy_bottleneck._quantized_cdf.shape) == shapes["entropy_bottleneck._quantized_cdf"]
    # the raw official dict also goes through load_state_dict directly (it remaps and resizes)
    MLICPlusPlus().load_state_dict(sd, strict=True)


def test_new_compressai_names_also_load(spec_entries):
    m = MLICPlusPlus()
    sd = normalize_state_dict(official_state_dict(spec_entries))
    assert "entropy_bottleneck.matrices.0" in sd and not any("_matrix" in k for k in sd)
    m.load_state_dict(sd, strict=True)


def test_renamed_key_is_rejected_with_names(spec_entries, blank):
    sd = official_state_dict(spec_entries)
    sd["g_s.synthesis_transform.7.0.weights"] = sd.pop("g_s.synthesis_transform.7.0.weight")
    with pytest.raises(CheckpointError) as err:
        check_state_dict(blank, normalize_state_dict(sd))
    message = str(err.value)
    assert "missing keys: g_s.synthesis_transform.7.0.weight" in message
    assert "unexpected keys: g_s.synthesis_transform.7.0.weights" in message


def test_misshaped_key_is_rejected_with_shapes(spec_entries, blank):
    sd = official_state_dict(spec_entries)
    sd["lrp_anchor.3.lrp_transform.0.weight"] = torch.zeros(224, 400, 3, 3)
    with pytest.raises(CheckpointError, match=r"mis-shaped keys: lrp_anchor\.3\.lrp_transform\.0\.weight \[224, 400, 3, 3\] "
                                              r"\(expected \[224, 448, 3, 3\]\)"):
        check_state_dict(blank, normalize_state_dict(sd))
    sd = official_state_dict(spec_entries)
    sd["gaussian_conditional._quantized_cdf"] = torch.zeros(3133, dtype=torch.int32)  # lost a dimension
    with pytest.raises(CheckpointError, match="gaussian_conditional._quantized_cdf"):
        check_state_dict(blank, normalize_state_dict(sd))


def test_old_2023_checkpoints_are_recognised(spec_entries, tmp_path):
    sd = official_state_dict(spec_entries)
    # 2023-09 layout: 4-conv LRP (352→272→192→112→32) and RB(320→192) with skip in g_s
    for part in ("lrp_anchor", "lrp_nonanchor"):
        sd[f"{part}.0.lrp_transform.0.weight"] = torch.zeros(272, 352, 3, 3)
        sd[f"{part}.0.lrp_transform.6.weight"] = torch.zeros(32, 112, 3, 3)
    sd["g_s.synthesis_transform.0.skip.weight"] = torch.zeros(192, 320, 1, 1)
    path = tmp_path / "old.pth.tar"
    torch.save({"epoch": 3, "state_dict": sd}, path)
    with pytest.raises(CheckpointError, match="2023-09") as err:
        load_checkpoint(path)
    assert "old.pth.tar" in str(err.value) and "unexpected keys" in str(err.value)


def test_loader_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth.tar")
    path = tmp_path / "list.pth.tar"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_checkpoint(path)


# --- building blocks -------------------------------------------------------------------------
def test_checkerboard_convention_and_inverse():
    mask = parity_mask(ANCHOR, 4, 4, torch.device("cpu"))[0, 0]
    assert not mask[0, 0] and mask[0, 1] and mask[1, 0] and not mask[1, 1]  # (0,0) is a non-anchor
    t = torch.randn(2, 3, 6, 8)
    for parity in (ANCHOR, NONANCHOR):
        s = squeeze(parity, t)
        assert s.shape == (2, 3, 6, 4)
        assert torch.equal(unsqueeze(parity, s), keep(parity, t))
    assert torch.equal(squeeze(ANCHOR, t)[..., 0, :], t[..., 0, 1::2])  # even rows: odd columns
    assert torch.equal(squeeze(ANCHOR, t)[..., 1, :], t[..., 1, 0::2])
    assert torch.equal(keep(ANCHOR, t) + keep(NONANCHOR, t), t)


@pytest.mark.parametrize("shape", [(1, 32, 12, 16), (1, 32, 5, 7), (2, 32, 8, 10)])
def test_banded_local_context_equals_official_chain(shape):
    torch.manual_seed(0)
    lc = LocalContext(band_pixels=20).eval()  # several bands
    with torch.no_grad():
        lc.norm1.bias.normal_()
        lc.relative_position_table.normal_()
        lc.qkv_proj.weight.mul_(4)
    a_hat = keep(ANCHOR, torch.randn(shape) * 3)
    with torch.inference_mode():
        reference = lc.forward_reference(a_hat)
        banded = lc.forward_banded(a_hat)
    assert reference.shape == (shape[0], 64, shape[2], shape[3])
    # Same arithmetic in another order: equal up to float32 reordering (the exact order depends on
    # the CPU, the BLAS and the thread count, so bit equality would test the machine, not the code).
    assert_same_up_to_reordering(banded, reference)


def test_banded_transforms_equal_whole_image():
    """Row bands of g_a / g_s (used above 2^19 pixels) give the whole-image values (bit for bit
    with oneDNN's channels-last kernels on the machines seen so far, but a kernel may pick another
    summation order for another input height, so the test allows float32 reordering)."""
    from bench.models.mlicpp.transforms import AnalysisTransform, SynthesisTransform

    torch.manual_seed(0)
    g_a, g_s = AnalysisTransform().eval(), SynthesisTransform().eval()
    for conv in (*g_a.modules(), *g_s.modules()):
        if isinstance(conv, torch.nn.Conv2d):
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 192, 64).contiguous(memory_format=torch.channels_last)
    y = torch.randn(1, 320, 12, 4).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        whole_a, whole_s = g_a(x), g_s(y)
        g_a.band_pixels = g_s.band_pixels = 64 * 40  # bands of 40 and 36 rows
        assert_same_up_to_reordering(g_a(x), whole_a)
        assert_same_up_to_reordering(g_s(y), whole_s)


def test_in_place_gdn_matches_compressai():
    from compressai.layers import GDN as CompressAIGDN

    torch.manual_seed(0)
    for inverse in (False, True):
        ours, theirs = GDN(16, inverse=inverse), CompressAIGDN(16, inverse=inverse)
        with torch.no_grad():
            ours.gamma.add_(torch.rand(16, 16) * 0.1)
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(1, 16, 9, 7)
        with torch.inference_mode():
            assert_same_up_to_reordering(ours(x), theirs(x))
        assert torch.allclose(ours(x.requires_grad_()), theirs(x))  # autograd path works


# --- coding ----------------------------------------------------------------------------------
# square, odd multiple of 16, portrait; padded sizes shared with the other tests (each new size
# costs oneDNN kernel generation on its first run)
CROPS = [(64, 64), (96, 80), (80, 112)]


@pytest.mark.parametrize("size", CROPS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_round_trip_decoder_equals_encoder(model, photo, size):
    h, w = size
    x = as_tensor(photo[100:100 + h, 200:200 + w])
    result = model.compress(x, reconstruct=True)
    x_hat = model.decompress(result.data)
    assert x_hat.shape == (1, 3, h, w)
    assert torch.equal(x_hat, result.x_hat)  # bit-identical to the encoder-side reconstruction
    stats = result.stats
    assert stats["container_bytes"] == len(result.data) == stats["z_bytes"] + stats["y_bytes"] + bitstream.OVERHEAD
    assert bitstream.OVERHEAD == 28  # shared frame (magic, CRC, lengths) + MLIC++ header fields
    assert stats["y_symbols"] == 320 * ((h + 63) // 64 * 4) * ((w + 63) // 64 * 4)
    assert 0 < result.estimated_bits
    print(f"{h}x{w}: {len(result.data)} bytes, estimated/real bits {result.estimated_bits / (8 * len(result.data)):.3f}, "
          f"non-zero {stats['y_nonzero'] / stats['y_symbols']:.3f}, escaped {stats['y_escaped']}")


def test_untrained_symbols_are_not_trivial(model, photo):
    result = model.compress(as_tensor(photo[:128, :128]))
    nonzero = result.stats["y_nonzero"] / result.stats["y_symbols"]
    assert 0.3 < nonzero < 0.8, nonzero
    assert result.stats["y_escaped"] > 0


def test_forward_matches_coding(model, photo):
    """The likelihood forward sees the same ŷ and x̂ as the real decoder (spec §5.2)."""
    x = as_tensor(photo[:64, :128])
    with torch.inference_mode():
        out = model(x)
    result = model.compress(x, reconstruct=True)
    assert torch.equal(out["x_hat"], result.x_hat)
    y_bits = float(-torch.log2(out["likelihoods"]["y"].double()).sum())
    assert y_bits == pytest.approx(result.y_bits_estimated, rel=1e-9)


def test_reference_layout_round_trip_and_streams_do_not_mix(model, photo):
    x = as_tensor(photo[:64, :64])
    try:
        model.configure(reference=True)
        assert model.memory_format == torch.contiguous_format and model.local_context[3].reference
        result = model.compress(x, reconstruct=True)
        assert torch.equal(model.decompress(result.data), result.x_hat)
    finally:
        model.configure(reference=False)
    assert bitstream.peek(result.data).mode == 1  # the header records the computation mode
    with pytest.raises(CodecError, match="coded in mode reference .* configure it alike"):
        model.decompress(result.data)
    fast = model.compress(x, reconstruct=True)
    assert (fast.x_hat - result.x_hat).abs().max() < 0.05  # same model, other last bits


@pytest.fixture(scope="module")
def stream(model, photo) -> bytes:
    return model.compress(as_tensor(photo[:64, :96])).data


def test_truncated_streams_raise(model, stream):
    for n in (0, 5, 12, len(stream) // 2, len(stream) - 1):
        with pytest.raises(CodecError):
            model.decompress(stream[:n])


def test_garbled_streams_raise(model, stream):
    rng = np.random.default_rng(0)
    for _ in range(20):
        data = bytearray(stream)
        pos = int(rng.integers(0, len(data)))
        data[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(CodecError):
            model.decompress(bytes(data))
    with pytest.raises(CodecError, match="not a MLIC bitstream"):
        model.decompress(b"\x00" * len(stream))


def test_absurd_header_sizes_raise(model, stream):
    raw, strings = shared_bitstream.unpack(stream, bitstream.MAGIC, "t", model.stream_key())
    for height, width in ((0, 64), (65535, 65535), (20000, 10)):
        fields = raw[:4] + height.to_bytes(2, "big") + width.to_bytes(2, "big")
        data = shared_bitstream.pack(bitstream.MAGIC, fields, strings, model.stream_key())  # a *valid* CRC
        with pytest.raises(CodecError, match="out of range"):
            model.decompress(data)
    with pytest.raises(CodecError, match="version 7"):  # a future format is refused, not misread
        model.decompress(shared_bitstream.pack(bitstream.MAGIC, bytes([7]) + raw[1:], strings, model.stream_key()))


def test_other_weights_are_refused(stream):
    other = untrained_model(seed=7)
    with pytest.raises(CodecError, match="other weights"):
        other.decompress(stream)


def test_checkpoint_file_round_trip(model, spec_entries, photo, tmp_path):
    """An official-layout file (1.2.0 names, DDP prefix, training extras) codes like the source."""
    sd = official_state_dict(spec_entries, source=model)
    path = tmp_path / "mlicpp.pth.tar"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in sd.items()}, "loss": 0.5,
                "optimizer": {}, "aux_optimizer": {}, "lr_scheduler": {}}, path)
    loaded = load_checkpoint(path)
    assert loaded.fingerprint() == model.fingerprint()
    x = as_tensor(photo[:64, :64])
    a, b = model.compress(x), loaded.compress(x)
    assert a.data == b.data


DECODE_SCRIPT = """
import sys, torch
from bench.models.mlicpp import untrained_model
from bench.models.weights import load_weights_file
d = load_weights_file(sys.argv[1], "stream file")
threads = None if sys.argv[2] == "header" else int(sys.argv[2])
torch.set_num_threads(3)  # neither 1 nor 2: the decoder must pin the count itself
x_hat = untrained_model().decompress(d["data"], threads=threads)
print(int(torch.equal(x_hat, d["x_hat"])), float((x_hat - d["x_hat"]).abs().max()))
"""


@pytest.mark.slow
def test_decoding_in_another_process(model, photo, tmp_path):
    """A fresh process with the header's thread count reproduces the encoder exactly; forcing
    another count (1 instead of 2) is reported (σ/μ and x̂ bits depend on it on CPU)."""
    x = as_tensor(photo[:64, :128])
    torch.set_num_threads(2)
    result = model.compress(x, reconstruct=True)
    path = tmp_path / "stream.pt"
    torch.save({"data": result.data, "x_hat": result.x_hat}, path)
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    outputs = {}
    for threads in ("header", "1"):
        run = subprocess.run([sys.executable, "-c", DECODE_SCRIPT, str(path), threads], env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 or threads != "header", run.stderr
        outputs[threads] = run.stdout.strip() or run.stderr.strip().splitlines()[-1]
    equal, max_diff = outputs["header"].split()
    assert equal == "1" and float(max_diff) == 0.0
    print(f"decode with 1 thread of a 2-thread stream: {outputs['1']}")
