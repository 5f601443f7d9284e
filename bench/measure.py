"""Measure one cell: encode, decode from the bytes only, quality, time and memory.

Protocol (the same for every codec):
1. ``warmup`` encodes; the first one's bitstream is the one measured. Then ``repeats`` timed
   encodes; every repeat's bytes are compared with the first (``encode_deterministic``).
2. The same for decode, which receives only the bytes. Its output must be H×W×3 uint8 of the
   input's size, else the cell is an error.
3. Times are wall-clock (``perf_counter``; CUDA events with synchronisation on a GPU) of the
   ``encode``/``decode`` call alone: median, min and max over the repeats. For subprocess codecs
   the timer includes process start-up and file I/O (``timer`` says so). The median CPU time of
   this process over the same calls (all its threads) is stored too: unlike wall time it does
   not grow when other load time-slices the CPU (NULL for subprocess codecs).
4. Memory of the codec itself (``protocol.memory``: every cell, the middle rate point's cells,
   the middle rate point once per image size (default) or none): after the timed calls, the
   encode and the decode run once more, each in a fork of a clean process (:mod:`bench.memory`):
   peak RSS and growth over the RSS right before the call; and a learned codec's parameter+buffer bytes.
   Kept for continuity: this worker's own peak RSS over the timed calls (``VmHWM``, mostly the
   worker itself) and its RSS before them; for subprocess codecs, the child's peak (``ru_maxrss``);
   on CUDA, the allocator's peak and NVML's figure for this process. NULL where not available.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import device as dev
from bench.codecs.base import Codec, Encoded, RatePoint
from bench.errors import CodecError
from bench.measurecache import MeasureCache
from bench.memory import MEMORY_MODES, clean_memory
from bench.metrics import DEFAULT as DEFAULT_METRICS
from bench.metrics import compute as compute_metrics


@dataclass(frozen=True)
class Protocol:
    warmup: int = 1
    repeats: int = 3
    memory: str = "size"  # cells with clean-process memory calls: 'all', 'mid', 'size' (bench.memory), 'off'

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1:
            raise ValueError("warmup must be ≥ 0 and repeats ≥ 1")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}, got {self.memory!r}")


def _timed_calls(codec: Codec, n: int, call) -> tuple[list[Any], tuple[list[float], list[float]], int | None,
                                                       int | None, int | None]:
    """Run ``call`` n times; return results, (wall, CPU) seconds, host peak, GPU peak and NVML readings."""
    device = codec.device
    reset_ok = dev.reset_host_peak()
    dev.reset_gpu_peak(device)
    results, seconds, cpu_seconds, child_peaks = [], [], [], []
    for _ in range(n):
        cpu0 = time.process_time()
        with dev.Timer(device) as timer:
            results.append(call())
            codec.synchronize()
        cpu_seconds.append(time.process_time() - cpu0)
        seconds.append(timer.seconds)
        child_peaks.append(codec.last_child_peak_rss)
    if codec.subprocess:  # the work happened in the child: its peak is the one that matters
        host_peak = max(child_peaks) if None not in child_peaks else None
    else:
        host_peak = dev.host_peak_rss() if reset_ok else None
    return results, (seconds, cpu_seconds), host_peak, dev.gpu_peak_allocated(device), dev.nvml_process_bytes(device)


def _time_stats(prefix: str, times: tuple[list[float], list[float]], skip: int, subprocess: bool) -> dict[str, float]:
    seconds, cpu = times[0][skip:], times[1][skip:]
    return {f"{prefix}_time_s": statistics.median(seconds), f"{prefix}_time_min_s": min(seconds),
            f"{prefix}_time_max_s": max(seconds),
            # CPU time of this process: immune to time-slicing by other load; the child's for subprocesses is not in it
            f"{prefix}_cpu_s": None if subprocess else statistics.median(cpu)}


def measure(codec: Codec, image: np.ndarray, rate: RatePoint,
            protocol: Protocol = Protocol(),
            metrics: tuple[str, ...] = DEFAULT_METRICS,
            cache: MeasureCache | None = None) -> tuple[dict[str, Any], bytes, np.ndarray]:
    """Measure ``codec`` on ``image`` at ``rate``; quality by the registry's ``metrics`` (names).
    ``cache`` keeps memory readings taken once per size (``protocol.memory == 'size'``).

    Returns the measurement columns, the bitstream and the decoded image.

    Raises :class:`CodecError` for codec failures and wrong output sizes.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    base_rss = dev.host_rss()
    timed = protocol.repeats
    runs = protocol.warmup + timed

    encodes, enc_s, enc_peak, enc_gpu, enc_nvml = _timed_calls(codec, runs, lambda: Encoded.of(codec.encode(image, rate)))
    encoded: Encoded = encodes[0]
    data = encoded.data
    if not data:
        raise CodecError("encoder produced an empty bitstream")
    deterministic = all(e.data == data for e in encodes[1:]) if len(encodes) > 1 else None

    decodes, dec_s, dec_peak, dec_gpu, dec_nvml = _timed_calls(codec, runs, lambda: codec.decode(bytes(data)))
    decoded = decodes[0]
    if not isinstance(decoded, np.ndarray) or decoded.dtype != np.uint8 or decoded.shape != image.shape:
        got = f"{decoded.dtype} {decoded.shape}" if isinstance(decoded, np.ndarray) else type(decoded).__name__
        raise CodecError(f"decoder returned {got}, expected uint8 {image.shape}")
    if any(not np.array_equal(d, decoded) for d in decodes[1:]):
        raise CodecError("repeated decodes of the same bytes gave different images")

    extras = dict(encoded.extras)
    if codec.last_decode_extras:
        extras["decode"] = dict(codec.last_decode_extras)
    quality, metric_problems = compute_metrics(image, decoded, metrics)
    if metric_problems:  # a metric never fails the cell: its columns stay NULL, the reason is kept
        extras["metrics_null"] = metric_problems
    row: dict[str, Any] = {
        "bytes": len(data),
        "bpp": 8.0 * len(data) / (height * width),
        "estimated_bits": extras.pop("estimated_bits", None),
        **quality,
        **_time_stats("enc", enc_s, protocol.warmup, codec.subprocess),
        **_time_stats("dec", dec_s, protocol.warmup, codec.subprocess),
        "repeats": timed,
        "warmup": protocol.warmup,
        "timer": dev.Timer(codec.device).kind + ("+process_start" if codec.subprocess else ""),
        "enc_peak_rss_bytes": enc_peak,
        "dec_peak_rss_bytes": dec_peak,
        "base_rss_bytes": None if codec.subprocess else base_rss,
        "enc_gpu_peak_bytes": enc_gpu,
        "dec_gpu_peak_bytes": dec_gpu,
        "enc_nvml_bytes": enc_nvml,
        "dec_nvml_bytes": dec_nvml,
        "encode_deterministic": deterministic,
        "extras": extras or None,
        # the extra, untimed memory calls: after the timed ones, never between them
        **clean_memory(codec, image, rate, data, protocol.memory, (enc_peak, dec_peak), cache),
    }
    return row, data, decoded
