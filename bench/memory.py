"""Memory of a cell's encode and decode, each measured once more in a process that did nothing else.

Why: the worker that times a cell has imported torch, coded other images and holds memory its
allocator freed, so its peak RSS is mostly the worker (1 GiB for JPEG) and its growth mostly zero
(freed pages are reused). So each cell's encode and decode run once more, for memory only, each
in a fork of a **zygote**: a fresh Python process, one per codec configuration and device (kept
by the worker across cells, at most :data:`MAX_ZYGOTES`), that imported the codec's libraries,
constructed the codec and loaded the model of the cell's rate point — and touched no image of
the cell: it warmed only the codec's image library (:func:`_warm_image_library`), on a 16×16 image.
The timed calls stay in the worker, after its warm-up; these calls are extra.

Before each fork the zygote returns the heap pages its construction freed (glibc
``malloc_trim``), so the child's allocations cannot reuse resident free memory unseen.

**Fork safety.** A fork after a torch/OpenMP parallel region hangs the child (measured: every
child hung when the parent had run a 2-thread convolution; none when it had not). The zygote
therefore does all its work (imports, construction, model loading) with one thread and never
encodes or decodes; each child sets the worker's thread count before its call. CUDA cannot be
forked once initialised, so on CUDA the zygote only imports and each child constructs the codec
(``mem_method = 'fork+construct'``).

**What a child reads** (Linux ``/proc/self/status``): the input (pixels or bitstream) is read
from a file straight into its buffer, ``gc.collect()``, the peak is reset (``clear_refs`` ← 5),
then the call; ``peak`` is ``VmHWM`` after it — the child's whole peak resident set (interpreter,
libraries, model, input and the call's own memory); ``growth`` is that peak minus ``VmRSS`` right
before the call, minus the shared-library file pages the call mapped (``RssFile`` after − before:
a forked child maps library code lazily, and code first run inside the call is not memory the
codec allocated). On CUDA the allocator's peak and NVML's figure stay those of the timed calls in
the worker (:mod:`bench.measure`): the allocator counts live tensors only, so reuse hides nothing.
Subprocess codecs (VTM) already run in a fresh process: their figures are the child's
``ru_maxrss`` from the timed calls (``mem_method = 'subprocess'``).
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import device as dev
from bench.cells import MEMORY_MODES  # the ``Protocol.memory`` values, defined with the settings
from bench import procenv
from bench.codecs.base import Codec, CodecConfig, Encoded, RatePoint
from bench.measurecache import MeasureCache, cell_key

#: ``mem_method`` suffix of a cell that stores the reading of an earlier cell of its size (``size``)
REUSED = " (reused: measured once per configuration, rate point and image size; --memory size)"
#: Zygotes a worker keeps alive (least recently used closed first); each holds its codec's model.
MAX_ZYGOTES = 2
#: Columns this module fills (see README "What is measured, exactly").
COLUMNS = ("enc_mem_peak_bytes", "enc_mem_growth_bytes", "dec_mem_peak_bytes", "dec_mem_growth_bytes",
           "model_bytes", "mem_method")


# --- model bytes ---------------------------------------------------------------------------------

def model_bytes(codec: Codec, rate: RatePoint) -> int | None:
    """Bytes of the model's own parameters and buffers at ``rate`` (each tensor once), of the
    model the codec names (:meth:`~bench.codecs.base.Codec.memory_model`); None without one."""
    model = codec.memory_model(rate)
    if model is None or not hasattr(model, "parameters"):
        return None
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


# --- the worker's side ---------------------------------------------------------------------------

def _config_json(config: CodecConfig) -> dict[str, Any]:
    return {**asdict(config), "rates": [asdict(r) for r in config.rates]}


class Zygote:
    """A clean process for one codec configuration and device; forks one child per measured call."""

    def __init__(self, config: CodecConfig, device: str):
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-mem-")
        self.log = Path(self.tmp.name, "zygote.log")
        # the zygote works on one thread (fork safety); each child runs at the worker's pin (the run's Settings)
        env = procenv.child_env(1, BENCH_MEMORY_THREADS=str(procenv.pinned()))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.memory", str(os.getpid())], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        try:
            self._ask({"config": _config_json(config), "device": device})
        except BaseException:
            self.close()
            raise

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(message, default=str) + "\n").encode())
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = b""
        if not line:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] if self.log.exists() else []
            code = self.proc.poll()
            raise RuntimeError(f"memory zygote ended (exit {code}){': ' + tail[0] if tail else ''}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def measure(self, op: str, rate: RatePoint, payload: np.ndarray | bytes) -> dict[str, Any]:
        """Run ``op`` ('encode' or 'decode') once in a fresh fork; its memory readings."""
        path = Path(self.tmp.name, "input.bin")
        path.write_bytes(payload.tobytes() if isinstance(payload, np.ndarray) else payload)
        shape = list(payload.shape) if isinstance(payload, np.ndarray) else None
        return self._ask({"op": op, "rate": asdict(rate), "input": str(path), "shape": shape})

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        self.tmp.cleanup()


_ZYGOTES: OrderedDict[tuple[str, str], Zygote] = OrderedDict()


def zygote_for(codec: Codec) -> Zygote:
    """The worker's zygote for ``codec``'s configuration and device (created on first use)."""
    key = (json.dumps(_config_json(codec.config), sort_keys=True, default=str), codec.device)
    if key in _ZYGOTES and _ZYGOTES[key].proc.poll() is None:
        _ZYGOTES.move_to_end(key)
        return _ZYGOTES[key]
    if key in _ZYGOTES:
        _ZYGOTES.pop(key).close()
    while len(_ZYGOTES) >= MAX_ZYGOTES:
        _ZYGOTES.popitem(last=False)[1].close()
    _ZYGOTES[key] = Zygote(codec.config, codec.device)
    return _ZYGOTES[key]


@atexit.register
def close_zygotes() -> None:
    """End every zygote of this process (also at exit)."""
    while _ZYGOTES:
        _ZYGOTES.popitem()[1].close()


_READINGS = MeasureCache()  # this process's once-per-size readings when the caller passes no cache


def clean_memory(codec: Codec, image: np.ndarray, rate: RatePoint, data: bytes, mode: str = "size",
                 child_peaks: tuple[int | None, int | None] = (None, None),
                 cache: MeasureCache | None = None) -> dict[str, Any]:
    """The memory columns of one cell (:data:`COLUMNS`).

    ``mode`` (:data:`MEMORY_MODES`) says which cells are measured: encode ``image`` and decode
    ``data`` once each in a fresh fork of the codec's zygote. Subprocess codecs use ``child_peaks``
    (their child's peak over the timed encode / decode calls; free, so every cell unless 'off').
    ``size``: a reading is kept in ``cache`` (:mod:`bench.measurecache`, keyed by configuration,
    rate point, size, device, thread count, weights and code) and stored again, marked
    :data:`REUSED`, by the other cells of that size. A failure is recorded in ``mem_method``
    (``failed: …``; never kept), never raised: the cell's other numbers stand.
    """
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row["model_bytes"] = model_bytes(codec, rate)
    if mode == "off":
        row["mem_method"] = "off"
        return row
    if codec.subprocess:
        row.update(enc_mem_peak_bytes=child_peaks[0], enc_mem_growth_bytes=child_peaks[0],
                   dec_mem_peak_bytes=child_peaks[1], dec_mem_growth_bytes=child_peaks[1], mem_method="subprocess")
        return row
    middle = codec.config.middle_rate
    if mode in ("mid", "size") and (middle is None or middle.label != rate.label):
        row["mem_method"] = f"skipped: not the middle rate point (--memory {mode})"
        return row
    if not sys.platform.startswith("linux"):
        row["mem_method"] = "failed: needs Linux (/proc/self/status, fork)"
        return row
    key = None
    if mode == "size":
        cache = _READINGS if cache is None else cache
        key = cell_key("memory", codec, rate, image.shape[0], image.shape[1], threads=procenv.pinned())
        reading = cache.get(key)
        if reading is not None:
            row.update(reading, mem_method=reading["mem_method"] + REUSED)
            return row
    try:
        zygote = zygote_for(codec)
        for side, op, payload in (("enc", "encode", image), ("dec", "decode", data)):
            got = zygote.measure(op, rate, payload)
            row[f"{side}_mem_peak_bytes"], row[f"{side}_mem_growth_bytes"] = got["peak"], got["growth"]
            row["mem_method"] = got["method"]
    except (RuntimeError, OSError, ValueError) as exc:
        row.update({c: None for c in COLUMNS[:4]}, mem_method=f"failed: {exc}")
        return row
    if key is not None and cache is not None:
        cache.put(key, {c: row[c] for c in (*COLUMNS[:4], "mem_method")})
    return row


# --- the zygote's side ---------------------------------------------------------------------------

def _status() -> dict[str, int]:
    """Memory fields of /proc/self/status, in bytes."""
    text = Path("/proc/self/status").read_text()
    return {k: int(v) * 1024 for k, v in re.findall(r"^(VmHWM|VmRSS|RssFile):\s+(\d+) kB", text, re.M)}


def _die_with(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies (Linux ``PR_SET_PDEATHSIG``), so a killed worker
    leaves no zygote or child behind; exit at once if it is already gone."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _child(codec: Codec | None, config: CodecConfig, device: str, message: dict[str, Any]) -> dict[str, Any]:
    """In the forked child: (construct,) read the input, run the call once, read the memory."""
    from bench.codecs import registry

    procenv.pin(int(os.environ.get("BENCH_MEMORY_THREADS", "1")))
    method = "fork"
    if codec is None:  # CUDA: construct after the fork
        codec, method = registry.create(config, device=device), "fork+construct"
    rate = RatePoint(message["rate"]["label"], message["rate"]["params"])
    codec.memory_model(rate)
    with open(message["input"], "rb") as fh:
        if message["shape"]:
            payload: Any = np.empty(message["shape"], dtype=np.uint8)
            fh.readinto(memoryview(payload).cast("B"))
        else:
            payload = fh.read()
    gc.collect()
    if not dev.reset_host_peak():
        raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs not writable)")
    before = _status()
    result = codec.encode(payload, rate) if message["op"] == "encode" else codec.decode(payload)
    codec.synchronize()
    after = _status()
    if message["op"] == "encode" and not Encoded.of(result).data:
        raise RuntimeError("encoder produced an empty bitstream")
    growth = after["VmHWM"] - before["VmRSS"] - max(0, after["RssFile"] - before["RssFile"])
    return {"peak": after["VmHWM"], "growth": growth, "method": method}


def _fork(codec: Codec | None, config: CodecConfig, device: str, message: dict[str, Any]) -> dict[str, Any]:
    gc.collect()
    gc.freeze()  # the child's collections then skip (and do not copy-on-write) everything made so far
    libc = ctypes.CDLL(None)
    if hasattr(libc, "malloc_trim"):  # glibc: hand back the pages construction freed, so the child cannot reuse them
        libc.malloc_trim(0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read)
            _die_with(os.getppid())
            answer = _child(codec, config, device, message)
        except BaseException as exc:  # noqa: BLE001 — reported to the worker, never raised there
            answer, code = {"error": f"{message['op']} in the memory child: {type(exc).__name__}: {exc}"}, 1
        os.write(write, json.dumps(answer).encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        text = fh.read()
    _, status = os.waitpid(pid, 0)
    if not text:
        why = f"signal {signal.Signals(-os.waitstatus_to_exitcode(status)).name}" if os.WIFSIGNALED(status) \
            else f"exit {os.waitstatus_to_exitcode(status)}"
        hint = " (the out-of-memory killer sends SIGKILL)" if "SIGKILL" in why else ""
        return {"error": f"{message['op']} in the memory child died: {why}{hint}"}
    return json.loads(text)


def _warm_image_library(codec: Codec | None, config: CodecConfig) -> None:
    """Initialise the image library the codec codes with, as a long-lived worker has, before any fork.

    Pillow registers its format plugins on the first ``open``/``save`` and each format's library
    allocates its tables on first use: 1–3 MiB for JPEG, 3–11 MiB for WebP, charged to the first
    measured call's growth when the zygote never touched an image. So for a Pillow codec (one with a
    Pillow ``format``) the zygote runs ``Image.init()`` and encodes and decodes a 16×16 image in
    that format — only that one, so that other codecs' peaks do not carry its tables. Encoders and
    decoders run on one thread (``max_threads = 1``), so no thread is alive at the fork.
    """
    import io

    fmt = getattr(codec, "format", None) if codec is not None else \
        getattr(_adapter_class(config), "format", None)
    if not isinstance(fmt, str):
        return
    from PIL import Image

    Image.init()
    if fmt not in Image.SAVE or fmt not in Image.OPEN:
        return
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format=fmt, **({"max_threads": 1} if fmt == "AVIF" else {}))
    plugin = sys.modules.get("PIL.AvifImagePlugin") if fmt == "AVIF" else None
    default_threads = getattr(plugin, "DEFAULT_MAX_THREADS", None)
    if plugin is not None:
        plugin.DEFAULT_MAX_THREADS = 1  # the decoder's thread count is read when the file is opened
    try:
        with Image.open(io.BytesIO(buffer.getvalue())) as im:
            im.convert("RGB").load()
    finally:
        if plugin is not None:
            plugin.DEFAULT_MAX_THREADS = default_threads
    gc.collect()


def _adapter_class(config: CodecConfig) -> type:
    from bench.codecs import registry

    return registry.adapter_class(config.adapter)


def serve(parent: int) -> None:
    """The zygote's loop: construct the codec (one thread, no image), then one fork per request."""
    _die_with(parent)
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a library prints goes to the log, not into the answers
    codec: Codec | None = None
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if "config" in message:
                from bench.codecs import registry

                doc = message["config"]
                config = CodecConfig(**{**doc, "rates": tuple(RatePoint(r["label"], r["params"]) for r in doc["rates"])})
                device = message["device"]
                if not dev.is_cuda(device):
                    codec = registry.create(config, device=device)
                else:  # import its libraries (torch does not touch CUDA on import); CUDA waits for the child
                    registry.adapter_class(config.adapter)
                    import torch  # noqa: F401
                _warm_image_library(codec, config)
                answer: dict[str, Any] = {"ready": True}
            else:
                if codec is not None:
                    codec.memory_model(RatePoint(message["rate"]["label"], message["rate"]["params"]))
                answer = _fork(codec, config, device, message)
        except Exception as exc:  # noqa: BLE001 — one line back to the worker
            answer = {"error": f"memory zygote: {type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
