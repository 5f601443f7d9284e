"""The codec protocol: the one interface every codec adapter implements.

A codec turns an RGB uint8 image (H×W×3) into real bytes at one rate point and turns those bytes
back into an image of the same size. It also describes itself — name, the exact version of the
library or binary underneath, its configuration and device — so every measurement can be traced.

Learned codecs implement the same protocol. They may return an :class:`Encoded` with extras
(estimated bits from the likelihoods, LOF statistics, sequential step counts); the runner stores
extras beside the real byte count, never in its place.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from bench.errors import CodecError, CodecUnavailable




@dataclass(frozen=True)
class RatePoint:
    """One point of a codec's rate ladder: a label for tables and the adapter's parameters."""

    label: str
    params: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # params is a dict; the label identifies the point
        return hash(self.label)


@dataclass
class Encoded:
    """What ``encode`` produces: the complete bitstream plus optional extras.

    ``data`` is every byte the decoder needs (headers included); its length is the rate.
    ``extras`` holds codec-specific numbers (e.g. ``estimated_bits``) stored in their own column.
    """

    data: bytes
    extras: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def of(result: bytes | Encoded) -> Encoded:
        if isinstance(result, Encoded):
            return result
        if isinstance(result, (bytes, bytearray, memoryview)):
            return Encoded(bytes(result))
        raise TypeError(f"encode() must return bytes or Encoded, got {type(result).__name__}")


@dataclass(frozen=True)
class CodecConfig:
    """A codec configuration as read from ``codecs/<name>.toml``.

    ``name`` identifies the configuration (e.g. ``jpeg-420``); ``adapter`` names the code that
    runs it (e.g. ``jpeg``); ``params`` are fixed settings; ``rates`` is the rate ladder.
    """

    name: str
    adapter: str
    params: dict[str, Any] = field(default_factory=dict)
    rates: tuple[RatePoint, ...] = ()
    description: str = ""
    device: str = "cpu"  # "cpu", "cuda", "cuda:1" or "auto" (CUDA when present)
    default_run: bool = True  # part of `bench run` without --codecs
    source: str = ""  # file the configuration came from

    def rate(self, label: str) -> RatePoint:
        for point in self.rates:
            if point.label == label:
                return point
        known = ", ".join(p.label for p in self.rates)
        raise KeyError(f"codec {self.name!r} has no rate point {label!r} (known: {known})")


class Codec(abc.ABC):
    """Base class of every adapter.

    Subclasses set ``adapter`` (the name used in TOML files), implement ``encode``/``decode`` and
    ``library_version``, and may override ``check_available`` to explain why they cannot run.
    """

    adapter: ClassVar[str] = ""
    #: True when encode/decode run in a child process (process start-up is inside the timing).
    subprocess: ClassVar[bool] = False

    def __init__(self, config: CodecConfig, device: str | None = None):
        self.config = config
        self.device = device or config.device
        if self.device == "auto":  # CUDA when present, else CPU
            from bench.device import cuda_available

            self.device = "cuda" if cuda_available() else "cpu"
        #: Subprocess codecs set this after each call: the child's peak RSS in bytes.
        self.last_child_peak_rss: int | None = None
        #: A decoder may report numbers about its last call here (e.g. per-step decode times);
        #: the runner stores them under ``extras["decode"]``.
        self.last_decode_extras: dict[str, Any] = {}

    # --- description -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        """Return ``None`` if the codec can run here, else a one-line reason why not."""
        return None

    @abc.abstractmethod
    def library_version(self) -> str:
        """Exact version of the library or binary underneath, e.g. ``libjpeg-turbo 3.0.3``."""

    @property
    def trained(self) -> bool:
        """False for learned codecs running on random weights (valid for complexity only)."""
        return True

    def describe(self) -> dict[str, Any]:
        """Everything needed to reproduce this codec's numbers; stored with each run."""
        return {
            "name": self.name,
            "adapter": self.adapter,
            "version": self.library_version(),
            "params": dict(self.config.params),
            "device": self.device,
            "trained": self.trained,
            "subprocess": self.subprocess,
            "description": self.config.description,
        }

    # --- coding ------------------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes | Encoded:
        """Encode an H×W×3 uint8 RGB image at one rate point into the complete bitstream."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decode a bitstream produced by ``encode`` into an H×W×3 uint8 RGB image.

        Receives only the bytes. Must raise :class:`CodecError` (not hang) on corrupt input.
        """

    def synchronize(self) -> None:
        """Wait for queued device work; a no-op on CPU. Learned codecs on CUDA override it."""

    def close(self) -> None:
        """Release resources (temporary folders, GPU memory)."""
