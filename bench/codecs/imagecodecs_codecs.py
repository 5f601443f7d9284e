"""Classical codecs through imagecodecs: JPEG XL (libjxl) and 10-bit AVIF (libavif + aom)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bench.codecs.base import Codec, CodecConfig, Param, RatePoint, ThreadUse
from bench.errors import CodecError


class ImagecodecsCodec(Codec):
    """Shared logic: ``imagecodecs.<codec>_encode`` / ``_decode`` with the configuration's options."""

    codec_name: ClassVar[str] = ""

    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            import imagecodecs
        except ImportError:
            return "imagecodecs is not installed (pip install imagecodecs)"
        if not getattr(imagecodecs, cls.codec_name.upper()).available:
            return f"this imagecodecs build has no {cls.codec_name} codec"
        return None

    def library_version(self) -> str:
        import imagecodecs

        return f"{getattr(imagecodecs, self.codec_name + '_version')()} (imagecodecs {imagecodecs.__version__})"

    def _functions(self):
        import imagecodecs

        return getattr(imagecodecs, self.codec_name + "_encode"), getattr(imagecodecs, self.codec_name + "_decode")

    def threads_used(self, threads: int) -> ThreadUse:
        """imagecodecs sizes the library's pools itself: encode at ``numthreads`` (where the codec takes
        it), decode at imagecodecs' default of 1, whatever the run's pin."""
        if self.fixed_params is None or "numthreads" not in self.fixed_params:
            return super().threads_used(threads)
        return ThreadUse(int(self.config.params.get("numthreads", 1)), 1,
                         "imagecodecs: numthreads (encode), its default 1 (decode)")

    def decode(self, data: bytes) -> np.ndarray:
        _, decode = self._functions()
        try:
            image = decode(data)
        except Exception as exc:
            raise CodecError(f"{self.codec_name} decode failed: {type(exc).__name__}: {exc}") from exc
        return self.to_rgb8(image)

    def to_rgb8(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise CodecError(f"decoded {image.dtype} array of shape {image.shape}, expected H×W×3 uint8")
        return image


class JpegXLCodec(ImagecodecsCodec):
    """JPEG XL (VarDCT) via libjxl; ladder over the butteraugli ``distance`` (lower = better)."""

    adapter = "jpegxl"
    codec_name = "jpegxl"
    rate_params = {"distance": Param(float, 0, 25, required=True)}  # libjxl: 0 lossless .. 25
    fixed_params = {"effort": Param(int, 1, 10), "numthreads": Param(int, 1), "decodingspeed": Param(int, 0, 4)}

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        encode, _ = self._functions()
        try:
            return bytes(encode(image, **{**self.config.params, **rate.params}))
        except Exception as exc:
            raise CodecError(f"jpegxl encode failed: {exc}") from exc


class Avif10Codec(ImagecodecsCodec):
    """AVIF at 10 bits per sample via libavif (aom encoder).

    8-bit RGB is scaled to 10 bits exactly (v·1023/255, rounded) before coding, and the 10-bit
    output back to 8 bits with rounding, so both conversions are explicit and symmetric.
    ``level`` is libavif's quality (0–100); ``pixelformat`` and ``speed`` come from params.
    """

    adapter = "avif10"
    codec_name = "avif"
    rate_params = {"level": Param(int, 0, 100, required=True)}  # libavif quality 0..100
    fixed_params = {"pixelformat": Param(str, choices=("444", "422", "420", "400")), "speed": Param(int, 0, 10),
                    "numthreads": Param(int, 1), "codec": Param(str)}

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        encode, _ = self._functions()
        ten_bit = np.round(image.astype(np.float64) * (1023.0 / 255.0)).astype(np.uint16)
        try:
            return bytes(encode(ten_bit, bitspersample=10, **{**self.config.params, **rate.params}))
        except Exception as exc:
            raise CodecError(f"avif (10-bit) encode failed: {exc}") from exc

    def to_rgb8(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] != 3:
            raise CodecError(f"decoded {image.dtype} array of shape {image.shape}, expected H×W×3 uint16")
        return np.clip(np.round(image.astype(np.float64) * (255.0 / 1023.0)), 0, 255).astype(np.uint8)
