"""HEIC / HEVC intra via pillow-heif (libheif + x265 to encode, libde265 to decode).

Optional: pillow-heif's wheels bundle x265, which is GPL, so it is the ``heif`` extra.
"""

from __future__ import annotations

import io

import numpy as np

from bench.codecs.base import Codec, CodecConfig, Param, RatePoint
from bench.errors import CodecError


class HeicCodec(Codec):
    """HEIC with x265; ``chroma`` (420/444) and x265 ``enc_params`` (e.g. tune=psnr) in params."""

    adapter = "heic"
    rate_params = {"quality": Param(int, 0, 100, required=True)}  # libheif/x265 quality (-1, lossless, not here)
    fixed_params = {"chroma": Param(int, choices=(420, 422, 444)), "enc_params": Param(dict)}

    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        try:
            import pillow_heif
        except ImportError:
            return "pillow-heif is not installed (optional, GPL via x265: pip install 'lic-bench[heif]')"
        if not pillow_heif.libheif_info().get("encoders", {}).get("x265"):
            return "pillow-heif has no x265 encoder"
        return None

    def library_version(self) -> str:
        import pillow_heif

        info = pillow_heif.libheif_info()
        return (f"libheif {info['libheif']}; enc {info['encoders'].get('x265')}; "
                f"dec {info['decoders'].get('libde265')} (pillow-heif {pillow_heif.__version__})")

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        import pillow_heif

        options = {**self.config.params, **rate.params}
        options["enc_params"] = dict(options.get("enc_params", {}))  # pillow-heif mutates it
        heif = pillow_heif.from_bytes(mode="RGB", size=(image.shape[1], image.shape[0]), data=image.tobytes())
        buffer = io.BytesIO()
        try:
            heif.save(buffer, format="HEIF", **options)
        except Exception as exc:
            raise CodecError(f"HEIC encode failed: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_heif

        try:
            heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
            if heif.mode != "RGB":
                raise CodecError(f"decoded HEIC has mode {heif.mode}, expected RGB")
            return np.asarray(heif).copy()
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"HEIC decode failed: {type(exc).__name__}: {exc}") from exc
