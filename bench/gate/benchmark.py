"""What the gate runs, and running it: the benchmark definition, the yardstick, its images, CPU pinning.

:class:`GateBenchmark` is the fixed benchmark (stored in the baseline so that later runs repeat
it); :func:`session_spec` describes it as a session (:mod:`bench.session`), whose plan is the
crop layout of :mod:`bench.plan` (yardstick first, every cell once per round, the round a field
of the cell); :func:`run_benchmark` runs that session — each round in fresh worker processes,
pinned to one CPU (:func:`one_cpu`) — into a results store. See the :mod:`bench.gate` docstring
for why.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.codecs.base import CodecConfig, RatePoint
from bench.errors import ConfigError, GateError, UsageError

if TYPE_CHECKING:
    from bench.session import SessionSpec

YARDSTICK = "gate-yardstick"
GATE_DATASET = "kodak"  # the dataset label of the gate cells (also for images from --dataset)
TIME = "dec_cpu_s"  # CPU time of the decode call: other load time-slicing the CPU does not inflate it
#: Wall time of the decode call (``perf_counter``; CUDA events on a GPU): it also sees waiting (a sleep,
#: a lock, I/O), which CPU time cannot, and on a GPU it is the only time that measures the work.
WALL_TIME = "dec_time_s"


@dataclass(frozen=True)
class GateBenchmark:
    """What the gate runs. The baseline file stores it, so later runs repeat exactly this."""

    codecs: tuple[str, ...] = ("jpeg-420", "jpeg-444", "webp", "jpeg2000", "jpegxl", "avif")
    images: tuple[str, ...] = ("kodim04", "kodim15", "kodim23")
    crop: str = "256x256"  # centre crop of every image ('WxH')
    warmup: int = 0  # see the bench.gate docstring: one cold call per cell and round
    repeats: int = 1
    rounds: int = 5  # every cell runs once per round, each round in a fresh worker process
    jobs: int = 1  # one worker: a second one on a 2-core machine disturbs the timings

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateBenchmark:
        return cls(codecs=tuple(d["codecs"]), images=tuple(d["images"]), crop=str(d["crop"]),
                   warmup=int(d["warmup"]), repeats=int(d["repeats"]), rounds=int(d.get("rounds", 5)),
                   jobs=int(d.get("jobs", 1)))



# --- the yardstick and the cells -----------------------------------------------------------------

def yardstick_config() -> CodecConfig:
    """WebP q75 (method 0: quick to encode; decoding does not depend on it) through libwebp."""
    rates = (RatePoint("quality=75", {"quality": 75}),)
    return CodecConfig(name=YARDSTICK, adapter="webp", params={"method": 0}, rates=rates,
                       description="gate yardstick: WebP q75 decode of the same crops (libwebp via Pillow)")


def _gate_images(names: tuple[str, ...], folder: Path | None = None) -> list[tuple[str, Path, str]]:
    """The gate images by name: from Kodak, or from ``folder`` (``--dataset``, e.g. the tests' images)."""
    from bench import datasets
    from bench.images import file_sha256

    try:
        found = datasets.resolve(str(folder) if folder else "kodak")
    except FileNotFoundError as exc:
        raise GateError(str(exc) if folder else f"the gate runs on Kodak: {exc} (set BENCH_DATA_DIR)") from None
    by_name = {p.stem: p for p in found.paths}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise GateError(f"images {missing} not found in {found.note}")
    return [(n, by_name[n], file_sha256(by_name[n])) for n in names]


def idlest_cpu(candidates: set[int], seconds: float = 0.3) -> int:
    """The candidate CPU with the most idle time over ``seconds`` (Linux ``/proc/stat``; else the
    highest-numbered candidate)."""
    def sample() -> dict[int, tuple[int, int]]:
        out = {}
        with open("/proc/stat", encoding="ascii") as fh:
            for line in fh:
                name, *values = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    ticks = [int(v) for v in values]
                    out[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))  # idle + iowait, total
        return out
    try:
        first = sample()
        time.sleep(seconds)
        second = sample()
    except (OSError, ValueError, IndexError):
        return max(candidates)
    idle = {c: (second[c][0] - first[c][0]) / max(1, second[c][1] - first[c][1])
            for c in candidates if c in first and c in second}
    return max(idle, key=lambda c: (idle[c], c)) if idle else max(candidates)


@contextmanager
def one_cpu() -> Iterator[str]:
    """Pin this process — and so the workers it spawns — to one CPU while the gate runs.

    Decoders that size their thread pools by the CPUs they may use (libavif/dav1d through Pillow)
    then decode on one thread, and no process migrates between CPUs mid-measurement. The CPU
    that was idlest just before is taken. Yields a description for the manifest; a no-op where
    the OS has no ``sched_setaffinity``.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield "not pinned (no sched_setaffinity on this OS)"
        return
    before = os.sched_getaffinity(0)
    cpu = idlest_cpu(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield f"pinned to CPU {cpu} of {sorted(before)}"
    finally:
        os.sched_setaffinity(0, before)


def session_spec(benchmark: GateBenchmark, out: Path, codecs_dir: str | Path | None = None,
                 dataset: Path | None = None, cpu_affinity: str | None = None) -> SessionSpec:
    """The gate benchmark as a session: its codecs strictly (one that cannot run is an error), the
    yardstick first, the crops of its images round by round in fresh workers, one thread, no memory."""
    from bench.plan import CropPlanSpec
    from bench.session import SessionSpec, command_line

    images = tuple((path, name, sha) for name, path, sha in _gate_images(benchmark.images, dataset))
    return SessionSpec(
        out=out, command=command_line("bench.gate", sys.argv[1:]), codecs=",".join(benchmark.codecs),
        codecs_dir=codecs_dir, plan=CropPlanSpec(images, benchmark.crop, GATE_DATASET, "cpu", benchmark.rounds),
        extra_configs=(yardstick_config(),), strict=True, jobs=benchmark.jobs, threads=1,
        warmup=benchmark.warmup, repeats=benchmark.repeats, memory="off", timeout_s=300, cross_decode=False,
        fresh_workers_per_round=True, check_images=False,
        manifest_extra={"gate": {**asdict(benchmark), "cpu_affinity": cpu_affinity}})


def run_benchmark(benchmark: GateBenchmark, out: Path, codecs_dir: str | Path | None = None,
                  quiet: bool = False, dataset: Path | None = None) -> Path:
    """Run the gate benchmark into the store at ``out`` (a session, :func:`session_spec`); returns
    ``out``. A codec or image the benchmark names that cannot run here is a :class:`GateError`."""
    from bench.session import run_session

    with one_cpu() as cpu:
        try:
            result = run_session(session_spec(benchmark, out, codecs_dir, dataset, cpu))
        except (UsageError, ConfigError) as exc:  # a named codec unknown, broken or unavailable here
            raise GateError(f"gate codecs: {exc}") from None
    if not quiet:
        print(f"gate benchmark: {result.done} cells ({result.errors} errors) in {result.wall_s:.1f} s "
              f"with {benchmark.jobs} worker(s)", file=sys.stderr)
    return out
