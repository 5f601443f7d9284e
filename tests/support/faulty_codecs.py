"""Adapters that fail on purpose, to test how the runner survives failures it cannot cause with
a real codec on demand: a hang, a worker killed by the OS (as the OOM killer does), an exception.
They wrap real JPEG coding so their successful cells are real measurements."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from bench.codecs.base import CodecError, RatePoint
from bench.codecs.pillow_codecs import JpegCodec


class FaultyJpeg(JpegCodec):
    """JPEG that misbehaves at the rate point whose params carry ``fault``."""

    adapter = "faulty-jpeg"

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        fault = rate.params.get("fault")
        clean = RatePoint(rate.label, {k: v for k, v in rate.params.items() if k != "fault"})
        if fault == "hang":
            time.sleep(3600)
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "raise":
            raise CodecError(str(rate.params.get("message", "injected encoder failure")))
        if fault == "slow":
            time.sleep(float(rate.params.get("seconds", 0.5)))
        return super().encode(image, clean)
