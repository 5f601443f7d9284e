"""The code that runs inside a worker process: measure cells sent by the runner, one at a time.

Protocol on the pipe from :mod:`bench.executors.local`: the executor sends a :class:`~bench.cells.Cell` (or
``None`` to stop); the worker answers ``("started", cell_key)`` once the cell's image is loaded
and its codec constructed — the runner's timeout clock starts there, so worker start-up (Python,
torch, model weights, and the first use of every selected metric: :func:`prepare_worker`) never
counts against a cell — and then ``("row", row)`` with the finished
row. A worker dies with the process that started it (:func:`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from bench import procenv
from bench.cells import STREAM_ROW_KEY, Cell, Settings, config_hash, now
from bench.errors import CodecError, ImageError

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def prepare_worker(settings: Settings) -> None:
    """Pin the thread counts and the time limit of ``settings`` (:meth:`Settings.environment`),
    import torch (if installed) and warm the selected metrics once, before a worker's first cell,
    so that no cell pays for first use inside its time limit (both executors' workers call it
    before they say "started")."""
    procenv.pin(settings.threads, settings.timeout_s)  # the variables first: math libraries read them at load
    try:
        import torch  # noqa: F401 — imported here, so that procenv.pin sets its count
    except ImportError:
        pass
    else:
        procenv.pin(settings.threads, settings.timeout_s)
    warm_metrics(settings.metrics)


def warm_metrics(names: tuple[str, ...]) -> None:
    """Run each metric of ``names`` once on a small synthetic pair, large enough for every one of them.

    The first computation of a metric imports its library, builds its network or filters and runs
    torch's first convolutions; that took seconds, and it used to happen inside the first cell of each
    worker, after the runner's timeout clock had started (two cells of a 3 s limit timed out that
    way). The result is discarded; a metric that cannot run here is only probed (and its reason cached)."""
    if not names:
        return
    import numpy as np

    from bench.metrics import BY_NAME, compute

    side = max(max(BY_NAME[n].min_side for n in names), 16)
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    distorted = np.clip(original.astype(np.int16) + rng.integers(-8, 9, original.shape), 0, 255).astype(np.uint8)
    compute(original, distorted, names)


def die_with_parent(parent_pid: int) -> None:
    """End this process as soon as ``parent_pid`` (the runner) dies, even by SIGKILL.

    Linux: the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``; it fires when
    the *thread* that started this process exits, so the runner spawns workers from its main
    loop). Elsewhere a daemon thread polls the parent id once a second. If the parent died before
    either was armed, this process is already re-parented and exits at once.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


#: Codec instances a worker keeps at once; the least recently used is closed beyond this
#: (a learned codec holds its model, possibly on a GPU, until closed).
CODEC_CACHE_SIZE = 4


def _close_codec(codec: Any) -> None:
    close = getattr(codec, "close", None)
    if callable(close):
        close()


class WorkerState:
    """Caches a worker keeps between cells: codec instances (a bounded LRU, closed on eviction),
    decoded images, and the per-size measurements (complexity counts, memory readings:
    :mod:`bench.measurecache`, in ``settings.cache_dir`` when set). Both executors keep one per
    worker process."""

    def __init__(self, settings: Settings, max_codecs: int = CODEC_CACHE_SIZE):
        from bench.measurecache import MeasureCache

        self.settings = settings
        self.max_codecs = max(1, max_codecs)
        self.codecs: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self.images: dict[str, Any] = {}
        self.measured = MeasureCache(settings.cache_dir)

    def codec(self, cell: Cell):
        from bench.codecs import registry

        key = (cell.config.name, config_hash(cell.config), cell.device)
        if key in self.codecs:
            self.codecs.move_to_end(key)
            return self.codecs[key]
        while len(self.codecs) >= self.max_codecs:
            _, evicted = self.codecs.popitem(last=False)
            _close_codec(evicted)
        self.codecs[key] = registry.create(cell.config, device=cell.device)
        return self.codecs[key]

    def close(self) -> None:
        """Close every cached codec."""
        while self.codecs:
            _close_codec(self.codecs.popitem(last=False)[1])

    def pixels(self, cell: Cell):
        """The cell's pixels, from the bytes it carries or from ``image_path``; either way the file's
        sha256 must be the one the plan recorded (:class:`ImageError` naming both otherwise)."""
        from bench.images import centre_crop, load_image

        path = cell.image_path if cell.image_bytes is None else _local_copy(cell)
        if path not in self.images:
            if len(self.images) > 8:
                self.images.clear()
            self.images[path] = load_image(path, cell.image)
        loaded = self.images[path]
        if loaded.sha256 != cell.image_sha256:
            raise ImageError(f"image {cell.image_path} on worker {platform.node()} has sha256 {loaded.sha256}, "
                             f"the plan expects {cell.image_sha256}: give the worker the same file, or carry "
                             "the images to the workers (dask executor: --ship-images)")
        if cell.resolution == "native":
            return loaded.pixels
        width, height = (int(v) for v in cell.resolution.split("x"))
        return centre_crop(loaded.pixels, width, height)


#: prefix of the folders of :func:`_local_copy`: ``bench-images-<uid>-<pid>`` in the temporary folder
IMAGE_COPIES = "bench-images-"


def _copies_folder(pid: int | None = None) -> Path:
    """The folder of this process's (or ``pid``'s) image copies, one per worker process."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"{IMAGE_COPIES}{uid}-{os.getpid() if pid is None else pid}"


def _local_copy(cell: Cell) -> str:
    """A file holding the bytes ``cell`` carries, in this worker process's folder of the temporary
    folder, named by their sha256 (written once, atomically), so images are read one way; the
    folder goes when the run ends (:func:`drop_image_copies`)."""
    assert cell.image_bytes is not None
    digest = hashlib.sha256(cell.image_bytes).hexdigest()
    folder = _copies_folder()
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{digest}{Path(cell.image_path).suffix.lower()[:8]}"
    if not path.is_file():
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cell.image_bytes)
        os.replace(tmp, path)
    return str(path)


def drop_image_copies() -> int:
    """Remove this process's image copies, and those of this user's worker processes that are gone
    (a worker killed by its watchdog cannot remove its own); the number of folders removed."""
    import shutil

    mine = _copies_folder()
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{mine.name.rsplit('-', 1)[0]}-*"):
        pid = folder.name.rsplit("-", 1)[1]
        if folder == mine or (os.name == "posix" and pid.isdigit() and not _alive(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: allocation failures that are not a MemoryError: CUDA / torch, torch's CPU allocator, ENOMEM
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


def _out_of_memory(exc: BaseException) -> BaseException | None:
    """The allocation failure in ``exc`` or behind it (``__cause__``/``__context__``), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if isinstance(current, MemoryError) or "OutOfMemoryError" in type(current).__name__ \
                or any(t in text for t in _OOM_TEXT):
            return current
        current = current.__cause__ if current.__cause__ is not None else current.__context__
    return None


def classify_error(exc: BaseException) -> str:
    """The stored error text; its prefix is the class. Out of memory wins whatever wraps it
    (an adapter's CodecError around a failed allocation is still out of memory)."""
    name = type(exc).__name__
    oom = _out_of_memory(exc)
    if oom is not None:
        text = f"out of memory: {name}: {exc}"
        if oom is not exc and (not str(oom) or str(oom) not in str(exc)):  # name the cause once
            text += f" (from {type(oom).__name__}{': ' if str(oom) else ''}{oom})"
        return text
    if isinstance(exc, CodecError):
        return f"codec error: {exc}"
    if isinstance(exc, ImageError):
        return f"bad image: {exc}"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{name}: {exc}{where}"


def run_cell(cell: Cell, state: WorkerState, started: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Measure one cell; never raises — failures become an error row.

    ``started`` is called once the image is loaded and the codec constructed, just before the
    measured work (the runner starts the cell's timeout there).
    """
    from bench.machine import machine_info
    from bench.measure import measure

    row = cell.identity()
    row.update(started_at=now(), threads=state.settings.threads)
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        row.update(machine_info(cell.device))
        pixels = state.pixels(cell)
        row.update(width=pixels.shape[1], height=pixels.shape[0], pixels=pixels.shape[0] * pixels.shape[1])
        codec = state.codec(cell)
        row.update(codec_version=codec.library_version(), trained=int(codec.trained))
        started()
        measured, data, decoded = measure(codec, pixels, cell.rate, state.settings.protocol, state.settings.metrics,
                                          state.measured)
        row.update(measured, weights_sha256=codec.weights_sha256(cell.rate))
        from bench.complexity import cell_columns  # learned codecs: kMAC/pixel, counted once per size

        row.update(cell_columns(codec, cell.rate, pixels.shape[0], pixels.shape[1], state.measured))
        row.update(thread_columns(codec, state.settings.threads))
        if state.settings.cross_decode:
            row["cross_decode"] = cross_decode(cell, data, decoded, state.settings)
        if state.settings.keep_streams:  # the bytes travel with the row; the runner writes the file
            row[STREAM_ROW_KEY] = bytes(data)
        row["status"] = "ok"
    except BaseException as exc:  # noqa: BLE001 — one failing cell never stops the run
        if isinstance(exc, KeyboardInterrupt):
            raise
        row.update(status="error", error=classify_error(exc))
    row.update(finished_at=now(), wall_s=time.perf_counter() - t0, cell_cpu_s=time.process_time() - cpu0)
    return row


def thread_columns(codec: Any, threads: int) -> dict[str, Any]:
    """The row's record of the thread counts its timed calls ran with: the run's pin ``threads``
    unless the codec pins its own (:meth:`~bench.codecs.base.Codec.threads_used`, which says so)."""
    used = codec.threads_used(threads)
    return {"enc_threads": used.encode, "dec_threads": used.decode, "threads_pinned_by": used.pinned_by}


def cross_decode(cell: Cell, data: bytes, decoded, settings: Settings) -> str:
    """Decode ``data`` again in a fresh process with another thread count (and, where a GPU
    exists, on the other device), bounded by the run's time limit; 'identical' if the pixels
    match bit for bit. The thread count
    is the one the fresh process reports it decoded with; a decoder that pinned another count
    (MLIC++ float32 streams pin the encoder's) is reported as 'not cross-decoded', unless the run
    forces the count (``Settings.cross_decode_forced``: the text then says ``forced``)."""
    import numpy as np

    from bench.crossdecode import decode_fresh, write_config
    from bench.device import cuda_available

    other_threads = 2 if settings.threads == 1 else 1
    other_device = cell.device
    if cuda_available():
        other_device = "cpu" if cell.device.startswith("cuda") else "cuda"
    where = f"{other_threads} threads on {other_device}" + (", forced" if settings.cross_decode_forced else "")
    with tempfile.TemporaryDirectory(prefix="bench-xdec-") as tmp:
        stream = Path(tmp, "stream.bin")
        stream.write_bytes(data)
        try:
            (again,), ran = decode_fresh(write_config(cell.config, Path(tmp, "config.json")), [stream],
                                         other_threads, other_device, timeout=settings.timeout_s,
                                         force=settings.cross_decode_forced)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return f"error ({where}): {exc}"
    if ran != [other_threads]:
        return f"not cross-decoded: asked for {where}, the decoder ran with {ran} threads"
    if again.shape != decoded.shape:
        return f"differs ({where}): shape {again.shape} vs {decoded.shape}"
    n = int(np.count_nonzero(again != decoded))
    return f"identical ({where})" if n == 0 else f"differs ({where}): {n} values"


def worker_main(conn: Connection, settings: Settings, parent_pid: int) -> None:
    """Entry point of a worker process: run cells from ``conn`` until ``None`` or end of pipe."""
    die_with_parent(parent_pid)
    prepare_worker(settings)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    state = WorkerState(settings)
    while True:
        try:
            cell = conn.recv()
        except EOFError:
            return
        if cell is None:
            return
        row = run_cell(cell, state, started=lambda: conn.send(("started", cell.key)))
        conn.send(("row", row))
