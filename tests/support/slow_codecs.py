"""Real codecs made slower on purpose, to test that the regression gate catches a slowdown.

``DecodeTwice`` makes an adapter decode every stream twice with the real library (the second
result is returned and must equal the first): exactly twice the real decoding work, the same
bitstream and the same pixels.
"""

from __future__ import annotations

import numpy as np

from bench.errors import CodecError
from bench.codecs.pillow_codecs import Jpeg2000Codec


class DecodeTwice:
    """Mixin: ``decode`` runs the wrapped adapter's decode twice."""

    def decode(self, data: bytes) -> np.ndarray:
        first = super().decode(data)  # type: ignore[misc]
        second = super().decode(data)  # type: ignore[misc]
        if not np.array_equal(first, second):
            raise CodecError("two decodes of the same bytes differ")
        return second


class TwiceDecodedJpeg2000(DecodeTwice, Jpeg2000Codec):
    adapter = "jpeg2000-decode-twice"
