"""Command line: ``python -m bench run | list | metrics | score | export`` (``list`` and ``metrics``
live in :mod:`bench.inventory`).

``run`` with no options is the embedded default benchmark: every available codec configuration
marked for the default run, on Kodak (or scikit-image's bundled photographs when Kodak is
absent) at native size over each codec's full rate ladder, plus the resolution ladder (centre
crops of the high-resolution images) at each codec's middle rate point.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Only light modules here, so that ``--help`` and a refused option answer at once: each command
# imports what it needs (numpy, pandas, rich, the codecs) when it runs.
from bench import inventory
from bench.argparsing import ArgumentParser
from bench.errors import BenchError, UsageError, describe, quiet_broken_pipe
from bench.executors import EXECUTORS

if TYPE_CHECKING:
    from bench import plan
    from bench.session import SessionSpec


# --- run -----------------------------------------------------------------------------------------

#: ``--rounds`` above this is refused: every round plans (and stores) every cell again, so a typo
#: such as 2000000 would spend minutes planning millions of cells before saying anything.
MAX_ROUNDS = 1000


def check_run_args(args: argparse.Namespace) -> None:
    """Refuse option values that cannot work before anything runs (:class:`UsageError`: one line, exit 2)."""
    from bench import plan
    from bench.executors import executor_class
    from bench.metrics import select as select_metrics

    for option, value, least, what in (
            ("--jobs", args.jobs, 1, "worker processes"), ("--threads", args.threads, 1, "threads per worker"),
            ("--images", args.images, 0, "images to use; 0: ladder cells only"),
            ("--ladder-per-size", args.ladder_per_size, 1, "images per ladder size"),
            ("--warmup", args.warmup, 0, "untimed calls"), ("--repeats", args.repeats, 1, "timed calls"),
            ("--rounds", args.rounds, 1, "times each cell runs")):
        if value is not None and value < least:
            raise UsageError(f"{option} {value}: must be at least {least} ({what})")
    if args.rounds > MAX_ROUNDS:
        raise UsageError(f"--rounds {args.rounds}: at most {MAX_ROUNDS} (every round runs and stores every cell "
                         "again)")
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout}: must be a positive number of seconds")
    if args.rates is not None and not plan.labels(args.rates):
        raise UsageError(f"--rates {args.rates!r}: no rate label given (python -m bench list shows each ladder)")
    plan.ladder_sizes(args.ladder)
    plan.check_device(args.device)
    executor_class(args.executor, **_executor_options(args))
    if args.executor == "dask" and args.cluster:  # e.g. slurm without sbatch: refused before the store exists
        from bench.executors.dask_clusters import check_cluster

        check_cluster(args.cluster, args.jobs)
    select_metrics(args.metrics)


def escape(text: str) -> str:
    """``text`` as rich markup that prints it as it is (a path with [brackets] stays whole)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _executor_options(args: argparse.Namespace) -> dict[str, str | bool | None]:
    ship = {"yes": True, "no": False}.get(args.ship_images) if args.ship_images else None
    return {"scheduler": args.scheduler, "cluster": args.cluster, "ship_images": ship}


def plan_spec(args: argparse.Namespace) -> plan.PlanSpec:
    """The ``bench run`` options that say what to run."""
    from bench import plan

    return plan.PlanSpec(dataset=args.dataset, images=args.images, rates=args.rates, ladder=args.ladder,
                         ladder_set=args.ladder_set, ladder_per_size=args.ladder_per_size,
                         ladder_rates=args.ladder_rates, device=args.device, rounds=args.rounds)


def command_line(argv: list[str]) -> str:
    """The command as the user typed it (for the manifest and the store's lock file)."""
    from bench.session import command_line as typed

    return typed("bench", argv)


def session_spec(args: argparse.Namespace, argv: list[str]) -> SessionSpec:
    """The ``bench run`` options as the session they ask for (:mod:`bench.session` runs it)."""
    from bench.session import SessionSpec

    return SessionSpec(out=Path(args.out), command=command_line(argv), codecs=args.codecs,
                       codecs_dir=args.codecs_dir, plan=plan_spec(args), jobs=args.jobs, threads=args.threads,
                       warmup=args.warmup, repeats=args.repeats, memory=args.memory, timeout_s=args.timeout,
                       cross_decode=args.cross_decode is not None, cross_decode_forced=args.cross_decode == "force",
                       keep_streams=args.keep_streams, metrics=args.metrics,
                       executor=args.executor, retry_errors=args.retry_errors, **_executor_options(args))


def _console():
    """The run's console, on stderr: the terminal's width; in a log, $COLUMNS or 160, so that the
    summary's tables keep every codec name on one line (rich would take 80 and cut them)."""
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 160)


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    """``bench run``: one session (:mod:`bench.session`) while holding the store's lock: a second
    run on the same --out fails at once (a ``StoreError``, which ``main`` prints as one line with
    exit 2). Bad options, unknown codecs and datasets, and impossible plans are refused before the
    lock, so nothing is created for them."""
    from bench.progress import RunProgress
    from bench.session import Session
    from bench.summary import summary_tables

    check_run_args(args)
    if args.quiet and args.executor == "dask":
        from bench.executors.dask_clusters import quiet_dask_logs

        quiet_dask_logs()
    console = _console()
    cpus = os.cpu_count() or 1
    if args.executor == "local" and args.jobs > cpus:
        console.print(f"[yellow]warning: --jobs {args.jobs} is more than the {cpus} logical CPUs here: the "
                      "workers compete for them, which slows the run and disturbs its timings[/yellow]",
                      highlight=False, soft_wrap=True)
    session = Session(session_spec(args, argv))  # a user error here is the only line printed

    def say(text: str, warning: bool) -> None:
        console.print(f"[yellow]{escape(text)}[/yellow]" if warning else escape(text), highlight=False,
                      soft_wrap=True)

    for note in session.notes:
        say(note, True)
    result = session.run(say, lambda total: RunProgress(console, total, quiet=args.quiet))
    if result.run_id is None:
        return 0
    for table in summary_tables(result.rows):
        console.print(table)
    console.print(f"run {result.run_id}: {result.done} cells in {result.wall_s:.1f} s, {result.errors} errors; "
                  f"results in {result.store}", highlight=False, soft_wrap=True)
    return 0


# --- score ---------------------------------------------------------------------------------------

def cmd_score(args: argparse.Namespace, argv: list[str]) -> int:
    """Fill the metrics stored rows lack from their kept streams (:mod:`bench.score`), holding the
    store's lock as a run does. Exit 1 when a stream could not be decoded (its row is left as it was)."""
    from bench import plan as planning
    from bench import score
    from bench.metrics import select as select_metrics
    from bench.progress import RunProgress
    from bench.store import Store, db_path
    from bench.storelock import lock_store

    for option, value in (("--jobs", args.jobs), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UsageError(f"{option} {value}: must be at least 1")
    names = select_metrics(args.metrics)
    score.check_metrics(names)
    if not db_path(args.results).is_file():
        raise UsageError(f"no results store at {db_path(args.results)}")
    selection = score.Selection(
        codecs=tuple(planning.labels(args.codecs)) if args.codecs else None, dataset=args.dataset,
        rates=tuple(planning.labels(args.rates)) if args.rates else None, run_id=args.run)
    images = [Path(p) for p in (args.images or "").split(os.pathsep) if p]
    console = _console()
    with lock_store(args.results, command_line(argv)), Store(args.results) as store:
        found = score.plan(store, names, selection, images, args.codecs_dir)
        if found.problems and not args.skip_missing:
            raise UsageError(f"{score.refusal(found.problems)}; nothing was changed (score the others with "
                             "--skip-missing, or narrow the selection with --codecs/--dataset/--rates/--run)")
        if found.problems:
            console.print(f"[yellow]skipped {score.refusal(found.problems)}[/yellow]", highlight=False, soft_wrap=True)
        console.print(f"{len(found.jobs) + found.done} selected cells: {found.done} already have every metric asked "
                      f"for, {len(found.jobs)} to score", highlight=False, soft_wrap=True)
        threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
        with RunProgress(console, len(found.jobs), quiet=args.quiet) as progress:
            failed = score.run(store, found, names, args.jobs, threads, command_line(argv), progress.advance)
    console.print(f"scored {len(found.jobs) - failed} cells into {db_path(args.results)}"
                  + (f"; {failed} could not be decoded (left as they were)" if failed else ""),
                  highlight=False, soft_wrap=True)
    return 1 if failed else 0


# --- export --------------------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    """CSV and/or CompressAI results-JSON; errors (existing file, unreadable store) reach ``main``."""
    from bench import export

    if not (args.csv or args.compressai_json or args.bd or args.streams):
        raise UsageError("bench export: nothing to do; give --csv FILE, --compressai-json FOLDER, --bd FILE and/or "
                         "--streams FOLDER")
    if args.streams:  # first: a missing or corrupt stream refuses the export before any file is written
        n = export.to_streams(args.results, args.streams, force=args.force)
        print(f"{n} kept streams (with streams.csv, their index) → {args.streams}")
    if args.csv:
        n = export.to_csv(args.results, args.csv, force=args.force)
        print(f"{n} rows → {args.csv}")
    if args.compressai_json:
        for path in export.to_compressai_json(args.results, args.compressai_json, dataset=args.dataset,
                                              force=args.force):
            print(path)
    if args.bd:
        n = export.to_bd_csv(args.results, args.bd, anchor=args.anchor, dataset=args.dataset, force=args.force)
        print(f"{n} BD rows (with 95 % bootstrap intervals) → {args.bd}")
    return 0


EPILOG = """\
the other commands of lic-bench:
  python -m bench.report [RESULTS]      HTML + Markdown report of a results store (RD curves, BD-rate, complexity)
  python -m bench.gate                  the regression gate: a small benchmark compared with gate/baseline.json
  python -m bench.anchors list|import   published rate-distortion curves used as BD anchors
  python -m bench.datasets fetch|show   download Kodak (checksummed) or list the images of a set
each takes --help."""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m bench", description="lic-bench: learned image compression benchmarks",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codecs-dir", default=None, help="folder of codec TOML files (default: codecs/ or $BENCH_CODECS_DIR)")
    parser.add_argument("--models-path", default=None, metavar="DIR",
                        help="folder(s) of model code that compressai-model configurations import from "
                             "(os.pathsep-separated; sets $BENCH_MODELS_PATH for every process of the run)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="every codec configuration with availability and version")
    sub.add_parser("metrics", help="every quality metric: columns, channel, implementation, availability")

    run = sub.add_parser("run", help="run a benchmark into a results store")
    run.add_argument("--codecs", default=None, help="comma-separated names, 'all', or 'default' (default)")
    run.add_argument("--models-path", default=argparse.SUPPRESS, metavar="DIR",
                     help="as the global --models-path (folders of model code for compressai-model configurations)")
    run.add_argument("--dataset", default=None, help="kodak, highres, samples, a folder or one image file (default: kodak if present, else samples)")
    run.add_argument("--images", type=int, default=None, help="use only the first N images of the dataset (0: ladder cells only)")
    run.add_argument("--rates", default=None, help="comma-separated rate labels (default: the whole ladder)")
    run.add_argument("--ladder", default="default",
                     help="resolution ladder: 'default', 'none' or sizes like 256x256,1024x1024")
    run.add_argument("--ladder-set", default="highres", help="images the ladder is cropped from (default highres)")
    run.add_argument("--ladder-per-size", type=int, default=2, help="images per ladder size (default 2)")
    run.add_argument("--ladder-rates", choices=["mid", "all"], default="mid",
                     help="rate points for ladder cells: the ladder's middle point (default) or all")
    run.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="CPU worker processes")
    run.add_argument("--threads", type=int, default=None, help="threads per worker (default: CPUs / jobs)")
    run.add_argument("--rounds", type=int, default=1, help="run every cell this many times (default 1)")
    run.add_argument("--device", default=None, help="override every codec's device (cpu, cuda, cuda:N, auto)")
    run.add_argument("--out", default="results/default", help="results directory (default results/default)")
    run.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (the first gives the bitstream)")
    run.add_argument("--repeats", type=int, default=3, help="timed calls per cell (median, min, max stored)")
    run.add_argument("--memory", choices=["all", "mid", "size", "off"], default="size",
                     help="memory of encode/decode in a clean process: every cell, cells at the middle rate point "
                          "(every image and ladder size), the middle rate point once per image size (default; "
                          "the other cells of that size store its reading), or none")
    run.add_argument("--timeout", type=float, default=900.0, help="seconds before a cell is killed and stored as an error")
    run.add_argument("--cross-decode", nargs="?", const="on", choices=("on", "force"), default=None,
                     help="decode again in a separate process with another thread count / device and record whether "
                          "identical; 'force': also override decoders that pin the encoder's thread count (MLIC++ "
                          "float32 streams), stored as 'forced'")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="where cells run: local worker processes (default) or a Dask cluster")
    run.add_argument("--scheduler", default=None, help="dask: an existing scheduler, tcp://HOST:PORT")
    run.add_argument("--cluster", default=None, help="dask: a cluster to start, e.g. local:2 or slurm")
    run.add_argument("--metrics", default="default",
                     help="quality metrics: 'default', 'jpeg-ai', 'all' or names (python -m bench metrics lists them)")
    run.add_argument("--ship-images", choices=["yes", "no"], default=None,
                     help="dask: send image files to the workers (default: yes unless --cluster local)")
    run.add_argument("--keep-streams", action="store_true",
                     help="keep each cell's bitstream beside the store (RESULTS/streams/, named by sha256; "
                          "the row's stream_sha256), for python -m bench score and export --streams")
    run.add_argument("--retry-errors", action="store_true", help="re-run cells stored as errors")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    sc = sub.add_parser("score", help="compute more metrics for stored cells from their kept streams (run --keep-streams)")
    sc.add_argument("results", help="results directory or .sqlite file")
    sc.add_argument("--metrics", required=True,
                    help="metrics to fill: 'jpeg-ai', 'all' or names (python -m bench metrics lists them)")
    sc.add_argument("--codecs", default=None, help="only these codecs (comma-separated)")
    sc.add_argument("--dataset", default=None, help="only this dataset (a name, or the folder the run used)")
    sc.add_argument("--rates", default=None, help="only these rate labels (comma-separated)")
    sc.add_argument("--run", type=int, default=None, help="only the cells of this run id")
    sc.add_argument("--images", default=None, metavar="DIR",
                    help="folder(s) holding the original images (os.pathsep-separated; default: the dataset's "
                         "folder under $BENCH_DATA_DIR and under the data folder the run recorded)")
    sc.add_argument("--skip-missing", action="store_true",
                    help="score the cells that have their stream and image, list the others (default: refuse)")
    sc.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    sc.add_argument("--threads", type=int, default=None, help="threads per worker (default: CPUs / jobs)")
    sc.add_argument("--quiet", action="store_true", help="no progress bar")

    exp = sub.add_parser("export", help="export a results store to CSV or CompressAI results JSON")
    exp.add_argument("results", help="results directory or .sqlite file")
    exp.add_argument("--csv", default=None, help="write every measurement row to this CSV file")
    exp.add_argument("--compressai-json", default=None, help="write one CompressAI-style JSON per codec into this folder")
    exp.add_argument("--bd", default=None, help="write the report's BD table (every metric, with intervals) to this CSV")
    exp.add_argument("--anchor", default=None, help="BD anchor for --bd, as python -m bench.report --anchor")
    exp.add_argument("--dataset", default=None, help="dataset whose native cells are averaged (default: the first)")
    exp.add_argument("--streams", default=None, metavar="FOLDER",
                     help="copy the kept bitstreams (run --keep-streams) into this folder, checked by sha256, "
                          "with their index streams.csv")
    exp.add_argument("--force", action="store_true", help="overwrite existing export files (never the results store)")
    return parser


def set_models_path(value: str) -> None:
    """Put the folders of ``--models-path`` in front of ``$BENCH_MODELS_PATH`` (inherited by the run's
    workers, memory and cross-decode processes); :class:`UsageError` for a folder that is not there."""
    from bench.codecs.model_ref import MODELS_PATH_ENV

    folders = [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p]
    absent = [str(f) for f in folders if not f.is_dir()]
    if absent:
        raise UsageError(f"--models-path: no such folder {', '.join(absent)}")
    os.environ[MODELS_PATH_ENV] = os.pathsep.join([*map(str, folders), os.environ.get(MODELS_PATH_ENV, "")]).rstrip(os.pathsep)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:  # a run that seems stuck: `kill -USR1 PID` prints every thread's stack to the process's stderr
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    except (AttributeError, ValueError, OSError):  # no SIGUSR1 here, or stderr is no file (called in-process)
        pass
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.models_path:
            set_models_path(args.models_path)
        if args.command == "list":
            return inventory.cmd_list(args)
        if args.command == "metrics":
            return inventory.cmd_metrics()
        if args.command == "run":
            return cmd_run(args, argv)
        if args.command == "score":
            return cmd_score(args, argv)
        return cmd_export(args)
    except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
        return quiet_broken_pipe()
    except KeyboardInterrupt:  # Ctrl-C: every finished cell is already committed; say so in one line
        where = {"run": f"; the cells finished so far are stored in {getattr(args, 'out', '')} (re-run the same "
                        "command to resume)",
                 "score": f"; the cells scored so far are stored in {getattr(args, 'results', '')} (re-run the same "
                          "command to resume)"}.get(args.command, "")
        print(f"interrupted{where}", file=sys.stderr)
        return 130
    except (BenchError, OSError) as exc:  # a user error, or the disk: one line, no traceback
        print(f"error: {describe(exc, getattr(args, 'out', None))}", file=sys.stderr)
    except sqlite3.Error as exc:  # the results store could not be written (e.g. disk full)
        where = getattr(args, "out", None) or getattr(args, "results", None)
        print(f"error: results store {where}: {describe(exc)} (check free space and permissions, or use another "
              "--out)", file=sys.stderr)
    return 2
