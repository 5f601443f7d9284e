"""The gate's command line: ``python -m bench.gate``; returns 0 (passed), 1 (regressed), 2 (cannot judge).

It reads and validates the baseline, runs the benchmark (or reads ``--results``), checks the
machine class before judging decode times, prints the verdict table, and with
``--update-baseline`` rewrites the baseline deliberately. Any error, expected or not, exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

import bench.gate
from bench.argparsing import ArgumentParser, finite_fraction
from bench.errors import BenchError, GateError
from bench.gate.baseline import DEFAULT_BASELINE, read_baseline, validate_baseline
from bench.gate.benchmark import GateBenchmark, run_benchmark
from bench.gate.judge import (CI_TEXT, FAIL, UNJUDGED, CodecSummary, baseline_document, compare, exit_status,
                              format_table, gate_rows, summarise)
from bench.machine import MachineClass, row_classes
from bench.results import from_frame
from bench.store import db_path, read_measurements, read_runs


def _latest_manifest(results: Path) -> dict[str, Any]:
    runs = read_runs(results)
    if runs.empty:
        return {}
    return json.loads(runs.sort_values("run_id").iloc[-1]["manifest"] or "{}")


# --- command line --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m bench.gate", description=bench.gate.__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE,
                   help=f"baseline JSON (default {DEFAULT_BASELINE})")
    p.add_argument("--results", type=Path, default=None,
                   help="compare this gate store instead of running the benchmark (e.g. one kept with --keep)")
    p.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from this run (deliberately)")
    p.add_argument("--bd-threshold", type=finite_fraction, default=0.5,
                   help="fail above this BD-rate worsening, in percentage points")
    p.add_argument("--time-threshold", type=finite_fraction, default=0.25,
                   help="fail when the decode-time ratio grows by more than this fraction (0.25 = 25 %%)")
    p.add_argument("--codecs-dir", default=None, help="codec configurations to run (default codecs/)")
    p.add_argument("--dataset", type=Path, default=None,
                   help="take the gate images from this folder instead of Kodak (trials and tests)")
    p.add_argument("--keep", type=Path, default=None, help="write the gate's store here instead of a temporary folder")
    p.add_argument("--json", type=Path, default=None, help="also write the verdicts to this JSON file")
    p.add_argument("--timing-across-machines", action="store_true",
                   help="judge decode times even when the run's machine class (CPU model, logical CPUs, "
                        "architecture) differs from the baseline's: indicative only, the ratios are "
                        "yardstick-normalised (rates are always judged)")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes, all on the one pinned CPU (default: the baseline's, 1)")
    bench_opts = p.add_argument_group("benchmark definition (only with --update-baseline; else the baseline's)")
    bench_opts.add_argument("--codecs", default=None, help="comma-separated codec names")
    bench_opts.add_argument("--images", default=None, help="comma-separated Kodak image names, e.g. kodim04,kodim23")
    bench_opts.add_argument("--crop", default=None, help="centre crop WxH of every image")
    bench_opts.add_argument("--warmup", type=int, default=None, help="untimed calls per cell before the timed ones")
    bench_opts.add_argument("--repeats", type=int, default=None, help="timed calls per cell")
    bench_opts.add_argument("--rounds", type=int, default=None, help="rounds (each cell once per round)")
    return p


def _benchmark_from(args: argparse.Namespace, baseline: dict[str, Any] | None) -> GateBenchmark:
    given = {k: v for k, v in (("codecs", args.codecs), ("images", args.images), ("crop", args.crop),
                               ("warmup", args.warmup), ("repeats", args.repeats), ("rounds", args.rounds))
             if v is not None}
    if given and not args.update_baseline:
        raise GateError(f"{sorted(given)}: the baseline defines the benchmark; pass --update-baseline to change it")
    base = GateBenchmark.from_dict(baseline["benchmark"]) if baseline else GateBenchmark()
    updates: dict[str, Any] = {}
    if "codecs" in given:
        updates["codecs"] = tuple(c.strip() for c in given["codecs"].split(",") if c.strip())
    if "images" in given:
        updates["images"] = tuple(c.strip() for c in given["images"].split(",") if c.strip())
    if "crop" in given:
        from bench.datasets import parse_size

        w, h = parse_size(given["crop"])
        updates["crop"] = f"{w}x{h}"
    for key, least in (("warmup", 0), ("repeats", 1), ("rounds", 1)):
        if key in given:
            if given[key] < least:
                raise GateError(f"--{key} must be ≥ {least}")
            updates[key] = given[key]
    if args.jobs is not None:
        if args.jobs < 1:
            raise GateError("--jobs must be ≥ 1")
        updates["jobs"] = args.jobs
    return GateBenchmark(**{**asdict(base), **updates})


def _machine_check(baseline: dict[str, Any], rows: pd.DataFrame, results: Path, across: bool) -> tuple[bool, str]:
    """Whether decode times may be judged, and a line saying how they were (or why not).

    Rows of this run from several machine classes are never judged (``across`` is about the
    baseline vs the run); otherwise the run's class is its rows', else its manifest's."""
    classes = row_classes(rows)
    if len(classes) > 1:
        return False, (f"decode times NOT judged: this run's cells were measured on {len(classes)} machine classes "
                       f"({'; '.join(map(str, classes))}); a codec's time is a ratio to the yardstick timed on the "
                       "same machine — run the gate on one machine class")
    base, run = MachineClass.of(baseline), classes[0] if classes else MachineClass.of(_latest_manifest(results))
    if base.matches(run):
        return True, ""
    which = f"baseline: {base}; this run: {run}"
    if across:
        return True, (f"decode times compared ACROSS MACHINE CLASSES ({which}): the ratios are normalised by the "
                      "yardstick, so this comparison is indicative only")
    return False, (f"decode times NOT judged: the machine class differs ({which}); timings compare only within "
                   "a machine class — pass --timing-across-machines to compare them anyway (indicative only)")


def _update_baseline(args: argparse.Namespace, benchmark: GateBenchmark, summary: dict[str, CodecSummary],
                     frame: pd.DataFrame, results: Path) -> None:
    from bench.export import write_atomically

    text = json.dumps(baseline_document(benchmark, summary, frame, _latest_manifest(results)), indent=1) + "\n"
    doc = validate_baseline(json.loads(text), args.baseline)  # never write a baseline the gate would refuse
    write_atomically(args.baseline, lambda fh: fh.write(text), force=True)
    print(f"BASELINE REWRITTEN (deliberately, --update-baseline): {args.baseline} — {len(summary)} codecs, "
          f"{benchmark.crop} crops of {', '.join(benchmark.images)}, machine class {MachineClass.of(doc)}; "
          "commit it with the change that justifies it")
    for codec, s in summary.items():
        print(f"  {codec}: {len(s.bpp)} rate points, median decode-time ratio {s.dec_time_ratio:.3f}")


def _check_writable(path: Path) -> None:
    """Refuse (:class:`GateError`) a ``--json`` path that could not be written — before the benchmark
    runs for minutes, rather than after it, when the failure would hide the verdict table."""
    if path.is_dir():
        raise GateError(f"--json {path}: is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise GateError(f"--json {path}: folder {folder} does not exist")
    try:
        if path.exists():
            with open(path, "a", encoding="utf-8"):
                pass  # opened for appending, not truncated: the file is left as it was
        else:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
                pass
    except OSError as exc:
        raise GateError(f"--json {path}: cannot be written ({exc.strerror})") from None


def _judge(args: argparse.Namespace, t0: float) -> int:
    if args.json is not None:
        _check_writable(args.json)
    baseline = read_baseline(args.baseline) if (args.baseline.is_file() or not args.update_baseline) else None
    benchmark = _benchmark_from(args, baseline)
    if args.results is not None:
        if not db_path(args.results).is_file():
            raise GateError(f"no results store at {db_path(args.results)}")
        results = args.results
    else:
        target = args.keep or Path(tempfile.mkdtemp(prefix="bench-gate-"))
        if args.keep and db_path(args.keep).is_file():
            raise GateError(f"{args.keep} already holds a store; --keep needs a new folder")
        results = run_benchmark(benchmark, target, args.codecs_dir, dataset=args.dataset)
    frame = from_frame(read_measurements(results, status=None), where=results).all_rows()
    summary = summarise(frame, benchmark)
    if args.update_baseline:
        _update_baseline(args, benchmark, summary, frame, results)
        return 0
    judge_time, machine_note = _machine_check(baseline, gate_rows(frame, benchmark), results,
                                              args.timing_across_machines)
    verdicts = compare(baseline, summary, args.bd_threshold, args.time_threshold, judge_time)
    status = exit_status(verdicts)
    print(format_table(verdicts), flush=True)  # first: a --json that fails to write cannot hide the verdicts
    print(CI_TEXT)
    if args.json:
        args.json.write_text(json.dumps([asdict(v) for v in verdicts], indent=1, default=str) + "\n", encoding="utf-8")
    if machine_note:
        print(f"\n{machine_note}", file=sys.stdout if judge_time else sys.stderr)
    failed = [v.codec for v in verdicts if v.status == FAIL]
    unjudged = [v.codec for v in verdicts if v.status == UNJUDGED]
    verdict = {0: "passed", 1: f"FAILED — {', '.join(failed)} regressed",
               2: f"CANNOT JUDGE {', '.join(unjudged)} (see the table)"}[status]
    if status == 1 and unjudged:
        verdict += f"; cannot judge {', '.join(unjudged)}"
    print(f"\ngate: {verdict} (BD-rate threshold +{args.bd_threshold:.2f} %, decode-time threshold "
          f"+{args.time_threshold:.0%}; baseline {args.baseline}; {time.perf_counter() - t0:.0f} s)")
    return status


def main(argv: list[str] | None = None) -> int:
    """The gate's command line; returns 0 (passed), 1 (regressed) or 2 (cannot judge)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        return _judge(args, t0)
    except (BenchError, OSError) as exc:  # GateError, StoreError, a path that cannot be written ...
        print(f"gate error: {exc}", file=sys.stderr)
    except Exception:  # noqa: BLE001 — a bug must never read as "regressed" (exit 1)
        traceback.print_exc()
        print("gate error: unexpected failure (above); exit status 2, cannot judge", file=sys.stderr)
    return 2
