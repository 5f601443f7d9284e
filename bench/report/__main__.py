"""``python -m bench.report [RESULTS_DIR] [--anchor NAME] [--method pchip] [--averaging average-curve] [--out DIR]``."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from bench.analysis.bd import AVERAGE_CURVE, AVERAGINGS, METHODS
from bench.anchor_choice import DEFAULT_ANCHOR, FALLBACK_MEASURED, MEASURED_PREFIX
from bench.argparsing import ArgumentParser
from bench.errors import BenchError, describe, quiet_broken_pipe
from bench.report.anchoring import ReportOptions
from bench.report.build import build_report
from bench.report.progress import stderr_progress


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m bench.report",
                                     description="Write an HTML + Markdown report (RD curves, BD-rate, complexity, "
                                                 "scaling) of a results store.")
    parser.add_argument("results", nargs="?", default="results/default",
                        help="results directory or .sqlite file (default results/default)")
    parser.add_argument("--anchor", default=None,
                        help=f"BD anchor: a published curve (python -m bench.anchors list; default {DEFAULT_ANCHOR} "
                             f"for Kodak) or {MEASURED_PREFIX}NAME for a measured codec of the store (default when "
                             f"no published curve fits the data: {MEASURED_PREFIX}{FALLBACK_MEASURED})")
    parser.add_argument("--dataset", default=None, help="dataset compared with the anchor (default: the anchor's)")
    parser.add_argument("--method", default="pchip", choices=METHODS, help="BD interpolation (default pchip)")
    parser.add_argument("--averaging", default=AVERAGE_CURVE, choices=AVERAGINGS,
                        help="BD averaging convention (default average-curve)")
    parser.add_argument("--plot-anchors", default="",
                        help="extra published curves to draw, comma-separated (e.g. kodak/bpg444,kodak/jpeg)")
    parser.add_argument("--out", default=None, help="output folder (default reports/<results dir name>)")
    parser.add_argument("--training", type=Path, default=None,
                        help="folder of the shipped weights' training curves (*.curve.csv, *.train.json; default: "
                             "the weights/ folder of the codec configurations)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out) if args.out else Path("reports") / Path(args.results).resolve().name
    if args.training is None:
        from bench.codecs.registry import default_codecs_dir

        args.training = default_codecs_dir() / "weights"
    options = ReportOptions(anchor=args.anchor, method=args.method, averaging=args.averaging, dataset=args.dataset,
                            plot_anchors=tuple(n.strip() for n in args.plot_anchors.split(",") if n.strip()),
                            training=args.training)
    try:
        with stderr_progress() as step:
            report = build_report(args.results, out, options, step)
    except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
        return quiet_broken_pipe()
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback
        print("interrupted", file=sys.stderr)
        return 130
    except (BenchError, OSError, ValueError) as exc:  # a user error, or the disk: one line, no traceback
        # the output folder names a disk error's place (it carries no path of its own), never a missing input's
        disk = isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.strerror
        print(f"error: {describe(exc, out if disk else None)}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # a results store that cannot be read
        print(f"error: results store {args.results}: {describe(exc)}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{report.html}\n{report.markdown}\n{len(report.figures)} figure files and {len(report.csv)} CSV files "
          f"in {report.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
