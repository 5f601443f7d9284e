"""Real codecs made slower on purpose, to test that the regression gate catches a slowdown.

``DecodeRepeated`` makes an adapter decode every stream :data:`DECODE_REPEATS` (4) times with the
real library (the last result is returned and each must equal the first): four times the real
decoding work, the same bitstream and the same pixels — a slowdown far beyond any threshold a
test judges it by, so that load on the machine cannot hide it. ``SleepBeforeDecode`` makes it
*wait* :data:`DECODE_SLEEP_S` (50 ms) before each decode instead: the same work, more wall time
and almost no more CPU time (a lock, I/O, a sleep).
"""

from __future__ import annotations

import time

import numpy as np

from bench.errors import CodecError
from bench.codecs.pillow_codecs import AvifCodec, Jpeg2000Codec, JpegCodec


#: How many times :class:`DecodeRepeated` decodes each stream.
DECODE_REPEATS = 4


class DecodeRepeated:
    """Mixin: ``decode`` runs the wrapped adapter's decode :data:`DECODE_REPEATS` times."""

    def decode(self, data: bytes) -> np.ndarray:
        first = super().decode(data)  # type: ignore[misc]
        for _ in range(DECODE_REPEATS - 1):
            again = super().decode(data)  # type: ignore[misc]
            if not np.array_equal(first, again):
                raise CodecError("two decodes of the same bytes differ")
        return first


class RepeatDecodedJpeg2000(DecodeRepeated, Jpeg2000Codec):
    adapter = "jpeg2000-decode-repeated"


#: How long :class:`SleepBeforeDecode` waits per decode call (seconds).
DECODE_SLEEP_S = 0.050


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
