import logging
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bench.images import ImageError, centre_crop, load_image


def _save(tmp_path, name, array, mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_rgb_png_loads_unchanged(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    loaded = load_image(_save(tmp_path, "a.png", a))
    assert np.array_equal(loaded.pixels, a) and loaded.conversions == []
    assert len(loaded.sha256) == 64


def test_unreadable_file(tmp_path):
    path = tmp_path / "text.png"
    path.write_text("this is not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(path)


def test_truncated_png(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = _save(tmp_path, "t.png", a)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_grayscale_is_converted_and_logged(tmp_path, caplog):
    g = np.arange(400, dtype=np.uint8).reshape(20, 20)
    with caplog.at_level(logging.WARNING):
        loaded = load_image(_save(tmp_path, "g.png", g))
    assert loaded.pixels.shape == (20, 20, 3)
    assert all(np.array_equal(loaded.pixels[..., c], g) for c in range(3))
    assert "grayscale" in loaded.conversions[0] and "grayscale" in caplog.text


def test_16bit_rgb_png_is_rounded_to_8bit(tmp_path):
    import imagecodecs

    wide = np.random.default_rng(2).integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(imagecodecs.png_encode(wide))
    loaded = load_image(path)
    expected = np.round(wide.astype(float) * 255 / 65535).astype(np.uint8)
    assert np.array_equal(loaded.pixels, expected)
    assert "16-bit RGB" in loaded.conversions[0]


def test_16bit_gray_png(tmp_path):
    import imagecodecs

    wide = (np.arange(144, dtype=np.uint16).reshape(12, 12) * 450)
    path = tmp_path / "g16.png"
    path.write_bytes(imagecodecs.png_encode(wide))
    loaded = load_image(path)
    assert loaded.pixels.shape == (12, 12, 3)
    assert loaded.pixels[..., 0][11, 11] == round(143 * 450 * 255 / 65535)


def test_transparent_alpha_is_rejected(tmp_path):
    a = np.full((10, 10, 4), 200, np.uint8)
    a[0, 0, 3] = 0
    with pytest.raises(ImageError, match="transparent"):
        load_image(_save(tmp_path, "a.png", a, "RGBA"))


def test_opaque_alpha_is_dropped(tmp_path):
    a = np.full((10, 10, 4), 255, np.uint8)
    a[..., 0] = 7
    loaded = load_image(_save(tmp_path, "a.png", a, "RGBA"))
    assert loaded.pixels.shape == (10, 10, 3) and loaded.pixels[0, 0, 0] == 7
    assert "alpha" in loaded.conversions[0]


def test_one_pixel_image_is_rejected(tmp_path):
    with pytest.raises(ImageError, match="too small"):
        load_image(_save(tmp_path, "one.png", np.zeros((1, 1, 3), np.uint8)))


def test_enormous_image_is_refused_before_decoding(tmp_path):
    # A PNG whose header claims 60000×60000 pixels (3.6 gigapixels) and holds almost no data.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match="larger than the limit|decompression bomb"):
        load_image(path)


def test_centre_crop_rule_and_no_upscaling():
    a = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    crop = centre_crop(a, 5, 4)
    assert crop.shape == (4, 5, 3)
    assert np.array_equal(crop, a[3:7, 3:8])
    with pytest.raises(ImageError, match="no upscaling"):
        centre_crop(a, 13, 4)


def _frames(n, shape=(24, 40, 3)):
    rng = np.random.default_rng(5)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("name, fmt", [("anim.gif", "GIF"), ("anim.png", "PNG"), ("anim.webp", "WEBP")])
def test_animated_image_is_refused_with_its_frame_count(tmp_path, name, fmt):
    first, *rest = _frames(3)
    path = tmp_path / name
    first.save(path, save_all=True, append_images=rest, **({"lossless": True} if fmt == "WEBP" else {}))
    assert Image.open(path).n_frames == 3  # a real animation, as Pillow itself reads it
    with pytest.raises(ImageError, match=rf"anim\.{name.split('.')[1]}: {fmt} with 3 frames"):
        load_image(path)


def test_static_gif_is_converted_from_its_palette_and_logged(tmp_path, caplog):
    (frame,) = _frames(1)
    path = tmp_path / "still.gif"
    frame.quantize(16).save(path)
    expected = np.asarray(Image.open(path).convert("RGB"))
    with caplog.at_level(logging.WARNING):
        loaded = load_image(path)
    assert np.array_equal(loaded.pixels, expected)
    assert loaded.conversions == ["palette → RGB"] and "still.gif: palette → RGB" in caplog.text


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_6_is_applied_and_logged(tmp_path, caplog, suffix):
    (frame,) = _frames(1)  # stored 40 wide × 24 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / f"phone{suffix}"
    frame.save(path, exif=exif, **({"quality": 95} if suffix == ".jpg" else {}))
    stored = np.asarray(Image.open(path).convert("RGB"))  # Pillow does not apply the tag on open
    with caplog.at_level(logging.WARNING):
        loaded = load_image(path)
    assert stored.shape == (24, 40, 3) and loaded.pixels.shape == (40, 24, 3)
    assert np.array_equal(loaded.pixels, np.rot90(stored, k=-1))  # k=-1: clockwise
    assert loaded.conversions == ["EXIF orientation 6 applied (rotated 90° clockwise): 40×24 stored → 24×40 coded"]
    assert "EXIF orientation 6 applied" in caplog.text


def test_no_or_upright_exif_orientation_changes_nothing(tmp_path):
    (frame,) = _frames(1)
    exif = Image.Exif()
    exif[0x0112] = 1
    path = tmp_path / "upright.png"
    frame.save(path, exif=exif)
    loaded = load_image(path)
    assert np.array_equal(loaded.pixels, np.asarray(frame)) and loaded.conversions == []


def _expected8(wide: np.ndarray, peak: int = 65535) -> np.ndarray:
    return np.round(wide.astype(float) * 255 / peak).astype(np.uint8)


def test_16bit_rgb_tiff_is_rounded_not_truncated_and_logged(tmp_path, caplog):
    import imagecodecs

    wide = np.random.default_rng(3).integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    path = tmp_path / "deep.tif"
    path.write_bytes(imagecodecs.tiff_encode(wide))
    with caplog.at_level(logging.WARNING):
        loaded = load_image(path)
    assert np.array_equal(loaded.pixels, _expected8(wide))  # Pillow alone gives wide >> 8 (the high byte)
    assert not np.array_equal(loaded.pixels, (wide >> 8).astype(np.uint8))
    assert loaded.conversions == ["16-bit TIFF RGB → 8-bit by rounding v·255/65535"]
    assert "16-bit TIFF RGB → 8-bit" in caplog.text


def test_16bit_tiff_with_alpha(tmp_path):
    import imagecodecs

    wide = np.random.default_rng(4).integers(0, 65536, (9, 9, 4), dtype=np.uint16)
    wide[..., 3] = 65535
    path = tmp_path / "alpha.tif"
    path.write_bytes(imagecodecs.tiff_encode(wide))
    loaded = load_image(path)
    assert np.array_equal(loaded.pixels, _expected8(wide[..., :3]))
    assert loaded.conversions[0] == "dropped fully opaque 16-bit TIFF alpha channel"
    wide[0, 0, 3] = 0
    path.write_bytes(imagecodecs.tiff_encode(wide))
    with pytest.raises(ImageError, match="transparent"):
        load_image(path)


@pytest.mark.parametrize("magic, peak", [(b"P6", 65535), (b"P6", 1023), (b"P5", 65535), (b"P3", 4095)])
def test_deep_ppm_and_pgm_are_rounded_and_logged(tmp_path, caplog, magic, peak):
    rng = np.random.default_rng(5)
    channels = 1 if magic == b"P5" else 3
    wide = rng.integers(0, peak + 1, (10, 12, channels), dtype=np.uint16)
    wide[0, 0, 0] = 100  # a low value: a file of dark samples is still deep (its maximum says so)
    header = magic + b"\n# made by the test\n12 10\n" + str(peak).encode() + b"\n"
    body = wide.astype(">u2").tobytes() if magic != b"P3" else " ".join(map(str, wide.ravel())).encode()
    path = tmp_path / "deep.pnm"
    path.write_bytes(header + body)
    with caplog.at_level(logging.WARNING):
        loaded = load_image(path)
    expected = _expected8(wide, peak)
    assert np.array_equal(loaded.pixels, np.repeat(expected, 3, axis=2) if channels == 1 else expected)
    kind = "PPM" if channels == 3 else "PGM"
    note = f"{peak.bit_length()}-bit {kind} (maximum {peak}) {'RGB' if channels == 3 else 'grayscale'} → 8-bit " \
           f"by rounding v·255/{peak}"
    assert loaded.conversions[0].startswith(note) and note in caplog.text


def test_dark_16bit_pgm_is_not_read_as_8bit(tmp_path):
    """Every sample of this 16-bit PGM is below 256: they are 16-bit values, nearly black, not 8-bit ones."""
    wide = np.full((10, 10), 200, dtype=np.uint16)
    path = tmp_path / "dark.pgm"
    path.write_bytes(b"P5\n10 10\n65535\n" + wide.astype(">u2").tobytes())
    assert (load_image(path).pixels == 1).all()  # round(200 · 255 / 65535) = 1


def test_truncated_deep_ppm_is_an_image_error(tmp_path):
    path = tmp_path / "short.ppm"
    path.write_bytes(b"P6\n10 10\n65535\n" + bytes(100))
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)
