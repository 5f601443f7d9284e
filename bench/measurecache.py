"""Measurements that depend on (configuration, rate point, image size), not on the image: taken once, reused.

Why: a learned cell's complexity count (a FLOP-counted forward of the model) and its clean-process
memory reading (a fresh process encoding and decoding once more) each cost about as much as the
timed calls; counted per image they made most of a cell's wall time. The count depends only on
the model and the input size; the memory reading (``--memory size``) is taken on the first image of
each size. So both are kept by a key — the kind of measurement, the configuration's hash, the
rate point, the device, the size, the weights file's sha256 and the code's fingerprint
(:func:`code_fingerprint`), plus whatever the caller adds (e.g. the thread count) — in this
process and, when the run has a cache folder (``bench run``: ``RESULTS/cache``), as one small JSON
file per entry, so the other workers and a resumed run reuse it. A change of code, weights,
configuration or torch version changes the key, so nothing stale is ever reused.

Files are JSON only (nothing in them is executed), written atomically; an unreadable or
mismatching file is a miss, and a folder that cannot be written (a remote Dask worker) leaves the
in-process cache working alone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

#: entries kept in memory per process (oldest dropped beyond it)
MAX_ENTRIES = 512


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the package's own source files (path and bytes) and the torch version: any edit
    of the code that measures or the models it measures gives a new key."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    torch = sys.modules.get("torch")
    digest.update(f"torch {getattr(torch, '__version__', None)}".encode())
    return digest.hexdigest()[:16]


def cell_key(kind: str, codec: Any, rate: Any, height: int, width: int, **extra: Any) -> dict[str, Any]:
    """The key of ``kind`` ('complexity', 'memory') for ``codec`` at ``rate`` on a ``height``×``width`` image."""
    from bench.cells import config_hash

    return {"kind": kind, "config": config_hash(codec.config), "rate": [rate.label, rate.params],
            "device": codec.device, "size": [height, width], "weights": codec.weights_sha256(rate),
            "code": code_fingerprint(), **extra}


class MeasureCache:
    """Entries by key, in this process and (``folder`` not None) in ``folder/<kind>/<sha256>.json``."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder else None
        self.entries: dict[str, Any] = {}

    @staticmethod
    def _digest(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()

    def _path(self, key: dict[str, Any], digest: str) -> Path | None:
        return None if self.folder is None else self.folder / str(key["kind"]) / f"{digest}.json"

    def get(self, key: dict[str, Any]) -> Any:
        """The value stored under ``key``, or None."""
        digest = self._digest(key)
        if digest in self.entries:
            return self.entries[digest]
        path = self._path(key, digest)
        if path is None or not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("key") != json.loads(json.dumps(key, default=str)):
            return None
        self._remember(digest, doc.get("value"))
        return doc.get("value")

    def put(self, key: dict[str, Any], value: Any, persist: bool = True) -> None:
        """Keep ``value`` (JSON-serialisable) under ``key``, in this process only unless ``persist``;
        a file that cannot be written is skipped."""
        digest = self._digest(key)
        self._remember(digest, value)
        path = self._path(key, digest)
        if path is None or not persist:
            return
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as fh:
                json.dump({"key": key, "value": value}, fh, default=str)
            os.replace(tmp, path)
        except OSError:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)

    def _remember(self, digest: str, value: Any) -> None:
        self.entries[digest] = value
        while len(self.entries) > MAX_ENTRIES:
            self.entries.pop(next(iter(self.entries)))
