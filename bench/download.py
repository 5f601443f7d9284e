"""Download a URL into a temporary file beside its destination: the one download helper.

The caller verifies the temporary file (a checksum, a decode) and renames it into place, so an
interrupted or wrong download never leaves a half-written file under the real name. Standard
library only.

Nothing is left behind either: a failed, timed-out or interrupted transfer (Ctrl-C, or SIGTERM,
which is turned into an exception while the transfer runs in the main thread) removes its
``*.part`` file, and a ``*.part`` the caller has not yet renamed or removed is removed when the
process exits. A server that keeps the connection alive with a trickle of bytes is cut off: the
socket ``timeout`` only bounds the wait for *one* read, so a transfer must also keep an average
of :data:`MIN_BYTES_PER_S` once ``timeout`` seconds have passed, and finish within ``deadline``.
"""

from __future__ import annotations

import atexit
import http.client
import signal
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: After ``timeout`` seconds, a transfer averaging less than this is given up (a stalled server).
MIN_BYTES_PER_S = 1024
#: Longest a whole download may take, in seconds, unless the caller gives another deadline.
DEFAULT_DEADLINE_S = 3600.0
_CHUNK = 1 << 16

_PENDING: set[Path] = set()  # *.part files handed to callers and not yet renamed or removed


@atexit.register
def _remove_pending() -> None:
    for path in list(_PENDING):
        path.unlink(missing_ok=True)


def url_file_name(url: str) -> str:
    """The file name a URL names (the last component of its path); ``ValueError`` when it names no
    file: an empty name (a URL ending in ``/``), ``.`` or ``..`` (also percent-encoded)."""
    name = urllib.parse.urlparse(url).path.rsplit("/", 1)[-1]
    plain = urllib.parse.unquote(name)
    if plain in ("", ".", "..") or "/" in plain or "\\" in plain:
        raise ValueError(f"{url}: the URL names no file (its last path component is {name!r})")
    return name


class _Terminated(BaseException):
    """SIGTERM arrived during a transfer (a BaseException, like KeyboardInterrupt: never a failed download)."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM raises :class:`_Terminated` instead of ending
    the process at once, so that the ``*.part`` can be removed first; the previous handler is restored
    afterwards. Where SIGTERM is ignored, or off the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return

    def handler(signum, frame):  # noqa: ANN001 — the signal handler signature
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def download(url: str, folder: Path, timeout: float = 60.0, deadline: float = DEFAULT_DEADLINE_S) -> Path:
    """Fetch ``url`` into a new ``*.part`` file in ``folder`` (created if needed); returns its path.

    Raises ``RuntimeError`` naming the URL if the transfer fails, stalls (see the module docstring)
    or takes longer than ``deadline`` seconds, and ``ValueError`` for a URL that names no file;
    nothing is left behind in any case, nor when the transfer is interrupted (Ctrl-C, SIGTERM).
    """
    url_file_name(url)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False)
    part = Path(tmp.name)
    _PENDING.add(part)
    try:
        with tmp, _sigterm_raises():
            _transfer(url, tmp, timeout, deadline)
    except BaseException as exc:
        part.unlink(missing_ok=True)
        _PENDING.discard(part)
        if isinstance(exc, _Terminated):  # the part is gone: now do what SIGTERM would have done
            signal.raise_signal(signal.SIGTERM)
            raise RuntimeError(f"download of {url} interrupted by SIGTERM") from None  # a handler that returned
        if isinstance(exc, (OSError, ValueError, http.client.HTTPException)):  # ValueError: not a URL urllib opens
            raise RuntimeError(f"cannot download {url}: {exc}") from exc
        raise
    return part


def _transfer(url: str, out, timeout: float, deadline: float) -> None:  # noqa: ANN001 — a binary file
    start = time.monotonic()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        while True:
            chunk = response.read1(_CHUNK)  # what has arrived (at most one socket timeout of waiting)
            if not chunk:
                return
            out.write(chunk)
            received += len(chunk)
            elapsed = time.monotonic() - start
            if elapsed > deadline:
                raise TimeoutError(f"not finished after {deadline:.0f} s ({received:,} bytes received)")
            if elapsed > timeout and received < MIN_BYTES_PER_S * elapsed:
                raise TimeoutError(f"stalled: {received:,} bytes in {elapsed:.0f} s, under "
                                   f"{MIN_BYTES_PER_S} bytes/s")
