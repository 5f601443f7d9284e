"""Shared fixtures and helpers.

Most tests need no data: ``synthetic_images`` writes a few deterministic photo-like PNGs to a
temporary folder, and the pipeline tests (run → store → report → gate) run on those. Tests that
are about real data read ``$BENCH_DATA_DIR`` (Kodak, high-resolution sets) or
``$BENCH_SHARED_DIR`` (anchor sources, BD vectors, the MLIC++ spec) through ``data_dir`` and
``shared_dir``, and skip with the reason when they are unset.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]

# A shell without job control starts background commands (`nox -s tests &`, CI runners) with SIGINT
# ignored, and every subprocess inherits that: the CLI's Ctrl-C tests would then send a SIGINT that
# nothing receives. Catching it here gives the children SIGINT's default, as a terminal would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: The synthetic set: file name → (height, width, seed). Sorted by name, the first two are the
#: large ones (MS-SSIM needs 161 px a side; a 256×256 crop fits), the last two the small ones.
SYNTHETIC = {"photo1.png": (256, 384, 1), "photo2.png": (256, 384, 2),
             "photo3.png": (96, 128, 3), "photo4.png": (96, 128, 4)}


def photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """A deterministic photo-like H×W×3 uint8 image: smooth colour gradients, hard-edged shapes,
    band-limited texture and a little grain, so codecs see what they see in photographs (JPEG
    q5…q90 spans about 0.1…1.7 bpp and 26…37 dB on 256×384)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    y, x = yy / max(height, width), xx / max(height, width)
    img = np.empty((height, width, 3))
    for c in range(3):
        fx, fy, phase = rng.uniform(0.3, 2.0), rng.uniform(0.3, 2.0), rng.uniform(0, 2 * np.pi)
        img[..., c] = 120 + 50 * np.sin(2 * np.pi * (fx * x + fy * y) + phase) + rng.uniform(-40, 40) * (x - y)
    for _ in range(8):  # discs and rectangles of (mostly) flat colour: edges
        colour = rng.uniform(20, 235, 3)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.05, 0.25) * min(height, width)
        if rng.random() < 0.5:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        else:
            mask = (abs(yy - cy) < r) & (abs(xx - cx) < 1.6 * r)
        img[mask] = 0.7 * colour + 0.3 * img[mask]
    img += gaussian_filter(rng.standard_normal((height, width)), 1.0)[..., None] * 16  # texture
    img += rng.standard_normal((height, width, 3)) * 1.5  # grain
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def synthetic_images(tmp_path_factory) -> Path:
    """A folder ``synthetic/`` of the :data:`SYNTHETIC` PNGs (a dataset for ``--dataset``); its
    parent holds nothing else, so it can stand for an empty ``$BENCH_DATA_DIR``."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("data") / "synthetic"
    folder.mkdir()
    for name, (h, w, seed) in SYNTHETIC.items():
        Image.fromarray(photo_like(h, w, seed)).save(folder / name)
    return folder


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A 256×384 photo-like image (``photo1.png`` of the synthetic set)."""
    return photo_like(*SYNTHETIC["photo1.png"])


@pytest.fixture(scope="session")
def small_photo() -> np.ndarray:
    """A detailed 96×128 photo-like image: quick to code with every codec."""
    return photo_like(*SYNTHETIC["photo3.png"])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("BENCH_DATA_DIR")
    if not value or not (Path(value) / "kodak").is_dir():
        pytest.skip("BENCH_DATA_DIR with kodak/ is not set (e.g. BENCH_DATA_DIR=../shared/datasets)")
    return Path(value).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``$BENCH_SHARED_DIR`` (anchor sources, published BD vectors, the MLIC++ state-dict spec)."""
    value = os.environ.get("BENCH_SHARED_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("BENCH_SHARED_DIR is not set (the anchor sources, BD vectors and specs live there, "
                    "e.g. BENCH_SHARED_DIR=../shared)")
    return Path(value).resolve()


@pytest.fixture
def codecs_dir() -> Path:
    return PROJECT / "codecs"


def python_module(module: str, *args: str, data_dir: Path | None = None, timeout: float = 600,
                  wait: bool = True, env: Mapping[str, str] | None = None, unset: Iterable[str] = (),
                  cwd: Path = PROJECT, pythonpath: Iterable[Path] = (), read_stderr: bool = False,
                  preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess | subprocess.Popen:
    """``python -m module args`` of this checkout in a real subprocess (the one way tests run the CLI),
    from ``cwd`` (the project root unless given), with ``$BENCH_DATA_DIR`` set to ``data_dir`` when given.

    The child's environment is this one without the variables in ``unset``, then with ``env`` set
    (an ``env`` entry wins over ``unset``), and ``PYTHONPATH`` = this checkout, then ``pythonpath``.
    ``wait=False`` returns the running ``Popen``, its output discarded (stderr a text pipe to read
    with ``read_stderr``), instead of the finished process (output captured as text).
    ``preexec_fn`` runs in the child before it starts (e.g. to set resource limits)."""
    drop = set(unset)
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    environ.update(env or {})
    environ["PYTHONPATH"] = os.pathsep.join(str(p) for p in (PROJECT, *pythonpath))
    if data_dir is not None:
        environ["BENCH_DATA_DIR"] = str(data_dir)
    command = [sys.executable, "-m", module, *args]
    if not wait:
        return subprocess.Popen(command, env=environ, cwd=cwd, preexec_fn=preexec_fn, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE if read_stderr else subprocess.DEVNULL, text=True)
    return subprocess.run(command, capture_output=True, text=True, env=environ, cwd=cwd, timeout=timeout,
                          preexec_fn=preexec_fn)


@pytest.fixture(scope="session")
def run_python() -> Callable[..., subprocess.CompletedProcess | subprocess.Popen]:
    """:func:`python_module`, for tests and fixtures that run the CLI for real."""
    return python_module


@pytest.fixture(autouse=True)
def keeps_the_sigint_handler():
    """Fail the test that leaves this process's SIGINT handler or signal mask changed (and put them
    back): every later CLI subprocess would inherit an ignored or blocked SIGINT, and the Ctrl-C
    tests would hang."""
    before, mask = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    after, mask_after = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if after is not before or mask_after != mask:
        signal.signal(signal.SIGINT, before)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        pytest.fail(f"the test left SIGINT changed: handler {before!r} -> {after!r}, "
                    f"blocked {sorted(mask)} -> {sorted(mask_after)}")
