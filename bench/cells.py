"""What the runner and its workers share: the cell (one unit of work) and the run settings.

Both sides import this module; the main process's loop lives in :mod:`bench.runner`, the code
that runs inside a worker process in :mod:`bench.worker`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bench.codecs.base import CodecConfig, RatePoint
from bench.measure import Protocol


def now() -> str:
    """The current UTC time as ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def config_hash(config: CodecConfig) -> str:
    """Hash of everything that determines a configuration's output (not its name or prose)."""
    payload = json.dumps({"adapter": config.adapter, "params": config.params,
                          "rates": [(r.label, r.params) for r in config.rates]}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    """One unit of work; everything a worker needs, picklable."""

    config: CodecConfig
    rate: RatePoint
    dataset: str
    image: str
    image_path: str
    image_sha256: str
    resolution: str  # 'native' or 'WxH' centre crop
    device: str
    #: the image file's bytes, carried to a worker that may not see ``image_path`` (the dask
    #: executor fills it on the worker); not part of the key, the hash or the comparison
    image_bytes: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        ident = json.dumps([config_hash(self.config), self.rate.label, self.rate.params, self.image_sha256,
                            self.resolution, self.device], sort_keys=True, default=str)
        digest = hashlib.sha256(ident.encode()).hexdigest()[:12]
        return f"{self.config.name}|{self.rate.label}|{self.dataset}/{self.image}|{self.resolution}|{self.device}|{digest}"

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
                "device": self.device}


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
