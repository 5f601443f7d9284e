"""Every classical codec configuration, for real, on a small synthetic photo-like image."""

import numpy as np
import pytest

from bench.codecs import registry
from bench.errors import CodecError
from bench.metrics import psnr_rgb

CLASSICAL = ["jpeg-420", "jpeg-444", "webp", "avif", "avif-10bit", "jpegxl", "jpeg2000", "heic"]


@pytest.fixture(scope="module")
def configs():
    return registry.load_configs()


@pytest.mark.parametrize("name", CLASSICAL)
def test_available_with_version(configs, name):
    config = configs[name]
    assert registry.availability(config) is None
    version = registry.create(config).library_version()
    assert any(ch.isdigit() for ch in version), version


@pytest.mark.parametrize("name", CLASSICAL)
def test_round_trip_over_the_ladder(configs, name, small_photo):
    config = configs[name]
    codec = registry.create(config)
    sizes, qualities = [], []
    for rate in (config.rates[0], config.rates[len(config.rates) // 2], config.rates[-1]):
        data = codec.encode(small_photo, rate)
        assert isinstance(data, bytes) and len(data) > 0
        decoded = codec.decode(data)
        assert decoded.dtype == np.uint8 and decoded.shape == small_photo.shape
        sizes.append(len(data))
        qualities.append(psnr_rgb(small_photo, decoded))
    # The ladder goes from low to high rate and quality.
    assert sizes[0] < sizes[1] < sizes[2], sizes
    assert qualities[0] < qualities[2], qualities
    assert qualities[1] > 22, qualities


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.timeout(60)
def test_corrupt_bitstreams_give_a_clear_error(configs, name, small_photo):
    config = configs[name]
    codec = registry.create(config)
    data = codec.encode(small_photo, config.rates[len(config.rates) // 2])
    for broken in (data[: len(data) // 3], b"\x00" * 16 + data[16:], b"garbage", b""):
        with pytest.raises(CodecError):
            codec.decode(broken)


def test_jpeg_subsampling_configurations_differ(configs, small_photo):
    rate = configs["jpeg-420"].rate("quality=75")
    a = registry.create(configs["jpeg-420"]).encode(small_photo, rate)
    b = registry.create(configs["jpeg-444"]).encode(small_photo, rate)
    assert len(b) > len(a)  # 4:4:4 keeps full-resolution chroma


def test_avif_10bit_is_coded_at_10_bits(configs, small_photo):
    import imagecodecs

    config = configs["avif-10bit"]
    data = registry.create(config).encode(small_photo, config.rates[-1])
    assert imagecodecs.avif_decode(data).dtype == np.uint16


def test_jpeg2000_hits_its_target_rate(configs, small_photo):
    config = configs["jpeg2000"]
    codec = registry.create(config)
    rate = config.rate("bpp=1.0")
    bpp = 8 * len(codec.encode(small_photo, rate)) / (small_photo.shape[0] * small_photo.shape[1])
    assert 0.8 < bpp <= 1.05
