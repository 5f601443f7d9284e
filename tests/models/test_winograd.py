"""Winograd F(4,3) convolutions (bench.models.winograd) and their use in MLIC++."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import CodecError
from bench.models.mlicpp import bitstream, untrained_model
from bench.models.winograd import ShiftedDepthwiseConv2d, WinogradConv2d, conv3x3, direct_convolutions, transform_weights, use_winograd


def _case(seed: int, C: int, O: int, H: int, W: int, dtype: torch.dtype, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, C, H, W, generator=g, dtype=torch.float64).to(dtype)
    w = (torch.randn(O, C, 3, 3, generator=g, dtype=torch.float64) / (3 * C**0.5)).to(dtype)
    b = torch.randn(O, generator=g, dtype=torch.float64).to(dtype)
    return x, w, b


@pytest.mark.parametrize("shape", [(5, 7, 6, 8), (5, 7, 7, 9), (3, 70, 1, 1), (8, 9, 13, 2), (16, 24, 17, 31)])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_direct_convolution_up_to_rounding(shape, seed):
    C, O, H, W = shape
    x, w, b = _case(seed, C, O, H, W, torch.float64, batch=2)
    exact = F.conv2d(x, w, b, padding=1)
    got = conv3x3(x, transform_weights(w), b)
    assert got.shape == exact.shape
    assert (got - exact).abs().max() <= 1e-12 * exact.abs().max()
    unbiased = conv3x3(x, transform_weights(w))
    assert (unbiased + b.view(1, -1, 1, 1) - exact).abs().max() <= 1e-12 * exact.abs().max()
    x32, w32, b32 = x.float(), w.float(), b.float()
    assert (conv3x3(x32, transform_weights(w32), b32).double() - exact).abs().max() <= 1e-4 * exact.abs().max()


def test_any_input_layout_and_band_splits(monkeypatch):
    x, w, b = _case(3, 12, 16, 21, 10, torch.float64)
    exact = F.conv2d(x, w, b, padding=1)
    whole = conv3x3(x.contiguous(memory_format=torch.channels_last), transform_weights(w), b)
    import bench.models.winograd as winograd

    monkeypatch.setattr(winograd, "BAND_ELEMENTS", 1)  # one row of tiles per band
    banded = conv3x3(x, transform_weights(w), b)
    assert torch.equal(banded, conv3x3(x, transform_weights(w), b))  # deterministic
    for got in (whole, banded):
        assert (got - exact).abs().max() <= 1e-12 * exact.abs().max()


def test_use_winograd_swaps_only_plain_3x3_convs_and_keeps_the_state_dict():
    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                        nn.Conv2d(8, 8, 5, padding=2), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                        nn.Conv2d(8, 64, 3, padding=1)).double()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert use_winograd(net) == 2
    assert [type(m) for m in net] == [WinogradConv2d, nn.Conv2d, nn.Conv2d, ShiftedDepthwiseConv2d, WinogradConv2d]
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    x = torch.randn(1, 4, 64, 64, dtype=torch.float64)  # ≥ MIN_TILES tiles for both 3×3 convs
    with torch.no_grad():
        fast = net(x)
        with direct_convolutions():
            direct = net(x)
        assert not torch.equal(fast, direct)  # it really ran another algorithm…
        assert (fast - direct).abs().max() <= 1e-12 * direct.abs().max()  # …for the same function
    assert use_winograd(net, False) == 0
    assert all(type(m) is nn.Conv2d for m in net)


def test_autograd_through_the_input_uses_the_direct_convolution():
    conv = nn.Conv2d(6, 64, 3, padding=1).double()
    use_winograd(conv)
    x = torch.randn(1, 6, 8, 8, dtype=torch.float64, requires_grad=True)
    out = conv(x)
    assert torch.equal(out, F.conv2d(x, conv.weight, conv.bias, padding=1))
    out.sum().backward()
    assert x.grad is not None


def _image(seed: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 8 + 1, w // 8 + 1, generator=g)
    return F.interpolate(base, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture
def winograd_everywhere(monkeypatch):
    """Winograd also on the small maps of test images (normally direct below MIN_TILES tiles)."""
    monkeypatch.setattr(WinogradConv2d, "MIN_TILES", 1)


def test_small_maps_run_the_direct_convolution():
    conv = nn.Conv2d(8, 64, 3, padding=1).double()
    use_winograd(conv)
    small, large = torch.randn(1, 8, 28, 28, dtype=torch.float64), torch.randn(1, 8, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(conv(small), F.conv2d(small, conv.weight, conv.bias, padding=1))  # 49 tiles
        assert not torch.equal(conv(large), F.conv2d(large, conv.weight, conv.bias, padding=1))  # 64 tiles


def test_mlicpp_fast_streams_record_winograd_and_a_mismatched_decoder_refuses(winograd_everywhere):
    x = _image(0, 64, 96)
    wino = untrained_model(seed=1).configure(reference=False, portable=False)
    direct = untrained_model(seed=1).configure(reference=False, portable=False, winograd=False)
    assert wino.winograd and not direct.winograd
    result = wino.compress(x, reconstruct=True)
    assert bitstream.peek(result.data).mode == bitstream.MODE_FAST_WINOGRAD
    assert torch.equal(wino.decompress(result.data), result.x_hat)
    assert bitstream.peek(direct.compress(x).data).mode == bitstream.MODE_FAST
    with pytest.raises(CodecError, match="Winograd.*direct convolutions"):
        direct.decompress(result.data)
    with pytest.raises(ValueError, match="Winograd"):
        untrained_model(seed=1).configure(reference=True, winograd=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_mlicpp_portable_streams_decode_alike_with_and_without_winograd(seed, winograd_everywhere):
    """The portable path's float64 margins absorb Winograd's other rounding: a stream decodes to the
    same image with and without it. (The encoders may write other bytes: g_a is float32 in both.)"""
    x = _image(seed, 64, 128)
    wino = untrained_model(seed=1).configure(reference=False, portable=True)
    direct = untrained_model(seed=1).configure(reference=False, portable=True, winograd=False)
    for encoder in (wino, direct):
        data = encoder.compress(x).data
        pixels = [(m.decompress(data).clamp(0, 1) * 255).round() for m in (wino, direct)]
        assert torch.equal(pixels[0], pixels[1])


@pytest.mark.parametrize("k", [3, 5])
def test_depthwise_float64_runs_as_shifted_multiply_adds(k):
    conv = nn.Conv2d(12, 12, k, padding=k // 2, groups=12).double()
    x = torch.randn(2, 12, 9, 14, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        direct = conv(x)
        assert use_winograd(conv) == 0  # depthwise convolutions are not counted as Winograd
        assert type(conv).__name__ == "ShiftedDepthwiseConv2d"
        shifted = conv(x)
        assert shifted.is_contiguous(memory_format=torch.channels_last)
        assert (shifted - direct).abs().max() <= 1e-12 * direct.abs().max()
        conv.float()
        x32 = x.float()
        assert torch.equal(conv(x32), F.conv2d(x32, conv.weight, conv.bias, padding=k // 2, groups=12))  # float32: direct
