"""What the driver, the executors and the workers share: the cell (one unit of work) and the run settings.

:class:`Settings` is the only owner of a run's thread count, time limits, memory mode and metric
choice; every process of a cell gets them from :meth:`Settings.environment` (through
:mod:`bench.procenv`), never from a value of its own.

Every side imports this module: cells are made by :mod:`bench.plan`, run by an executor
(:mod:`bench.executors`) whose workers measure them with :mod:`bench.worker`, and stored by the
driver (:mod:`bench.runner`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bench import procenv
from bench.codecs.base import CodecConfig, RatePoint
from bench.metrics.registry import DEFAULT as DEFAULT_METRICS

#: ``Protocol.memory`` values (:mod:`bench.memory`): clean-process memory of every cell; only of
#: cells at the codec's middle rate point (every image and ladder size); of the middle rate point
#: once per image size (the default: the first cell of each size is measured, the others of that
#: size store its reading, their ``mem_method`` saying so — the readings depend on the size, hardly
#: on the content, and the report's memory section takes one per codec and size); or none
#: (columns NULL, ``mem_method`` says why).
MEMORY_MODES = ("all", "mid", "size", "off")


def now() -> str:
    """The current UTC time as ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def config_hash(config: CodecConfig) -> str:
    """Hash of everything that determines a configuration's output (not its name or prose)."""
    payload = json.dumps({"adapter": config.adapter, "params": config.params,
                          "rates": [(r.label, r.params) for r in config.rates]}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


#: the key under which a worker returns a cell's bitstream in its row (``--keep-streams``; not a
#: store column: the runner takes it out, writes the file with :mod:`bench.streams` and records
#: ``stream_sha256`` instead)
STREAM_ROW_KEY = "_stream"

@dataclass(frozen=True)
class Cell:
    """One unit of work; everything a worker needs, picklable.

    ``round`` repeats a cell (the gate runs every cell once per round, each round in fresh
    workers): round k > 1 is part of the key, so each round is stored as its own row. Round 1
    leaves the key exactly as it was before rounds existed, so stores written then still resume.
    """

    config: CodecConfig
    rate: RatePoint
    dataset: str
    image: str
    image_path: str
    image_sha256: str
    resolution: str  # 'native' or 'WxH' centre crop
    device: str
    round: int = 1
    #: the image file's bytes, carried to a worker that may not see ``image_path`` (the dask
    #: executor fills it on the worker); not part of the key, the hash or the comparison
    image_bytes: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        parts: list[Any] = [config_hash(self.config), self.rate.label, self.rate.params, self.image_sha256,
                            self.resolution, self.device]
        extra = ""
        if self.round != 1:  # round 1: the key of a cell from before rounds existed
            parts.append(self.round)
            extra = f"|round {self.round}"
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return (f"{self.config.name}|{self.rate.label}|{self.dataset}/{self.image}|{self.resolution}|{self.device}"
                f"{extra}|{digest}")

    @property
    def lane(self) -> str:
        """Which workers may run it: 'cpu' or one CUDA device."""
        return self.device if self.device.startswith("cuda") else "cpu"

    def identity(self) -> dict[str, Any]:
        width = height = None
        if self.resolution != "native":
            width, height = (int(v) for v in self.resolution.split("x"))
        return {"cell_key": self.key, "codec": self.config.name, "adapter": self.config.adapter,
                "config_hash": config_hash(self.config), "rate_label": self.rate.label,
                "rate_params": self.rate.params, "dataset": self.dataset, "image": self.image,
                "image_sha256": self.image_sha256, "resolution": self.resolution,
                "width": width, "height": height, "pixels": width * height if width else None,
                "device": self.device, "round": self.round}


@dataclass(frozen=True)
class Protocol:
    """How :mod:`bench.measure` times a cell: ``warmup`` untimed calls, ``repeats`` timed ones, and
    which cells get clean-process memory calls (``memory``: one of :data:`MEMORY_MODES`)."""

    warmup: int = 1
    repeats: int = 3
    memory: str = "size"  # cells with clean-process memory calls: 'all', 'mid', 'size' (bench.memory), 'off'

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1:
            raise ValueError("warmup must be ≥ 0 and repeats ≥ 1")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}, got {self.memory!r}")


@dataclass(frozen=True)
class Settings:
    """How cells are run. ``timeout_s`` bounds a cell's own work, from the moment its worker
    reports it started (imports done, image loaded, codec constructed); ``startup_timeout_s``
    bounds what comes before that, so a hanging import or model load cannot stall the run."""

    protocol: Protocol = Protocol()
    threads: int = 1
    cross_decode: bool = False
    timeout_s: float = 900.0
    startup_timeout_s: float = 600.0
    metrics: tuple[str, ...] = DEFAULT_METRICS  # registry names (bench.metrics), computed per cell
    #: folder of the per-size measurements (complexity counts, memory readings) the workers share
    #: and a resumed run reuses (:mod:`bench.measurecache`); None: each worker process keeps its own
    cache_dir: str | None = None
    keep_streams: bool = False  # return each cell's bitstream with its row, for the runner to keep (bench.streams)
    #: the cross-decode overrides a decoder that pins the encoder's thread count (MLIC++ float32
    #: streams), so that the other count really runs; its stored text says ``forced``
    cross_decode_forced: bool = False

    def __post_init__(self) -> None:
        if self.cross_decode_forced and not self.cross_decode:
            raise ValueError("cross_decode_forced needs cross_decode")

    def environment(self) -> dict[str, str]:
        """The variables every process of a cell runs with: the thread pins and the time limit
        (a worker applies them with :func:`bench.procenv.pin`; its children inherit them)."""
        return procenv.environment(self.threads, self.timeout_s)

    def to_manifest(self) -> dict:
        """The settings as the run manifest records them (``protocol``, ``threads``, ``metrics``);
        ``cross_decode_forced`` only when set (the manifests of other runs are unchanged)."""
        forced = {"cross_decode_forced": True} if self.cross_decode_forced else {}
        return {"warmup": self.protocol.warmup, "repeats": self.protocol.repeats, "timeout_s": self.timeout_s,
                "cross_decode": self.cross_decode, **forced, "memory": self.protocol.memory,
                "keep_streams": self.keep_streams}
