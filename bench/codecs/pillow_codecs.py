"""Classical codecs through Pillow: JPEG (libjpeg-turbo), WebP (libwebp), AVIF (libavif + aom)
and JPEG 2000 (OpenJPEG).

Every adapter writes the complete file (headers included) and reads it back with Pillow; the
configuration's ``[params]`` are passed to ``Image.save`` after the rate point's own parameter, so
the TOML file says exactly which encoder options were used.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np
from PIL import Image, features

from bench.codecs.base import Codec, CodecConfig, Param, RatePoint, ThreadUse
from bench.errors import CodecError


def _decode_with_pillow(data: bytes, expected_format: str) -> np.ndarray:
    """Decode ``data`` with Pillow, insisting on an 8-bit RGB result of the given format."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != expected_format:
                raise CodecError(f"bitstream is {im.format}, expected {expected_format}")
            im.load()
            if im.mode != "RGB":
                raise CodecError(f"decoded image has mode {im.mode}, expected RGB")
            return np.asarray(im).copy()
    except CodecError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... on corrupt data
        raise CodecError(f"{expected_format} decode failed: {type(exc).__name__}: {exc}") from exc


class PillowCodec(Codec):
    """Shared logic: ``Image.save(format=...)`` with the configuration's options."""

    format: ClassVar[str] = ""
    feature: ClassVar[str] = ""  # Pillow feature name for availability and version

    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        if not features.check(cls.feature):
            return f"this Pillow build has no {cls.feature} support"
        return None

    def library_version(self) -> str:
        import PIL

        return f"{self.feature} {features.version(self.feature)} (Pillow {PIL.__version__})"

    def save_options(self, rate: RatePoint) -> dict[str, Any]:
        return {**self.config.params, **rate.params}

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        buffer = io.BytesIO()
        try:
            Image.fromarray(image, "RGB").save(buffer, format=self.format, **self.save_options(rate))
        except Exception as exc:
            raise CodecError(f"{self.format} encode failed: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return _decode_with_pillow(data, self.format)


class JpegCodec(PillowCodec):
    """JPEG via libjpeg-turbo. ``subsampling`` is "4:2:0" or "4:4:4"; ladder over ``quality``."""

    adapter = "jpeg"
    format = "JPEG"
    feature = "libjpeg_turbo"
    # Pillow: 0 (worst) .. 100; above 95 disables parts of the compression (1..95 recommended)
    rate_params = {"quality": Param(int, 0, 100, required=True)}
    fixed_params = {"subsampling": Param(str, choices=("4:4:4", "4:2:2", "4:2:0")), "optimize": Param(bool),
                    "progressive": Param(bool)}


class WebpCodec(PillowCodec):
    """Lossy WebP via libwebp; ladder over ``quality``, ``method`` (effort) in params."""

    adapter = "webp"
    format = "WEBP"
    feature = "webp"
    rate_params = {"quality": Param(float, 0, 100, required=True)}  # libwebp quality factor 0..100
    fixed_params = {"method": Param(int, 0, 6)}  # libwebp effort: 0 fast .. 6 slowest


class AvifCodec(PillowCodec):
    """AVIF (AV1 intra) via libavif with the aom encoder, 8-bit.

    ``advanced`` options (e.g. ``tune = "psnr"``) are passed to the AV1 encoder; Pillow's AVIF
    encoder accepts only 8-bit images, so the 10-bit configuration uses :class:`Avif10Codec`.
    """

    adapter = "avif"
    format = "AVIF"
    feature = "avif"
    rate_params = {"quality": Param(int, 0, 100, required=True)}  # Pillow refuses anything else
    fixed_params = {"subsampling": Param(str, choices=("4:4:4", "4:2:2", "4:2:0", "4:0:0")),
                    "speed": Param(int, 0, 10), "range": Param(str, choices=("full", "limited")),
                    "max_threads": Param(int, 1), "codec": Param(str), "advanced": Param(dict)}

    def threads_used(self, threads: int) -> ThreadUse:
        """libavif sizes its own pools: the encoder at ``max_threads`` (Pillow's default without it),
        the decoder at Pillow's default (the CPUs this process may run on), whatever the run's pin."""
        from PIL import AvifImagePlugin

        default = AvifImagePlugin._get_default_max_threads()
        encode = int(self.config.params.get("max_threads", default))
        return ThreadUse(encode, default, "libavif via Pillow: max_threads (encode), the CPUs usable (decode)")

    def library_version(self) -> str:
        from PIL import _avif

        return f"{super().library_version()}; {_avif.codec_versions()}"

    def save_options(self, rate: RatePoint) -> dict[str, Any]:
        options = super().save_options(rate)
        if "advanced" in options:  # TOML tables -> the (key, value) pairs Pillow expects
            options["advanced"] = [(str(k), str(v)) for k, v in dict(options["advanced"]).items()]
        return options


class Jpeg2000Codec(PillowCodec):
    """JPEG 2000 via OpenJPEG: lossy 9/7 wavelet (``irreversible``) with the colour transform.

    The rate point gives a target ``bpp``; OpenJPEG's rate control gets the equivalent
    compression ratio 24/bpp of an 8-bit RGB image. The measured bpp is what is reported.
    """

    adapter = "jpeg2000"
    format = "JPEG2000"
    feature = "jpg_2000"
    # OpenJPEG needs a compression ratio 24/bpp > 0; at 24 bpp and above the ratio is ≤ 1 (no compression)
    rate_params = {"bpp": Param(float, 0, 24, low_open=True, required=True)}
    fixed_params = {"irreversible": Param(bool), "mct": Param(int, choices=(0, 1)), "no_jp2": Param(bool),
                    "num_resolutions": Param(int, 1, 32),
                    "progression": Param(str, choices=("LRCP", "RLCP", "RPCL", "PCRL", "CPRL"))}

    def save_options(self, rate: RatePoint) -> dict[str, Any]:
        options = {**self.config.params, **rate.params}
        target_bpp = float(options.pop("bpp"))
        options.update(quality_mode="rates", quality_layers=[24.0 / target_bpp])
        return options
