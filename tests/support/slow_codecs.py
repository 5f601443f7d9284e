"""A real codec made slower on purpose, to test that the regression gate catches a slowdown.

``TwiceDecodedJpeg`` is the JPEG adapter whose decode runs libjpeg-turbo twice on the same bytes
(the second result is the one returned, and must equal the first): exactly twice the real work,
same bitstream, same pixels.
"""

from __future__ import annotations

import numpy as np

from bench.codecs.base import CodecError
from bench.codecs.pillow_codecs import JpegCodec


class TwiceDecodedJpeg(JpegCodec):
    adapter = "jpeg-decode-twice"

    def decode(self, data: bytes) -> np.ndarray:
        first = super().decode(data)
        second = super().decode(data)
        if not np.array_equal(first, second):
            raise CodecError("two decodes of the same bytes differ")
        return second
