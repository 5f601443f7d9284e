"""What the gate runs, and running it: the benchmark definition, the yardstick, the cells, CPU pinning.

:class:`GateBenchmark` is the fixed benchmark (stored in the baseline so that later runs repeat
it); :func:`plan_cells` lays out its rounds through :mod:`bench.plan` (yardstick first, every cell once per
round, the round a field of the cell);
:func:`run_benchmark` runs them through the runner, each round in fresh worker processes, pinned
to one CPU (:func:`one_cpu`), into a results store. See the :mod:`bench.gate` docstring for why.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.errors import ConfigError, GateError
from bench.codecs.base import CodecConfig, RatePoint
from bench.machine import MachineClass

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


def plan_cells(benchmark: GateBenchmark, configs: list, images: list[tuple[str, Path, str]]) -> list[list]:
    """One list of cells per round (``Cell.round`` = 1, 2, ...); each round holds every cell once:
    per image, the yardstick, then every codec's rate points."""
    from bench.plan import image_cells

    return [[cell for name, path, sha in images for config in [yardstick_config(), *configs]
             for cell in image_cells(config, config.rates, GATE_DATASET, [(path, name, sha)], [benchmark.crop],
                                     "cpu", k)]
            for k in range(1, benchmark.rounds + 1)]


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


def run_benchmark(benchmark: GateBenchmark, out: Path, codecs_dir: str | Path | None = None,
                  quiet: bool = False, dataset: Path | None = None) -> Path:
    """Run the gate benchmark into the store at ``out`` through the runner; returns ``out``."""
    from bench.cli import PACKAGES, _version
    from bench.codeversion import git_commit
    from bench.codecs import registry
    from bench.device import cpu_model
    from bench.cells import Protocol
    from bench.runner import Runner, Settings, now
    from bench.store import Store

    try:
        configs_all = registry.load_configs(codecs_dir)
    except ConfigError as exc:  # no such folder
        raise GateError(str(exc)) from None
    broken = [str(configs_all.broken[c]) for c in benchmark.codecs if c in configs_all.broken]
    if broken:
        raise GateError("gate codec configuration broken: " + "; ".join(broken))
    unknown = [c for c in benchmark.codecs if c not in configs_all]
    if unknown:
        raise GateError(f"gate codecs {unknown} have no configuration in {codecs_dir or registry.default_codecs_dir()}")
    configs = [configs_all[c] for c in benchmark.codecs]
    unavailable = {c.name: r for c in configs if (r := registry.availability(c))}
    if unavailable:
        raise GateError("gate codecs unavailable here: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()))
    cells = plan_cells(benchmark, configs, _gate_images(benchmark.images, dataset))
    settings = Settings(Protocol(benchmark.warmup, benchmark.repeats, memory="off"), threads=1, cross_decode=False, timeout_s=300)
    manifest = {
        "started_at": now(), "command": " ".join([Path(sys.executable).name, "-m", "bench.gate", *sys.argv[1:]]),
        "git_commit": git_commit(), "host": platform.node(), "cpu": f"{cpu_model()} ({os.cpu_count()} logical CPUs)",
        "machine": MachineClass.here().to_dict(), "threads": 1, "jobs": benchmark.jobs,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES}, "gate": asdict(benchmark),
        "protocol": {"warmup": benchmark.warmup, "repeats": benchmark.repeats},
        "codecs": {c.name: {"adapter": c.adapter, "params": c.params, "rates": [(r.label, r.params) for r in c.rates]}
                   for c in [yardstick_config(), *configs]},
    }
    with Store(out) as store, one_cpu() as cpu:
        manifest["gate"]["cpu_affinity"] = cpu
        run_id = store.start_run(manifest)
        t0 = time.perf_counter()
        done = errors = 0
        for round_cells in cells:  # fresh worker processes for each round (see the bench.gate docstring)
            result = Runner(store, settings, benchmark.jobs).run(round_cells, run_id)
            done, errors = done + result.done, errors + result.errors
        store.finish_run(run_id, now())
    if not quiet:
        print(f"gate benchmark: {done} cells ({errors} errors) in {time.perf_counter() - t0:.1f} s "
              f"with {benchmark.jobs} worker(s)", file=sys.stderr)
    return out
