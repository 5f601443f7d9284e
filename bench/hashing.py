"""SHA-256 of a file, streamed: the one helper every layer uses (images, weights, tools).

Standard library only, so that ``python3 -m bench.tools.vtm`` runs before any dependency is installed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
