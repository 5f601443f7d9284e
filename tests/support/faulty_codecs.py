"""Adapters that fail on purpose, to test how the runner survives failures it cannot cause with
a real codec on demand: a hang, a worker killed by the OS (as the OOM killer does), an exception, a failed allocation.
They wrap real JPEG coding so their successful cells are real measurements."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from bench.codecs.base import CodecError, Param, RatePoint
from bench.codecs.pillow_codecs import JpegCodec


class FaultyJpeg(JpegCodec):
    """JPEG that misbehaves at the rate point whose params carry ``fault``."""

    adapter = "faulty-jpeg"
    rate_params = {**JpegCodec.rate_params, "fault": Param(str, choices=("hang", "kill", "raise", "oom", "slow")),
                   "seconds": Param(float, 0)}

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        fault = rate.params.get("fault")
        clean = RatePoint(rate.label, {k: v for k, v in rate.params.items() if k != "fault"})
        if fault == "hang":
            time.sleep(3600)
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "raise":
            raise CodecError("injected encoder failure")
        if fault == "oom":  # a real failed allocation, wrapped as adapters wrap model errors
            try:
                np.empty(1 << 62, dtype=np.uint8)
            except MemoryError as exc:
                raise CodecError("injected encoder failure") from exc
        if fault == "slow":
            time.sleep(float(rate.params.get("seconds", 0.5)))
        return super().encode(image, clean)
