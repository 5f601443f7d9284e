"""Where the dask executor's workers come from: an existing scheduler, a LocalCluster, or a batch
system through dask-jobqueue (Slurm, PBS, SGE, LSF) configured the Dask way.

Every cluster made here runs single-threaded process workers (one cell at a time; thread count and
time limit from the run's :class:`~bench.cells.Settings`, in each worker's environment before it
starts) and a scheduler that never retries a cell whose worker died
(``allowed-failures = 0``: a cell that killed its worker is an error row, not a cell that kills
three more) and hands each single-threaded worker one task at a time (``worker-saturation = 1``).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from dataclasses import dataclass
from typing import Any

from bench.errors import ExecutorError, UsageError

log = logging.getLogger(__name__)

#: ``--cluster`` kinds: a LocalCluster, or a dask-jobqueue class
BATCH_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
CLUSTER_KINDS = ("local", *BATCH_CLASSES)

#: Scheduler settings every run needs (see the module docstring).
SCHEDULER_TARGET = {"allowed-failures": 0, "worker-saturation": 1.0}
SCHEDULER_CONFIG = {f"distributed.scheduler.{key}": value for key, value in SCHEDULER_TARGET.items()}


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--cluster KIND[:N]``: the kind and the number of workers."""

    kind: str
    workers: int

    @property
    def shares_files(self) -> bool:
        """Whether the workers surely see the client's files (only a cluster on this machine)."""
        return self.kind == "local"


def parse_cluster(text: str, jobs: int) -> ClusterSpec:
    """``local``, ``local:4``, ``slurm:8`` … → :class:`ClusterSpec` (N defaults to ``jobs``)."""
    kind, _, count = text.strip().partition(":")
    kind = kind.lower()
    if kind not in CLUSTER_KINDS:
        raise UsageError(f"--cluster {text!r}: unknown kind {kind!r}; use one of {', '.join(CLUSTER_KINDS)}, "
                         "optionally with :N workers (e.g. local:4, slurm:16)")
    try:
        workers = int(count) if count else max(1, jobs)
    except ValueError:
        raise UsageError(f"--cluster {text!r}: {count!r} is not a number of workers (e.g. {kind}:4)") from None
    if workers < 1:
        raise UsageError(f"--cluster {text!r}: the number of workers must be at least 1")
    return ClusterSpec(kind, workers)


def quiet_dask_logs() -> None:
    """``--quiet``: only Dask's critical lines, not its errors ("Task … marked as failed because 1
    workers died …"), which the run's own error rows already say; :func:`connect` keeps the level."""
    import distributed  # noqa: F401 — its import configures the "distributed" loggers: set ours after

    names = [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]
    for name in names:  # Dask's configuration gives some (distributed.client …) a level of their own
        logger = logging.getLogger(name)
        if name == "distributed" or logger.level != logging.NOTSET:
            logger.setLevel(logging.CRITICAL)


def _dask_log_level() -> int:
    """The level of Dask's own log lines here: WARNING unless ``-v`` (INFO) or ``--quiet`` (higher)."""
    if logging.getLogger().getEffectiveLevel() <= logging.INFO:
        return logging.getLogger("distributed").getEffectiveLevel()
    return max(logging.WARNING, logging.getLogger("distributed").getEffectiveLevel())


def start_local(spec: ClusterSpec, env: dict[str, str], gpu_workers: int = 0) -> Any:
    """A LocalCluster of ``spec.workers`` single-threaded process workers, plus ``gpu_workers``
    workers advertising the resource ``GPU=1`` (each owns one GPU), each started with ``env`` (the
    run's :meth:`~bench.cells.Settings.environment`: math-library pools pinned before any import).
    No memory limit: as with the
    local executor, only the operating system ends a worker for its memory."""
    import dask
    from distributed import LocalCluster, Nanny

    options = dict(threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=None)
    # The nanny's environment *replaces* Dask's default, which sets MALLOC_TRIM_THRESHOLD_: that
    # turns off glibc's adaptive mmap threshold, so every large array is a fresh mmap and its
    # page faults (3-10× slower JPEG encode measured); the local executor's workers have no such setting.
    level = _dask_log_level()
    quiet = {"logging.distributed": logging.getLevelName(level).lower()} if level > logging.INFO else {}
    with dask.config.set({**SCHEDULER_CONFIG, **quiet, "distributed.nanny.pre-spawn-environ": env}):
        cluster = LocalCluster(n_workers=spec.workers, silence_logs=max(level, logging.WARNING), **options)
        if gpu_workers:
            base = cluster.new_worker_spec()
            (name, entry), = base.items()
            for i in range(gpu_workers):
                extra = {"resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": str(i)}}
                cluster.worker_spec[f"gpu-{i}"] = {"cls": Nanny, "options": {**entry["options"], **extra}}
            cluster.scale(len(cluster.worker_spec))
    return cluster


def import_jobqueue() -> Any:
    """``dask_jobqueue``, imported without letting it take Ctrl-C: its ``runner`` module replaces the
    SIGINT handler with ``sys.exit()`` at import, which would turn an interrupted run into a silent
    exit (no "interrupted" line) and leave every later subprocess with a changed handler."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        import dask_jobqueue
    finally:
        if main and handler is not None:
            signal.signal(signal.SIGINT, handler)
    return dask_jobqueue


def check_batch(spec: ClusterSpec) -> Any:
    """The dask-jobqueue class for ``spec.kind``, once dask-jobqueue, its ``jobqueue.<kind>``
    configuration and the batch system's submit command are all there (a clear
    :class:`UsageError` otherwise). Starts nothing: ``bench run`` calls it before it creates the store."""
    import dask

    try:
        dask_jobqueue = import_jobqueue()
    except ImportError:
        raise UsageError(f"--cluster {spec.kind} needs dask-jobqueue: pip install 'lic-bench[cluster]' "
                         "(or pip install dask-jobqueue)") from None
    section = f"jobqueue.{spec.kind}"
    missing = [key for key in ("cores", "memory") if not dask.config.get(f"{section}.{key}", None)]
    if missing:
        where = os.environ.get("DASK_CONFIG") or "~/.config/dask/jobqueue.yaml"
        raise UsageError(f"--cluster {spec.kind}: the Dask configuration has no {', '.join(missing)} under "
                         f"'{section}'; write them to {where} (README: \"Running on a cluster\" has a worked "
                         "example) or set DASK_CONFIG to a folder holding such a file")
    cls = getattr(dask_jobqueue, BATCH_CLASSES[spec.kind])
    if shutil.which(cls.job_cls.submit_command) is None:
        raise UsageError(f"--cluster {spec.kind}: the submit command {cls.job_cls.submit_command!r} is not on "
                         "PATH here; run the benchmark on a login node of the batch system")
    return cls


def check_cluster(text: str | None, jobs: int = 1) -> ClusterSpec | None:
    """Refuse a ``--cluster`` that cannot start here (bad spec; for a batch kind, what
    :func:`check_batch` checks) without starting anything; its spec, or None without ``text``."""
    if not text:
        return None
    spec = parse_cluster(text, jobs)
    if spec.kind in BATCH_CLASSES:
        check_batch(spec)
    return spec


def start_batch(spec: ClusterSpec) -> Any:
    """A dask-jobqueue cluster of ``spec.kind``, configured by ``jobqueue.<kind>`` in the Dask
    configuration (``~/.config/dask/jobqueue.yaml``, or the files ``$DASK_CONFIG`` names), scaled
    to ``spec.workers`` workers. A clear :class:`UsageError` when dask-jobqueue, its configuration
    or the batch system's submit command is missing (:func:`check_batch`)."""
    import dask

    cls = check_batch(spec)
    section = f"jobqueue.{spec.kind}"
    with dask.config.set(SCHEDULER_CONFIG):
        try:
            cluster = cls()
        except ValueError as exc:
            raise UsageError(f"--cluster {spec.kind}: dask-jobqueue refused the '{section}' settings: "
                             f"{' '.join(str(exc).split())}") from None
    cluster.scale(spec.workers)
    log.info("%s job script:\n%s", cls.__name__, cluster.job_script())
    return cluster


def tune_scheduler(dask_scheduler: Any) -> dict[str, float]:
    """Run on an existing scheduler (``Client.run_on_scheduler``): apply :data:`SCHEDULER_CONFIG`
    and return the values it had, so the client can say what it changed."""
    before = {"allowed-failures": dask_scheduler.allowed_failures,
              "worker-saturation": dask_scheduler.WORKER_SATURATION}
    dask_scheduler.allowed_failures = SCHEDULER_TARGET["allowed-failures"]
    dask_scheduler.WORKER_SATURATION = SCHEDULER_TARGET["worker-saturation"]
    return before


def connect(scheduler: str | None, cluster: str | None, jobs: int, env: dict[str, str],
            gpu_workers: int = 0) -> tuple[Any, Any, bool]:
    """(client, cluster we started or None, whether the workers surely share our files). ``env``:
    the environment of the workers of a cluster started here (:meth:`Settings.environment`).

    Neither ``scheduler`` nor ``cluster``: a LocalCluster of ``jobs`` workers."""
    from distributed import Client

    logging.getLogger("distributed").setLevel(_dask_log_level())  # Dask's INFO lines only with -v
    if scheduler and cluster:
        raise UsageError("give --scheduler (an existing cluster) or --cluster (one to start), not both")
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(f"cannot reach the Dask scheduler at {scheduler}: {exc}; is it running, and is "
                                "the address tcp://HOST:PORT as the scheduler printed it?") from None
        before = client.run_on_scheduler(tune_scheduler)
        changed = {k: v for k, v in before.items() if v != SCHEDULER_TARGET[k]}
        if changed:
            log.warning("Dask scheduler %s: set %s so that a cell that kills its worker is not retried and each "
                        "worker holds one cell at a time", scheduler,
                        ", ".join(f"{k}={SCHEDULER_TARGET[k]} (was {v})" for k, v in changed.items()))
        return client, None, False
    spec = parse_cluster(cluster or f"local:{jobs}", jobs)
    made = start_local(spec, env, gpu_workers) if spec.kind == "local" else start_batch(spec)
    try:
        client = Client(made)
    except BaseException:
        made.close()
        raise
    return client, made, spec.shares_files
