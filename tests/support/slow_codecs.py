"""Real codecs made slower on purpose, to test that the regression gate catches a slowdown.

``DecodeTwice`` makes an adapter decode every stream twice with the real library (the second
result is returned and must equal the first): exactly twice the real decoding work, the same
bitstream and the same pixels. ``SleepBeforeDecode`` makes it *wait* 20 ms before each decode
instead: the same work, more wall time and almost no more CPU time (a lock, I/O, a sleep).
"""

from __future__ import annotations

import time

import numpy as np

from bench.errors import CodecError
from bench.codecs.pillow_codecs import AvifCodec, Jpeg2000Codec, JpegCodec


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


#: How long :class:`SleepBeforeDecode` waits per decode call (seconds).
DECODE_SLEEP_S = 0.020


class SleepBeforeDecode:
    """Mixin: ``decode`` waits :data:`DECODE_SLEEP_S` and then runs the wrapped adapter's decode."""

    def decode(self, data: bytes) -> np.ndarray:
        time.sleep(DECODE_SLEEP_S)
        return super().decode(data)  # type: ignore[misc]


class SleepyJpeg2000(SleepBeforeDecode, Jpeg2000Codec):
    adapter = "jpeg2000-sleep-before-decode"


class SleepyJpeg(SleepBeforeDecode, JpegCodec):
    adapter = "jpeg-sleep-before-decode"


class SleepyAvif(SleepBeforeDecode, AvifCodec):
    adapter = "avif-sleep-before-decode"
