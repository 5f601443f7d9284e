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
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bench.errors import CodecError, CodecUnavailable  # noqa: F401 — re-exported for adapters written against bench.codecs.base

_KIND_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "a table"}


@dataclass(frozen=True)
class Param:
    """Type and allowed range of one adapter parameter, checked when a configuration is loaded.

    ``kind`` is ``int``, ``float`` (an integer is accepted too), ``str``, ``bool``, ``list`` or
    ``dict``; ``low``/``high`` bound numbers (inclusive; ``low_open`` excludes ``low``), ``choices``
    lists the only values allowed. ``required`` parameters must be given.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    low_open: bool = False
    required: bool = False

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``an integer in 0..100`` or ``a number > 0``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        words = _KIND_WORDS[self.kind]
        if self.low is not None and self.high is not None and not self.low_open:
            return f"{words} in {self.low:g}..{self.high:g}"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        return " ".join([words, " and ".join(bounds)]).strip()

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (as read from TOML) has the declared type and lies in range."""
        if isinstance(value, bool) and self.kind is not bool:
            return False  # bool is an int subclass; true is not a quality
        numeric = self.kind in (int, float)
        kinds = (int, float) if self.kind is float else (self.kind,)
        if not isinstance(value, kinds):
            return False
        if self.choices:
            return value in self.choices
        if numeric:
            if not math.isfinite(value):
                return False
            if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
                return False
            if self.high is not None and value > self.high:
                return False
        return True


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
class ThreadUse:
    """The thread counts a codec's last encode and decode ran with, and, when the codec chose them
    rather than following the run's pin, what set them (stored with the row: what was timed)."""

    encode: int | None
    decode: int | None
    pinned_by: str | None = None  # None: both follow the run's --threads


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
    #: the configuration this one is the LOF variant of (TOML ``lof_of``; checked by
    #: :func:`bench.codecs.registry.lof_problem`); metadata, not part of the configuration hash
    lof_of: str | None = None

    def rate(self, label: str) -> RatePoint:
        for point in self.rates:
            if point.label == label:
                return point
        known = ", ".join(p.label for p in self.rates)
        raise KeyError(f"codec {self.name!r} has no rate point {label!r} (known: {known})")

    @property
    def middle_rate(self) -> RatePoint | None:
        """The middle rate point of the ladder: the one resolution-ladder cells (and ``--memory mid``) use."""
        return self.rates[len(self.rates) // 2] if self.rates else None


class Codec(abc.ABC):
    """Base class of every adapter.

    Subclasses set ``adapter`` (the name used in TOML files), implement ``encode``/``decode`` and
    ``library_version``, and may override ``check_available`` to explain why they cannot run.
    They declare their parameters (``rate_params``, ``fixed_params``) as data, so a configuration
    with a value out of the library's range is refused when it is loaded, not coded under a
    wrong label.
    """

    adapter: ClassVar[str] = ""
    #: True when encode/decode run in a child process (process start-up is inside the timing).
    subprocess: ClassVar[bool] = False
    #: Parameters a rate point may set (a ladder's ``param`` must be one of them), with their
    #: types and ranges; ``None``: not declared, rate points are not checked.
    rate_params: ClassVar[dict[str, Param] | None] = None
    #: Fixed settings accepted under ``[params]``; any other key is refused. ``None``: not declared.
    fixed_params: ClassVar[dict[str, Param] | None] = None

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

    def weights_sha256(self, rate: RatePoint) -> str | None:
        """sha256 of the weights file behind ``rate`` (stored per cell); None without weights."""
        return None

    def describe(self) -> dict[str, Any]:
        """Everything needed to reproduce this codec's numbers, as one dict for people and tools.

        Not stored as such: a cell's row records the version (``codec_version``), ``trained`` and
        the weights' sha256 (``weights_sha256``) in columns of its own (:mod:`bench.worker`)."""
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

    def threads_used(self, threads: int) -> ThreadUse:
        """The thread counts of the last encode and decode, given the run's pin ``threads`` (every
        math-library pool of the worker). A codec that sets its own count overrides this and says so."""
        return ThreadUse(threads, threads)

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

    # --- what measurement asks of a codec (bench.complexity, bench.memory) ---------------------------
    def complexity(self, rate: RatePoint, height: int, width: int) -> Any:
        """Counted multiply-adds per part of coding a ``height``×``width`` image at ``rate`` (a
        :class:`bench.models.macs.Complexity`), or None when the codec has nothing to count
        (classical codecs). The measurement layer calls this; it never looks inside a codec."""
        return None

    def memory_model(self, rate: RatePoint) -> Any:
        """The model whose parameters and buffers are this codec's resident weights at ``rate``
        (loaded if needed; its bytes are stored as ``model_bytes``), or None when it has none."""
        return None

    def close(self) -> None:
        """Release resources (temporary folders, GPU memory)."""
