"""A session: the one way a benchmark is run into a results store.

``bench run``, the gate (:mod:`bench.gate.benchmark`) and the tools that run the suite (the
measured VTM anchor, :mod:`bench.tools.vtm_anchor`) describe what they want as a
:class:`SessionSpec` and hand it to :class:`Session` (or :func:`run_session`). The session owns
everything between that description and the stored rows, so these callers cannot drift apart:

1. configuration selection (:func:`bench.plan.select_codecs`; ``strict``: a codec that cannot run
   is an error, not a note),
2. the plan (:func:`bench.plan.plan`: a dataset layout or the gate's crop layout),
3. the complete :class:`~bench.cells.Settings` (threads, time limit, protocol, memory, metrics):
   the only owner of those values, which reach every process of a cell through
   :meth:`~bench.cells.Settings.environment`,
4. the manifest (:func:`manifest`: one set of keys, the machine class as data),
5. the store: locked for the run, resumed (cells already stored are skipped), one run row.

Choosing, planning and settling happen when the :class:`Session` is made, before the store is
touched, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.codeversion import git_commit
from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.cells import Cell, Settings
    from bench.codecs.base import CodecConfig
    from bench.plan import CropPlanSpec, PlanSpec

#: packages whose versions every manifest records
PACKAGES = ("lic-bench", "numpy", "pillow", "imagecodecs", "pillow-heif", "torch", "compressai",
            "pytorch-msssim", "scipy", "pandas", "piq", "pyiqa", "psnr-hvsm", "ssimulacra2")

#: ``say(text, warning)``: how a session reports notes and its plan to its caller
Say = Callable[[str, bool], None]


def say_on_stderr(text: str, warning: bool) -> None:
    """A plain :data:`Say` for the command-line tools: each note a line on stderr, warnings marked."""
    print(("warning: " if warning else "") + text, file=sys.stderr)


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    import importlib.metadata as md

    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def command_line(module: str, argv: list[str]) -> str:
    """A command as the user typed it (for the manifest and the store's lock file)."""
    return " ".join([Path(sys.executable).name, "-m", module, *argv])


@dataclass(frozen=True)
class SessionSpec:
    """One run into a results store: what to run, how, and where (``bench run --help`` explains
    each option of the same name)."""

    out: Path
    command: str  # as typed: recorded in the manifest and the lock file
    codecs: str | None = None  # 'default', 'all' or comma-separated names
    codecs_dir: str | Path | None = None
    plan: PlanSpec | CropPlanSpec | None = None  # None: PlanSpec() (the default benchmark)
    #: configurations planned before the selected ones (the gate's yardstick)
    extra_configs: tuple[CodecConfig, ...] = ()
    strict: bool = False  # a selected codec that cannot run is an error (the gate), not a note
    jobs: int = 1
    threads: int | None = None  # per worker; None: logical CPUs / jobs
    warmup: int = 1
    repeats: int = 3
    memory: str = "size"
    timeout_s: float = 900.0
    cross_decode: bool = False
    #: the cross-decode overrides decoders that pin the encoder's thread count (``--cross-decode force``)
    cross_decode_forced: bool = False
    keep_streams: bool = False  # each cell's bitstream kept beside the store (bench.streams)
    metrics: str = "default"
    executor: str = "local"
    scheduler: str | None = None
    cluster: str | None = None
    ship_images: bool | None = None
    retry_errors: bool = False
    fresh_workers_per_round: bool = False  # the gate: each round in new worker processes
    check_images: bool = True  # compare cells labelled 'kodak' with the published pixels (notes)
    manifest_extra: dict[str, Any] = field(default_factory=dict)  # e.g. the gate's benchmark definition

    def executor_options(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "cluster": self.cluster, "ship_images": self.ship_images}


@dataclass
class SessionResult:
    """What a session did: its run (None when every cell was already stored) and the counts."""

    store: Path
    run_id: int | None
    cells: int
    skipped: int
    done: int = 0
    errors: int = 0
    wall_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


def settings_of(spec: SessionSpec) -> Settings:
    """The complete :class:`~bench.cells.Settings` of a session: every value decided here, once."""
    from bench.cells import Settings
    from bench.measure import Protocol
    from bench.metrics import select as select_metrics

    threads = spec.threads or max(1, (os.cpu_count() or 1) // max(1, spec.jobs))
    return Settings(Protocol(spec.warmup, spec.repeats, spec.memory), threads,
                    spec.cross_decode or spec.cross_decode_forced, spec.timeout_s, metrics=select_metrics(spec.metrics),
                    keep_streams=spec.keep_streams, cross_decode_forced=spec.cross_decode_forced)


def select(spec: SessionSpec) -> tuple[list[CodecConfig], list[str]]:
    """The configurations to run (``extra_configs`` first) and notes on those that cannot run;
    :class:`UsageError` when none can, or (``strict``) when any selected one cannot."""
    from bench import plan

    configs, notes = plan.select_codecs(spec.codecs, spec.codecs_dir)
    if spec.strict and notes:
        raise UsageError("codecs unavailable here: " + "; ".join(notes))
    if not configs and not spec.extra_configs:  # a tool may give all its configurations as extra_configs
        raise UsageError("no codec available to run: " + "; ".join(notes) if notes else "no codec selected")
    return [*spec.extra_configs, *configs], notes


def manifest(spec: SessionSpec, configs: list[CodecConfig], settings: Settings) -> dict[str, Any]:
    """The run manifest: versions, command, machine (its class as data: ``machine``; ``cpu`` is the
    same as text, for the runs table), settings and every configuration, plus ``manifest_extra``."""
    from bench import datasets
    from bench.cells import now
    from bench.device import cpu_model, gpu_models
    from bench.machine import MachineClass
    from bench.metrics.run import table as metric_table

    return {
        "started_at": now(),
        "command": spec.command,
        "git_commit": git_commit(),
        "host": platform.node(),
        "machine": MachineClass.here().to_dict(),
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical CPUs)",
        "gpu": ", ".join(gpu_models()) or None,
        "threads": settings.threads,
        "jobs": spec.jobs,
        "executor": {"name": spec.executor, **spec.executor_options()},
        "rounds": getattr(spec.plan, "rounds", 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: package_version(p) for p in PACKAGES},
        "metrics": metric_table(settings.metrics),
        "protocol": settings.to_manifest(),
        "codecs": {c.name: {"adapter": c.adapter, "params": c.params, "description": c.description,
                            "rates": [(r.label, r.params) for r in c.rates], "source": c.source,
                            **({"lof_of": c.lof_of} if c.lof_of else {})}
                   for c in configs},
        "data_dir": str(datasets.data_dir()),
        **spec.manifest_extra,
    }


class Session:
    """A session, chosen, planned and settled (nothing written yet); :meth:`run` runs it."""

    def __init__(self, spec: SessionSpec):
        from bench import plan

        self.spec = spec
        self.configs, self.notes = select(spec)
        self.cells, plan_notes = plan.plan(spec.plan if spec.plan is not None else plan.PlanSpec(), self.configs)
        self.notes += plan_notes
        self.settings = settings_of(spec)

    def run(self, say: Say | None = None,
            progress: Callable[[int], AbstractContextManager[Any]] | None = None) -> SessionResult:
        """Run the cells not yet stored into ``spec.out`` while holding its lock (a second run on the
        same store is refused at once). ``say`` hears the notes on the cells still to run and the
        plan's size; ``progress(n)`` gives a context whose value's ``advance(row)`` hears every row."""
        from bench import plan
        from bench.cells import now
        from bench.metrics.run import table as metric_table
        from bench.runner import Runner
        from bench.store import Store
        from bench.storelock import lock_store

        say = say or (lambda text, warning: None)
        spec, settings = self.spec, self.settings
        with lock_store(spec.out, spec.command):
            for m in metric_table(settings.metrics):
                if not m["available"]:
                    say(f"metric {m['metric']}: unavailable — {m['reason']} (its columns stay NULL)", True)
            with Store(spec.out) as store:
                # beside the store: the per-size counts and memory readings the workers share and a resume reuses
                settings = self.settings = replace(settings, cache_dir=str(store.path.resolve().parent / "cache"))

                def runner() -> Runner:
                    return Runner(store, settings, spec.jobs, spec.executor, **spec.executor_options())

                todo, skipped = runner().pending(self.cells, spec.retry_errors)
                if spec.check_images:
                    for note in plan.image_notes(todo):  # only images that still have cells to run
                        say(note, True)
                say(f"{len(self.cells)} cells: {skipped} already in {store.path}, {len(todo)} to run "
                    f"(executor {spec.executor}, {spec.jobs} CPU worker(s), {settings.threads} thread(s) each)",
                    False)
                result = SessionResult(store.path, None, len(self.cells), skipped)
                if not todo:
                    return result
                result.run_id = store.start_run(manifest(spec, self.configs, settings))
                rounds = sorted({c.round for c in todo}) if spec.fresh_workers_per_round else [None]
                t0 = time.perf_counter()
                with (progress(len(todo)) if progress else nullcontext()) as bar:
                    for k in rounds:  # one runner (fresh workers) per round, or one for all
                        cells = [c for c in todo if k is None or c.round == k]
                        done = runner().run(cells, result.run_id, on_result=bar.advance if bar else None)
                        result.done, result.errors = result.done + done.done, result.errors + done.errors
                        result.rows += done.rows
                result.wall_s = time.perf_counter() - t0
                store.finish_run(result.run_id, now())
        return result


def run_session(spec: SessionSpec, say: Say | None = None,
                progress: Callable[[int], AbstractContextManager[Any]] | None = None) -> SessionResult:
    """Choose, plan, settle and run ``spec`` (see :class:`Session`)."""
    session = Session(spec)
    for note in session.notes:
        (say or (lambda text, warning: None))(note, True)
    return session.run(say, progress)
