"""Codecs whose memory is known exactly, to check the clean-process memory measurement
(:mod:`bench.memory`): one whose decoder allocates and writes exactly ``mib`` MiB, one whose
decoder allocates nothing (it returns a view of a buffer made, and written, at construction).
Their bitstream is the image's height and width; their pixels are meaningless."""

from __future__ import annotations

import os
import signal
import struct

import numpy as np

from bench.codecs.base import Codec, CodecConfig, Param, RatePoint
from bench.errors import CodecError

_SIZE = struct.Struct("<II")


class _HeaderOnly(Codec):
    rate_params = {"level": Param(int, 0, 100)}

    def library_version(self) -> str:
        return "test codec"

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        return _SIZE.pack(*image.shape[:2]) + bytes([rate.params["level"]])

    @staticmethod
    def size(data: bytes) -> tuple[int, int]:
        try:
            return _SIZE.unpack_from(data)
        except struct.error as exc:
            raise CodecError(f"truncated stream: {exc}") from exc


class AllocatingDecoder(_HeaderOnly):
    """Decode allocates ``mib`` MiB and writes every byte (so every page is resident), then
    returns a black image."""

    adapter = "alloc-decode"
    fixed_params = {"mib": Param(float, 0, required=True)}

    def decode(self, data: bytes) -> np.ndarray:
        height, width = self.size(data)
        scratch = np.empty(int(self.config.params["mib"] * 2**20), dtype=np.uint8)
        scratch.fill(1)
        return np.zeros((height, width, 3), dtype=np.uint8)


class NonAllocatingDecoder(_HeaderOnly):
    """Decode allocates nothing: the image is a view of a buffer written at construction."""

    adapter = "noalloc-decode"
    fixed_params = {}

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        self._pixels = np.full(2**22, 7, dtype=np.uint8)  # 4 MiB: room for 1.3 MP

    def decode(self, data: bytes) -> np.ndarray:
        height, width = self.size(data)
        return self._pixels[:height * width * 3].reshape(height, width, 3)


class KilledInMemoryChild(NonAllocatingDecoder):
    """Decodes normally where it was constructed (the worker) and is killed by SIGKILL anywhere
    else — i.e. in a memory child, as the out-of-memory killer would."""

    adapter = "killed-in-memory-child"

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        self._home = os.getpid()

    def decode(self, data: bytes) -> np.ndarray:
        if os.getpid() != self._home:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().decode(data)


class CountedComplexity(_HeaderOnly):
    """Reports a made-up complexity (7 and 5 MACs per pixel) and appends one line ``HxW`` per
    :meth:`complexity` call to the file ``count_log``, so a test sees every count, in any process."""

    adapter = "counted-complexity"
    fixed_params = {"count_log": Param(str, required=True)}

    def decode(self, data: bytes) -> np.ndarray:
        height, width = self.size(data)
        return np.zeros((height, width, 3), dtype=np.uint8)

    def complexity(self, rate: RatePoint, height: int, width: int):
        from bench.models.macs import Complexity

        with open(self.config.params["count_log"], "a") as fh:
            fh.write(f"{height}x{width}\n")
        return Complexity(height, width, height, width, {"analysis": 7 * height * width,
                                                         "synthesis": 5 * height * width}, {"analysis": 3})
