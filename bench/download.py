"""Download a URL into a temporary file beside its destination: the one download helper.

The caller verifies the temporary file (a checksum, a decode) and renames it into place, so an
interrupted or wrong download never leaves a half-written file under the real name. Standard
library only.
"""

from __future__ import annotations

import tempfile
import urllib.request
from pathlib import Path


def download(url: str, folder: Path, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into a new ``*.part`` file in ``folder`` (created if needed); returns its path.

    Raises ``RuntimeError`` naming the URL if the transfer fails (nothing is left behind).
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    tmp.write(chunk)
        except (OSError, ValueError) as exc:  # ValueError: not a URL urllib can open
            tmp.close()
            Path(tmp.name).unlink(missing_ok=True)
            raise RuntimeError(f"cannot download {url}: {exc}") from exc
    return Path(tmp.name)
