"""VTM: colour conversion, the exact command line, failure reports, and real round trips.

The real-VTM tests find VTM like the suite does (``codecs/vtm.toml``: the default install folder
of ``python -m bench.tools.vtm build``, or ``$VTM_DIR``). They skip when it is missing, unless
``BENCH_REQUIRE_VTM=1`` (set by CI), where a missing VTM fails them.
"""

import os

import numpy as np
import pytest

from bench.codecs import registry
from bench.codecs.base import CodecConfig, RatePoint
from bench.errors import CodecError
from bench.codecs.vtm import HEADER, VtmCodec
from bench.colour import rgb_to_ycbcr, ycbcr_to_rgb
from bench.metrics import psnr_rgb


def rgb_cube(step: int = 3) -> np.ndarray:
    r, g, b = np.meshgrid(np.arange(256), np.arange(0, 256, step), np.arange(0, 256, step), indexing="ij")
    return np.stack([r, g, b], -1).reshape(-1, 1, 3).astype(np.uint8)


def test_colour_round_trip_10bit_is_lossless_on_the_rgb_cube():
    cube = rgb_cube()
    assert np.array_equal(ycbcr_to_rgb(rgb_to_ycbcr(cube, 10), 10), cube)


def test_colour_round_trip_8bit_is_within_one_level():
    cube = rgb_cube()
    back = ycbcr_to_rgb(rgb_to_ycbcr(cube, 8), 8)
    err = np.abs(back.astype(int) - cube)
    assert err.max() <= 1
    assert psnr_rgb(cube, back) > 50  # truncating both ways instead lands near 44 dB


def test_truncating_conversion_would_cap_psnr():
    """Why we round: the same maths with truncation loses ~8 dB on the round trip."""
    cube = rgb_cube(5).astype(np.float64) / 255
    y = 0.2126 * cube[..., 0] + 0.7152 * cube[..., 1] + 0.0722 * cube[..., 2]
    truncated = np.floor(y * 255)
    rounded = np.round(y * 255)
    assert np.mean((truncated - y * 255) ** 2) > 3 * np.mean((rounded - y * 255) ** 2)


def test_known_colours():
    white = np.full((1, 1, 3), 255, np.uint8)
    assert rgb_to_ycbcr(white, 10)[:, 0, 0].tolist() == [1023, 512, 512]
    red = np.array([[[255, 0, 0]]], np.uint8)
    y, cb, cr = rgb_to_ycbcr(red, 8)[:, 0, 0]
    assert y == round(0.2126 * 255) and cr == 255  # Cr = 0.5 → 127.5 + 128 clipped
    assert cb == round(-0.2126 / 1.8556 * 255 + 128)


def config(tmp_path, **params):
    return CodecConfig("vtm", "vtm", {"vtm_dir": str(tmp_path), "bit_depth": 10, **params},
                       (RatePoint("qp=32", {"qp": 32}),))


def test_unavailable_says_why(tmp_path):
    reason = VtmCodec.check_available(config(tmp_path))
    assert "VTM not found" in reason and "EncoderAppStatic" in reason and "VTM_DIR" in reason


def test_exact_command_lines(tmp_path):
    codec = VtmCodec(config(tmp_path))
    cmd = codec.encoder_command(tmp_path / "in.yuv", tmp_path / "out.bin", 768, 512, 32)
    assert cmd == [str(tmp_path / "bin" / "EncoderAppStatic"), "-c", str(tmp_path / "cfg" / "encoder_intra_vtm.cfg"),
                   "-i", str(tmp_path / "in.yuv"), "-b", str(tmp_path / "out.bin"), "-o", "/dev/null",
                   "-wdt", "768", "-hgt", "512", "-fr", "1", "-f", "1", "-q", "32",
                   "--InputChromaFormat=444", "--ChromaFormatIDC=444", "--InputBitDepth=10", "--OutputBitDepth=10",
                   "--InternalBitDepth=10", "--ConformanceWindowMode=1", "--InputColourSpaceConvert=UNCHANGED"]
    assert codec.decoder_command(tmp_path / "s.bin", tmp_path / "o.yuv") == [
        str(tmp_path / "bin" / "DecoderAppStatic"), "-b", str(tmp_path / "s.bin"), "-o", str(tmp_path / "o.yuv"), "-d", "10"]


def test_container_errors_before_running_anything(tmp_path):
    codec = VtmCodec(config(tmp_path))
    with pytest.raises(CodecError, match="too short"):
        codec.decode(b"\x01\x00")
    with pytest.raises(CodecError, match="empty size"):
        codec.decode(b"\x00\x00\x00\x10abc")


def test_missing_decoder_binary_is_a_codec_error(tmp_path):
    codec = VtmCodec(config(tmp_path))
    with pytest.raises(CodecError, match="cannot start"):
        codec.decode(b"\x00\x10\x00\x10" + b"\x00" * 32)


def test_unavailable_reason_points_at_the_build_command(tmp_path):
    assert "python -m bench.tools.vtm build" in VtmCodec.check_available(config(tmp_path))


def fake_install(tmp_path, decoder_text: bytes, mode: int = 0o755):
    """A VTM folder whose decoder is ``decoder_text`` (a real file run as a real subprocess)."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "encoder_intra_vtm.cfg").write_text("# cfg\n")
    encoder = tmp_path / "bin" / "EncoderAppStatic"
    encoder.write_text("#!/bin/sh\necho VTM Encoder Version 0.0\n")
    encoder.chmod(0o755)
    decoder = tmp_path / "bin" / "DecoderAppStatic"
    decoder.write_bytes(decoder_text)
    decoder.chmod(mode)
    return config(tmp_path)


def test_a_decoder_without_exec_permission_is_unavailable(tmp_path):
    cfg = fake_install(tmp_path, b"#!/bin/sh\nexit 0\n", mode=0o644)
    reason = VtmCodec.check_available(cfg)
    assert reason and "cannot execute" in reason and "DecoderAppStatic" in reason and "permission" in reason


def test_a_junk_decoder_with_exec_bit_is_unavailable(tmp_path):
    cfg = fake_install(tmp_path, b"\x7fELF junk, not a program")
    reason = VtmCodec.check_available(cfg)
    assert reason and "cannot execute" in reason and "DecoderAppStatic" in reason


def test_runnable_binaries_are_available(tmp_path):
    assert VtmCodec.check_available(fake_install(tmp_path, b"#!/bin/sh\nexit 1\n")) is None


def test_a_decoder_killed_by_a_signal_is_named(tmp_path):
    cfg = fake_install(tmp_path, b"#!/bin/sh\necho decoding >&2\nkill -SEGV $$\n")
    with pytest.raises(CodecError, match=r"DecoderAppStatic was killed by signal SIGSEGV: decoding"):
        VtmCodec(cfg).decode(b"\x00\x10\x00\x10" + b"\x00" * 32)


def test_an_encoder_that_writes_no_stream_is_a_codec_error(tmp_path):
    cfg = fake_install(tmp_path, b"#!/bin/sh\nexit 0\n")
    with pytest.raises(CodecError, match="EncoderAppStatic exited 0 but wrote no bitstream"):
        VtmCodec(cfg).encode(np.zeros((8, 8, 3), np.uint8), RatePoint("qp=32", {"qp": 32}))


@pytest.fixture
def installed_vtm():
    configs = registry.load_configs()
    reason = registry.availability(configs["vtm"])
    if reason:
        if os.environ.get("BENCH_REQUIRE_VTM") == "1":
            pytest.fail(f"BENCH_REQUIRE_VTM=1 but {reason}")
        pytest.skip(reason)
    return registry.create(configs["vtm"])


@pytest.mark.timeout(300)
def test_real_corrupt_stream_reports_vtm_error_line(installed_vtm, small_photo):
    data = installed_vtm.encode(np.ascontiguousarray(small_photo[:64, :64]), RatePoint("qp=42", {"qp": 42}))
    with pytest.raises(CodecError) as info:
        installed_vtm.decode(data[: len(data) // 2])
    message = str(info.value)
    assert message.startswith("DecoderAppStatic failed with exit code 1: ERROR: ") and "Memory Usage" not in message


@pytest.mark.timeout(300)
def test_real_swapped_header_dimensions_are_detected(installed_vtm, small_photo):
    image = np.ascontiguousarray(small_photo[:16, :32])  # 32 wide, 16 high
    data = installed_vtm.encode(image, RatePoint("qp=42", {"qp": 42}))
    assert HEADER.unpack_from(data) == (32, 16)
    assert installed_vtm.decode(data).shape == image.shape
    swapped = HEADER.pack(16, 32) + data[HEADER.size:]
    with pytest.raises(CodecError, match=r"decoded a 32×16 picture but the container header says 16×32"):
        installed_vtm.decode(swapped)


@pytest.mark.timeout(900)
def test_real_vtm_round_trip(installed_vtm, photo):
    image = np.ascontiguousarray(photo[80:176, 128:256])  # 96×128
    rate = installed_vtm.config.rate("qp=32")
    data = installed_vtm.encode(image, rate)
    decoded = installed_vtm.decode(data)
    assert decoded.shape == image.shape and psnr_rgb(image, decoded) > 30
    assert "VTM" in installed_vtm.library_version()
    with pytest.raises(CodecError):
        installed_vtm.decode(data[: len(data) // 2])
