"""The one download helper (bench.download) against real HTTP servers on 127.0.0.1: a server that
trickles bytes is cut off, an interrupted download (SIGINT, SIGTERM) leaves no ``*.part``, and a
URL that names no file is refused before anything is created."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.download import download, url_file_name

PROJECT = Path(__file__).resolve().parents[1]


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Declares 10 MB, then sends ``server.piece`` bytes every ``server.every`` seconds, for at most
    ``server.lasts`` seconds (so a client that is never cut off still ends, with a short read)."""

    def do_GET(self) -> None:  # noqa: N802 — the http.server name
        self.send_response(200)
        self.send_header("Content-Length", str(10_000_000))
        self.end_headers()
        end = time.monotonic() + self.server.lasts
        try:
            while time.monotonic() < end:
                self.wfile.write(b"x" * self.server.piece)
                self.wfile.flush()
                time.sleep(self.server.every)
        except OSError:  # the client gave up: what the test wants
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def trickle():
    """``start(piece, every, lasts)`` → the URL of a trickling server on 127.0.0.1."""
    servers = []

    def start(piece: int, every: float, lasts: float) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
        server.daemon_threads = True
        server.piece, server.every, server.lasts = piece, every, lasts
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/weights.pth"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_server_trickling_bytes_is_cut_off_and_leaves_nothing(trickle, tmp_path):
    url = trickle(piece=1, every=0.05, lasts=30)  # ~20 bytes/s: the socket timeout alone never fires
    with pytest.raises(RuntimeError, match=r"cannot download .*stalled: \d+ bytes in \d+ s, under 1024 bytes/s"):
        download(url, tmp_path, timeout=0.5)
    assert list(tmp_path.iterdir()) == []


def test_a_download_past_its_deadline_is_cut_off_and_leaves_nothing(trickle, tmp_path):
    url = trickle(piece=4096, every=0.02, lasts=30)  # fast enough not to stall, too long for the deadline
    with pytest.raises(RuntimeError, match=r"cannot download .*not finished after 1 s"):
        download(url, tmp_path, timeout=5, deadline=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/w/..", "http://127.0.0.1:9/w/.", "http://127.0.0.1:9/w/",
                                 "http://127.0.0.1:9/w/%2e%2e", "http://127.0.0.1:9", "http://127.0.0.1:9/a%2fb"])
def test_a_url_that_names_no_file_is_refused_before_anything_is_created(url, tmp_path):
    with pytest.raises(ValueError, match="names no file"):
        download(url, tmp_path / "folder")
    assert not (tmp_path / "folder").exists()
    assert url_file_name("https://example.org/w/model-1.pth.tar?x=1") == "model-1.pth.tar"


DOWNLOAD = "import sys; from pathlib import Path; from bench.download import download; " \
           "download(sys.argv[1], Path(sys.argv[2]), timeout=30); print('returned', flush=True)"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_download_leaves_no_part_file(sig, trickle, tmp_path):
    url = trickle(piece=4096, every=0.05, lasts=60)  # a live transfer that would run for a minute
    folder = tmp_path / "weights"
    proc = subprocess.Popen([sys.executable, "-c", DOWNLOAD, url, str(folder)], cwd=PROJECT,
                            env={**os.environ, "PYTHONPATH": str(PROJECT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        while not (folder.is_dir() and list(folder.glob("*.part"))):  # the transfer has begun
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "returned" not in out
    assert list(folder.iterdir()) == [], err


def test_a_part_file_not_renamed_by_its_caller_is_removed_at_exit(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "w.bin").write_bytes(b"weights")
    folder = tmp_path / "weights"
    done = subprocess.run([sys.executable, "-c", DOWNLOAD, (tmp_path / "www" / "w.bin").as_uri(), str(folder)],
                          cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "returned" in done.stdout, done.stderr
    assert list(folder.iterdir()) == []  # the caller ended without renaming or removing it
