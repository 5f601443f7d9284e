"""Adapters that fail on purpose, to test how the runner survives failures it cannot cause with
a real codec on demand: a hang, a worker killed by the OS (as the OOM killer does), an exception,
a failed allocation, a slow cell, a cell that holds a run open until a test lets it go, a slow
worker start-up. They wrap real JPEG coding so their successful cells are real measurements."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from bench.codecs.base import CodecConfig, Param, RatePoint
from bench.errors import CodecError
from bench.codecs.pillow_codecs import JpegCodec

#: Rate-point keys that steer the fault, never passed to the encoder.
FAULT_PARAMS = ("fault", "seconds", "marker", "message", "release")


class FaultyJpeg(JpegCodec):
    """JPEG that misbehaves at the rate point whose params carry ``fault``."""

    adapter = "faulty-jpeg"
    rate_params = {**JpegCodec.rate_params,
                   "fault": Param(str, choices=("hang", "kill", "raise", "oom", "slow", "block-once")),
                   "seconds": Param(float, 0), "marker": Param(str),
                   "message": Param(str), "release": Param(str)}

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        fault = rate.params.get("fault")
        clean = RatePoint(rate.label, {k: v for k, v in rate.params.items() if k not in FAULT_PARAMS})
        if fault == "block-once":  # the first such cell ever (it creates ``release`` + ".taken") waits for ``release``
            try:
                Path(str(rate.params["release"]) + ".taken").touch(exist_ok=False)
            except FileExistsError:
                return super().encode(image, clean)
            while not Path(rate.params["release"]).exists():
                time.sleep(0.05)
        if "marker" in rate.params:  # tell a test that the cell's own work has begun
            Path(rate.params["marker"]).touch()
        if fault == "hang":
            time.sleep(3600)
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "raise":
            raise CodecError(str(rate.params.get("message", "injected encoder failure")))
        if fault == "oom":  # a real failed allocation, wrapped as adapters wrap model errors
            try:
                np.empty(1 << 62, dtype=np.uint8)
            except MemoryError as exc:
                raise CodecError("injected encoder failure") from exc
        if fault == "slow":
            time.sleep(float(rate.params.get("seconds", 0.5)))
        return super().encode(image, clean)


class SlowStartJpeg(FaultyJpeg):
    """:class:`FaultyJpeg` whose construction takes ``startup_s`` seconds (config params), like a
    learned codec importing torch and loading weights in a fresh worker."""

    adapter = "slow-start-jpeg"
    fixed_params = {**FaultyJpeg.fixed_params, "startup_s": Param(float, 0)}

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        time.sleep(float(config.params.get("startup_s", 0)))

    def save_options(self, rate: RatePoint) -> dict:
        return {k: v for k, v in super().save_options(rate).items() if k != "startup_s"}
