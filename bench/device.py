"""The device layer: timing, synchronisation, memory readings and the matmul yardstick for CPU and CUDA.

Everything GPU-specific lives here, behind ``torch.cuda.is_available()``; the rest of the code is
device-agnostic. Host memory uses Linux's per-process high-water mark: writing ``5`` to
``/proc/self/clear_refs`` resets ``VmHWM``, which then reports the peak resident set since.
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def reset_host_peak() -> bool:
    """Reset the peak-RSS counter; False where the OS does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def host_rss() -> int | None:
    return _status_kib("VmRSS")


def host_peak_rss() -> int | None:
    return _status_kib("VmHWM")


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def _torch():
    import torch

    return torch


def cuda_available() -> bool:
    try:
        return _torch().cuda.is_available()
    except ImportError:
        return False


def cuda_count() -> int:
    """CUDA devices torch can use here (0 without torch or without a GPU)."""
    return _torch().cuda.device_count() if cuda_available() else 0


def synchronize(device: str) -> None:
    if is_cuda(device):
        _torch().cuda.synchronize(device)


class Timer:
    """Wall time of a region; on CUDA, events recorded on the stream with synchronisation
    before start and after end, so work queued inside the region is inside the measurement."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.kind = "cuda_events" if is_cuda(device) else "perf_counter"

    def __enter__(self) -> Timer:
        if is_cuda(self.device):
            torch = _torch()
            torch.cuda.synchronize(self.device)
            self._start, self._end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if is_cuda(self.device):
            self._end.record()
            _torch().cuda.synchronize(self.device)
            self.seconds = self._start.elapsed_time(self._end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self._t0


def reset_gpu_peak(device: str) -> None:
    if is_cuda(device):
        _torch().cuda.reset_peak_memory_stats(device)


def gpu_peak_allocated(device: str) -> int | None:
    """Peak bytes held by the torch allocator since the last reset; None off CUDA."""
    return int(_torch().cuda.max_memory_allocated(device)) if is_cuda(device) else None


def nvml_process_bytes(device: str) -> int | None:
    """Device memory NVML attributes to this process (allocator reserve + context); None off CUDA."""
    if not is_cuda(device):
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        index = _torch().device(device).index or 0
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid():
                return int(proc.usedGpuMemory) if proc.usedGpuMemory is not None else None
    except Exception:  # NVML missing or not permitted: not applicable, not zero
        return None
    return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; else what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def gpu_models() -> list[str]:
    if not cuda_available():
        return []
    torch = _torch()
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def gpu_name(device: str) -> str | None:
    """The model of the GPU ``device`` names (``cuda``, ``cuda:1``); ``None`` for a CPU device.
    Imports torch only for a CUDA device, so CPU workers stay light."""
    if not is_cuda(device):
        return None
    torch = _torch()
    return torch.cuda.get_device_name(torch.device(device))


def matmul_gflops(n: int = 2048, repeats: int = 5, device: str = "cpu", dtype: Any = None) -> float:
    """Achieved GFLOP/s of an n×n matmul (float32 unless ``dtype``; best of ``repeats``) on the
    current threads / device: the yardstick of the machine's arithmetic rate."""
    torch = _torch()
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    synchronize(str(device))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        synchronize(str(device))
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def matmul_cpu_gflops(n: int = 2048, repeats: int = 5, dtype: Any = None) -> float:
    """GFLOP per second of this process's CPU time (all threads) for an n×n matmul (float32 unless
    ``dtype``; best of ``repeats``): unlike the wall-clock rate it hardly moves when other processes
    load the machine."""
    torch = _torch()
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        a @ b
        best = min(best, time.process_time() - t)
    return 2 * n**3 / best / 1e9
