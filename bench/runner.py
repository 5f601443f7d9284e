"""The runner: plan cells, run them in worker processes, store each as soon as it finishes.

A cell is (codec configuration, rate point, image, resolution, device). Cells run in worker
processes — ``jobs`` of them for CPU codecs, one per GPU for CUDA codecs — so that a crash, a
hang or an out-of-memory kill takes down one cell, not the run: the worker is replaced, the cell is
stored as an error with the reason, and the run goes on. The main process is the only writer of
the results store and commits every cell at once, so killing the run loses only cells in flight,
and re-running the same command skips every cell already stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable

from bench.codecs.base import CodecConfig, CodecError, RatePoint
from bench.measure import Protocol
from bench.store import Store

log = logging.getLogger(__name__)


def now() -> str:
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
    protocol: Protocol = Protocol()
    threads: int = 1
    cross_decode: bool = False
    timeout_s: float = 900.0


# --- inside a worker -----------------------------------------------------------------------------

def set_thread_count(threads: int) -> None:
    """Pin math-library threads before torch/numpy spin up their pools."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _configure_torch(threads: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


class WorkerState:
    """Caches a worker keeps between cells: codec instances and decoded images."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.codecs: dict[tuple[str, str, str], Any] = {}
        self.images: dict[str, Any] = {}

    def codec(self, cell: Cell):
        from bench.codecs import registry

        key = (cell.config.name, config_hash(cell.config), cell.device)
        if key not in self.codecs:
            self.codecs[key] = registry.create(cell.config, device=cell.device)
        return self.codecs[key]

    def pixels(self, cell: Cell):
        from bench.images import centre_crop, load_image

        if cell.image_path not in self.images:
            if len(self.images) > 8:
                self.images.clear()
            self.images[cell.image_path] = load_image(cell.image_path, cell.image)
        loaded = self.images[cell.image_path]
        if loaded.sha256 != cell.image_sha256:
            raise RuntimeError(f"{cell.image_path} changed on disk during the run")
        if cell.resolution == "native":
            return loaded.pixels
        width, height = (int(v) for v in cell.resolution.split("x"))
        return centre_crop(loaded.pixels, width, height)


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
    from bench.images import ImageError

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


def run_cell(cell: Cell, state: WorkerState) -> dict[str, Any]:
    """Measure one cell; never raises — failures become an error row."""
    from bench.measure import measure

    row = cell.identity()
    row.update(started_at=now(), threads=state.settings.threads)
    t0 = time.perf_counter()
    try:
        pixels = state.pixels(cell)
        row.update(width=pixels.shape[1], height=pixels.shape[0], pixels=pixels.shape[0] * pixels.shape[1])
        codec = state.codec(cell)
        row.update(codec_version=codec.library_version(), trained=int(codec.trained))
        measured, data, decoded = measure(codec, pixels, cell.rate, state.settings.protocol)
        row.update(measured)
        if state.settings.cross_decode:
            row["cross_decode"] = cross_decode(cell, data, decoded, state.settings.threads)
        row["status"] = "ok"
    except BaseException as exc:  # noqa: BLE001 — one failing cell never stops the run
        if isinstance(exc, KeyboardInterrupt):
            raise
        row.update(status="error", error=classify_error(exc))
    row.update(finished_at=now(), wall_s=time.perf_counter() - t0)
    return row


def cross_decode(cell: Cell, data: bytes, decoded, threads: int) -> str:
    """Decode ``data`` again in a fresh process with another thread count (and, where a GPU
    exists, on the other device); 'identical' if the pixels match bit for bit."""
    import numpy as np

    from bench.device import cuda_available

    other_threads = 2 if threads == 1 else 1
    other_device = cell.device
    if cuda_available():
        other_device = "cpu" if cell.device.startswith("cuda") else "cuda"
    with tempfile.TemporaryDirectory(prefix="bench-xdec-") as tmp:
        stream, out, cfg = Path(tmp, "stream.bin"), Path(tmp, "decoded.npy"), Path(tmp, "config.json")
        stream.write_bytes(data)
        cfg.write_text(json.dumps({**asdict(cell.config), "rates": [asdict(r) for r in cell.config.rates]}))
        env = {**os.environ, "OMP_NUM_THREADS": str(other_threads), "MKL_NUM_THREADS": str(other_threads)}
        cmd = [sys.executable, "-m", "bench.crossdecode", str(cfg), str(stream), str(out),
               "--device", other_device, "--threads", str(other_threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        where = f"{other_threads} threads on {other_device}"
        if proc.returncode != 0:
            return f"error ({where}): {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        again = np.load(out)
        return f"identical ({where})" if np.array_equal(again, decoded) else f"differs ({where})"


def _worker_main(conn: Connection, settings: Settings) -> None:
    set_thread_count(settings.threads)
    _configure_torch(settings.threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    state = WorkerState(settings)
    while True:
        try:
            cell = conn.recv()
        except EOFError:
            return
        if cell is None:
            return
        conn.send(run_cell(cell, state))


# --- in the main process -------------------------------------------------------------------------

@dataclass
class _Worker:
    lane: str
    process: Any
    conn: Connection
    cell: Cell | None = None
    started: float = 0.0


@dataclass
class RunResult:
    run_id: int
    done: int = 0
    errors: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


class Runner:
    """Runs cells over worker processes and stores each result as it arrives."""

    def __init__(self, store: Store, settings: Settings, jobs: int = 1):
        self.store = store
        self.settings = settings
        self.jobs = max(1, jobs)
        self.ctx = mp.get_context("spawn")  # CUDA-safe, and no state inherited from the parent

    def _spawn(self, lane: str) -> _Worker:
        parent, child = self.ctx.Pipe()
        process = self.ctx.Process(target=_worker_main, args=(child, self.settings), daemon=True)
        process.start()
        child.close()
        return _Worker(lane, process, parent)

    def pending(self, cells: list[Cell], retry_errors: bool = False) -> tuple[list[Cell], int]:
        """Cells not yet stored (in order, each once) and how many were already stored."""
        finished = self.store.finished_keys(include_errors=not retry_errors)
        todo = list({c.key: c for c in cells if c.key not in finished}.values())
        if retry_errors:
            self.store.delete_errors(c.key for c in todo)
        return todo, len(cells) - len(todo)

    def run(self, cells: list[Cell], run_id: int, retry_errors: bool = False,
            on_result: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
        todo, skipped = self.pending(cells, retry_errors)
        result = RunResult(run_id, skipped=skipped)
        t0 = time.perf_counter()
        queues: dict[str, deque[Cell]] = {}
        for cell in todo:
            queues.setdefault(cell.lane, deque()).append(cell)
        workers: list[_Worker] = []
        for lane, queue in queues.items():
            count = min(len(queue), self.jobs if lane == "cpu" else 1)
            workers += [self._spawn(lane) for _ in range(count)]
        try:
            while any(queues.values()) or any(w.cell for w in workers):
                for w in workers:
                    if w.cell is None and queues.get(w.lane):
                        w.cell, w.started = queues[w.lane].popleft(), time.monotonic()
                        w.conn.send(w.cell)
                busy = [w for w in workers if w.cell]
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
                for i, w in enumerate(workers):
                    if w.cell is None:
                        continue
                    row = self._collect(w)
                    if row is None:
                        continue
                    row["run_id"] = run_id
                    self.store.add_measurement(row)
                    result.done += 1
                    result.errors += row["status"] != "ok"
                    result.rows.append(row)
                    if on_result:
                        on_result(row)
                    if not w.process.is_alive():
                        workers[i] = self._spawn(w.lane)
                    else:
                        w.cell = None
        finally:
            for w in workers:
                if w.process.is_alive():
                    try:
                        w.conn.send(None)
                    except OSError:
                        pass
            for w in workers:
                w.process.join(timeout=5)
                if w.process.is_alive():
                    w.process.kill()
        result.wall_s = time.perf_counter() - t0
        return result

    def _collect(self, w: _Worker) -> dict[str, Any] | None:
        """The finished row of worker ``w``'s cell, an error row if it died or timed out, or None."""
        cell = w.cell
        assert cell is not None
        if w.conn.poll():
            try:
                return w.conn.recv()
            except (EOFError, OSError):
                pass
        reason = None
        if not w.process.is_alive():
            code = w.process.exitcode
            if code is not None and code < 0:
                sig = signal.Signals(-code).name
                hint = " — the kernel's out-of-memory killer sends this" if sig == "SIGKILL" else ""
                reason = f"worker process died with {sig}{hint}"
            else:
                reason = f"worker process exited with code {code}"
        elif time.monotonic() - w.started > self.settings.timeout_s:
            w.process.kill()
            w.process.join(timeout=5)
            reason = f"timeout: cell took longer than {self.settings.timeout_s:.0f} s"
        if reason is None:
            return None
        row = cell.identity()
        row.update(status="error", error=reason, threads=self.settings.threads, finished_at=now(),
                   wall_s=time.monotonic() - w.started)
        return row
