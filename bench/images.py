"""Reading test images: validation, explicit conversions, centre crops.

Every codec receives an H×W×3 uint8 RGB array. Anything else on disk is either converted by an
explicit, logged rule (grayscale → RGB by channel replication, 16-bit → 8-bit by rounding
v·255/max, fully opaque alpha dropped, palette → RGB, EXIF orientation applied) or rejected with a
message that says what is wrong with the file. Deep PNG, TIFF and PGM/PPM files are read at full
depth for the rounding: Pillow alone would keep only the high byte of 16-bit TIFF colour samples.

EXIF orientation (tags 2–8, common in camera and phone JPEGs) is applied with
``PIL.ImageOps.exif_transpose``: the picture the user sees in every viewer is the one coded, and a
rotation or flip is lossless, so nothing is invented. Refusing would make most phone photographs
unusable for no gain. Animated or multi-frame files (animated GIF, APNG, animated WebP,
multi-page TIFF) are refused with their frame count: which frame is "the image" is the user's
choice, not ours. A static GIF is a palette image and is converted like one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from bench.errors import ImageError
from bench.hashing import file_sha256  # noqa: F401 — part of this module's API

log = logging.getLogger(__name__)

MIN_SIDE = 8
#: Larger images are refused (a 16K×16K image needs ~0.8 GB per copy); raise it deliberately.
MAX_PIXELS = 100_000_000
EXIF_ORIENTATION = 0x0112
#: EXIF orientation → the transform that shows the picture upright (what ``exif_transpose`` does).
ORIENTATIONS = {2: "mirrored left-right", 3: "rotated 180°", 4: "mirrored top-bottom", 5: "transposed",
                6: "rotated 90° clockwise", 7: "transversed", 8: "rotated 90° counter-clockwise"}



@dataclass
class LoadedImage:
    """An image ready for coding, with the conversions applied to get there."""

    name: str
    path: Path
    pixels: np.ndarray  # H×W×3 uint8
    sha256: str  # of the file's bytes
    conversions: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]


def _to_rgb8(im: Image.Image, path: Path, conversions: list[str]) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"))
        if (rgba[..., 3] != 255).any():
            raise ImageError(
                f"{path}: has transparent pixels (mode {mode}); compositing onto a background would "
                "change the content, so flatten it yourself and save it as RGB")
        conversions.append(f"dropped fully opaque alpha channel (mode {mode})")
        return np.ascontiguousarray(rgba[..., :3])
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(im).astype(np.float64)
        peak = 65535.0 if wide.max() > 255 or mode.startswith("I;16") else 255.0
        gray = np.clip(np.round(wide * 255.0 / peak), 0, 255).astype(np.uint8)
        conversions.append(f"16-bit grayscale (mode {mode}) → 8-bit by rounding v·255/{peak:.0f}; gray → RGB")
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("L", "1"):
        conversions.append(f"grayscale (mode {mode}) → RGB by replicating the channel")
        return np.asarray(im.convert("RGB"))
    if mode == "P":
        conversions.append("palette → RGB")
        return np.asarray(im.convert("RGB"))
    if mode == "CMYK":
        raise ImageError(f"{path}: CMYK images are not supported (no colour-managed conversion); convert to sRGB")
    raise ImageError(f"{path}: unsupported image mode {mode}")


def _oriented(im: Image.Image, orientation: object, conversions: list[str]) -> Image.Image:
    """``im`` as displayed: its EXIF orientation applied (and recorded), or unchanged when there is none."""
    if orientation == 1:
        return im
    if orientation not in ORIENTATIONS:
        conversions.append(f"EXIF orientation tag {orientation!r} is not 1–8: ignored, pixels used as stored")
        return im
    turned = ImageOps.exif_transpose(im)
    conversions.append(f"EXIF orientation {orientation} applied ({ORIENTATIONS[orientation]}): "
                       f"{im.width}×{im.height} stored → {turned.width}×{turned.height} coded")
    return turned


def _png_bit_depth(path: Path) -> int:
    """Bit depth from the PNG IHDR chunk (byte 24 of the file)."""
    with open(path, "rb") as fh:
        header = fh.read(25)
    return header[24] if len(header) == 25 else 8


def _wide_to_rgb8(data: np.ndarray, peak: int, what: str, path: Path, conversions: list[str]) -> np.ndarray:
    """Samples deeper than 8 bits (H×W, or H×W×1..4 with alpha last) → H×W×3 uint8 by rounding
    v·255/peak (``peak``: the format's largest sample value); the conversion is recorded."""
    data = data[..., None] if data.ndim == 2 else data
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{path}: {what} with samples of shape {data.shape} is not supported")
    if int(data.max(initial=0)) > peak:
        raise ImageError(f"{path}: {what} holds sample values above its maximum {peak}; the file is corrupt")
    if data.shape[2] in (2, 4):
        if (data[..., -1] != peak).any():
            raise ImageError(f"{path}: has transparent pixels; flatten it and save it as RGB")
        data = data[..., :-1]
        conversions.append(f"dropped fully opaque {what} alpha channel")
    gray = data.shape[2] == 1
    conversions.append(f"{what} {'grayscale' if gray else 'RGB'} → 8-bit by rounding v·255/{peak}"
                       + ("; gray → RGB" if gray else ""))
    out = np.clip(np.round(data.astype(np.float64) * (255.0 / peak)), 0, 255).astype(np.uint8)
    return np.repeat(out, 3, axis=2) if gray else out


def _rgb48_to_rgb8(path: Path, conversions: list[str]) -> np.ndarray | None:
    """Pillow opens 16-bit-per-channel RGB PNGs as 8-bit silently; read them at full depth."""
    import imagecodecs

    try:
        data = imagecodecs.png_decode(path.read_bytes())
    except Exception as exc:
        raise ImageError(f"{path}: 16-bit PNG cannot be decoded ({exc})") from exc
    if data.dtype == np.uint16 and data.ndim == 3 and data.shape[2] in (3, 4):
        return _wide_to_rgb8(data, 65535, "16-bit", path, conversions)
    return None


def _deep_tiff(im: Image.Image) -> bool:
    """A TIFF with more than 8 bits per sample in colour: Pillow keeps only the high byte of each
    16-bit RGB sample (``RGB;16L``), silently. (16-bit grayscale it reads whole, as mode ``I;16``.)"""
    if im.format != "TIFF" or im.mode.startswith("I") or im.mode == "F":
        return False
    bits = im.tag_v2.get(258, 8)  # BitsPerSample
    return any(b > 8 for b in (bits if isinstance(bits, tuple) else (bits,)))


def _tiff48_to_rgb8(path: Path, conversions: list[str]) -> np.ndarray:
    """A 16-bit colour TIFF at full depth (libtiff through imagecodecs), rounded to 8 bits."""
    import imagecodecs

    try:
        data = imagecodecs.tiff_decode(path.read_bytes())
    except Exception as exc:
        raise ImageError(f"{path}: 16-bit TIFF cannot be decoded ({exc})") from exc
    if data.dtype != np.uint16:
        raise ImageError(f"{path}: TIFF samples of type {data.dtype} are not supported (8 or 16-bit integers)")
    return _wide_to_rgb8(data, 65535, "16-bit TIFF", path, conversions)


_PNM_HEADER = re.compile(rb"\A(P[2356])((?:\s+(?:#[^\n]*\n\s*)*\d+){3})\s")


def _deep_pnm(path: Path, conversions: list[str]) -> np.ndarray | None:
    """A PGM/PPM whose maximum value is above 255, read at full depth (big-endian 16-bit samples,
    or text for P2/P3) and rounded to 8 bits with the conversion recorded; None for 8-bit files."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    match = _PNM_HEADER.match(head)
    if not match:
        return None
    width, height, peak = (int(v) for v in re.findall(rb"\d+", re.sub(rb"#[^\n]*\n", b"", match.group(2))))
    if peak <= 255:
        return None
    if not 255 < peak < 65536:
        raise ImageError(f"{path}: PNM maximum value {peak} is out of range (1..65535)")
    magic, channels = match.group(1), 3 if match.group(1) in (b"P3", b"P6") else 1
    count = width * height * channels
    raw = path.read_bytes()[match.end():]
    if magic in (b"P5", b"P6"):
        if len(raw) < 2 * count:
            raise ImageError(f"{path}: truncated: {len(raw)} bytes of samples, {2 * count} expected")
        data = np.frombuffer(raw, ">u2", count)
    else:
        values = re.sub(rb"#[^\n]*", b"", raw).split()
        if len(values) < count:
            raise ImageError(f"{path}: truncated: {len(values)} samples, {count} expected")
        data = np.array(values[:count], dtype=np.int64)
    what = f"{peak.bit_length()}-bit {'PPM' if channels == 3 else 'PGM'} (maximum {peak})"
    return _wide_to_rgb8(data.reshape(height, width, channels), peak, what, path, conversions)


def load_image(path: str | Path, name: str | None = None, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read and validate one image file; raise :class:`ImageError` with the reason if unusable."""
    path = Path(path)
    name = name or path.stem
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    conversions: list[str] = []
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageError(f"{path}: {width}×{height} = {width * height / 1e6:.0f} MP is larger than "
                                 f"the limit of {max_pixels / 1e6:.0f} MP")
            if min(width, height) < MIN_SIDE:
                raise ImageError(f"{path}: {width}×{height} is too small (each side must be ≥ {MIN_SIDE} px)")
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise ImageError(f"{path}: {im.format} with {frames} frames (animated or multi-page); save the one "
                                 "frame you want as a single-frame PNG")
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
            deep_png = im.format == "PNG" and im.mode in ("RGB", "RGBA") and _png_bit_depth(path) == 16
            deep_tiff = _deep_tiff(im)
            if (deep_png or deep_tiff) and orientation != 1:
                raise ImageError(f"{path}: 16-bit {im.format} with EXIF orientation {orientation} is not supported; "
                                 "rotate it and save it without the orientation tag")
            wide = _rgb48_to_rgb8(path, conversions) if deep_png else _tiff48_to_rgb8(path, conversions) \
                if deep_tiff else _deep_pnm(path, conversions) if im.format == "PPM" else None
            im.load()
            pixels = wide if wide is not None else _to_rgb8(_oriented(im, orientation, conversions), path,
                                                            conversions)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: not a readable image file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot be decoded ({type(exc).__name__}: {exc}); truncated or corrupt?") from exc
    for note in conversions:
        log.warning("%s: %s", path, note)
    return LoadedImage(name, path, np.ascontiguousarray(pixels, dtype=np.uint8), file_sha256(path), conversions)


def centre_crop(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centre ``width``×``height`` window; the offsets round down, so the rule is exact."""
    h, w = pixels.shape[:2]
    if width > w or height > h:
        raise ImageError(f"cannot crop {w}×{h} to {width}×{height}: no upscaling")
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(pixels[top:top + height, left:left + width])
