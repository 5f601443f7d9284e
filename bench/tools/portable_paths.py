"""Float32 path against portable path of learned codecs, as a protocol of the pipeline: cross-decode
mismatches and the portable path's rate change.

    python -m bench.tools.portable_paths --codecs msp-fast,mbt2018 [--dataset kodak] [--images N] [--rates LABELS] [--results DIR]

Each codec named (its adapter must have a ``portable`` parameter) gives two derived configurations,
``NAME+float32`` and ``NAME+portable`` (``portable = false / true``; data with their own
configuration hash, described as derived). Both run as cells of one session (:mod:`bench.session`)
into the results store ``--results``: every image of the dataset (or the first ``--images``) at
every rate point (or ``--rates``), encoded by a worker pinned to 2 threads, each stream decoded again
in a fresh process with 1 thread, forced (``bench run --cross-decode force``: MLIC++'s float32
decoder would otherwise pin the encoder's 2 threads and hide the difference). The store is
resumable: the same command skips the cells already stored.

Printed per codec and path, read back from the store (:func:`bench.results.load`): cells, streams
cross-decoded with the forced count, streams that decode differently, differing uint8 values and
total bytes; then the portable path's rate change (± %) over the (image, rate point) pairs both paths
stored. Exit status: 0 every cell measured and cross-decoded, 1 some cells failed or were not
cross-decoded (named), 2 bad input.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.argparsing import ArgumentParser
from bench.errors import BenchError, UsageError, describe

if TYPE_CHECKING:
    import pandas as pd

    from bench.cells import Cell
    from bench.codecs.base import CodecConfig
    from bench.session import SessionSpec

#: the two computation paths, in print order; a derived configuration is named ``NAME+PATH``
PATHS = ("float32", "portable")
DEFAULT_RESULTS = "results/portable-paths"
#: the workers' thread pin: the cross-decode then decodes with the other count, 1 (bench.worker.cross_decode)
ENCODE_THREADS = 2
#: a stored cross-decode value that decoded (bench.worker.cross_decode): outcome, where it decoded
_DECODED = re.compile(r"^(identical|differs) \(([^)]*)\)")
_VALUES = re.compile(r"^differs \([^)]*\): (\d+) values$")


def derive(config: CodecConfig, path: str) -> CodecConfig:
    """``config`` on ``path`` ('float32' or 'portable'): ``portable`` set, named ``NAME+PATH``."""
    from bench.codecs import registry

    derived = dataclasses.replace(
        config, name=f"{config.name}+{path}", params={**config.params, "portable": path == "portable"},
        default_run=False, description=f"{config.name} on the {path} decoder path (portable = "
                                       f"{str(path == 'portable').lower()}; derived by bench.tools.portable_paths "
                                       f"from {config.source})")
    problem = registry.name_problem(derived.name)
    if problem:
        raise UsageError(f"--codecs {config.name}: the derived configuration cannot be named: {problem}")
    return derived


def path_configs(codecs: str, codecs_dir: str | Path | None = None) -> tuple[list[CodecConfig], list[str]]:
    """The derived configurations (per codec: float32, portable) of the codecs ``codecs`` names that
    can run here, and a note for each that cannot. :class:`UsageError` for an unknown name, a codec
    without a ``portable`` parameter, or a derived name a TOML of the codecs folder already has."""
    from bench import plan
    from bench.codecs import registry

    names = plan.labels(codecs)
    if not names:
        raise UsageError("--codecs: name at least one learned codec, e.g. msp-fast,mbt2018")
    configs = registry.load_configs(codecs_dir)
    unknown = [n for n in names if n not in configs and n not in configs.broken]
    if unknown:
        close = plan.suggest(unknown, [*configs, *configs.broken])
        raise UsageError(f"unknown codec(s): {', '.join(unknown)}" + (f"; did you mean {', '.join(close)}?" if close
                                                                       else "") + " (see python -m bench list)")
    derived, notes = [], []
    for name in dict.fromkeys(names):
        config = configs[name]  # a broken configuration raises its ConfigError
        declared = registry.adapter_class(config.adapter).fixed_params or {}
        if "portable" not in declared:
            raise UsageError(f"--codecs {name}: adapter {config.adapter!r} has no 'portable' parameter (only "
                             "learned codecs have a float32 and a portable decoder path)")
        pair = [derive(config, path) for path in PATHS]
        taken = [c.name for c in pair if c.name in configs or c.name in configs.broken]
        if taken:
            raise UsageError(f"--codecs {name}: the derived configuration name {taken[0]!r} is taken by a TOML in "
                             "the codecs folder")
        reasons = [f"{c.name}: unavailable — {r}" for c in pair if (r := registry.availability(c))]
        if reasons:
            notes += reasons
        else:
            derived += pair
    if not derived:
        raise UsageError("no codec available to run: " + "; ".join(notes))
    return derived, notes


def session_spec(configs: list[CodecConfig], args: Any, argv: list[str]) -> SessionSpec:
    """Every derived configuration's cells on the dataset's native images, 2 threads per worker,
    cross-decode forced to the other count; into ``--results`` (resumable)."""
    from bench.plan import PlanSpec
    from bench.session import SessionSpec, command_line

    if args.images is not None and args.images < 1:
        raise UsageError(f"--images {args.images}: give at least 1 (or leave it out for every image)")
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout}: must be a positive number of seconds")
    return SessionSpec(
        out=args.results, command=command_line("bench.tools.portable_paths", argv), codecs="",
        codecs_dir=args.codecs_dir, extra_configs=tuple(configs),
        plan=PlanSpec(dataset=args.dataset, images=args.images, rates=args.rates, ladder="none", device="cpu"),
        jobs=1, threads=ENCODE_THREADS, warmup=0, repeats=1, memory="off", timeout_s=args.timeout,
        cross_decode=True, cross_decode_forced=True, retry_errors=args.retry_errors,
        manifest_extra={"portable_paths": {"codecs": sorted({c.name.rpartition("+")[0] for c in configs}),
                                           "paths": list(PATHS)}})


def outcome(text: Any) -> tuple[str | None, bool, int | None]:
    """A stored ``cross_decode`` value as (outcome, forced, differing values). Outcome 'identical' or
    'differs' (the stream was decoded again), else None (NULL, 'not cross-decoded: …', 'error (…)');
    differing values None for a shape mismatch (the caller counts the whole image)."""
    found = _DECODED.match(text) if isinstance(text, str) else None
    if found is None:
        return None, False, 0
    values = _VALUES.match(text)
    n = 0 if found.group(1) == "identical" else int(values.group(1)) if values else None
    return found.group(1), found.group(2).endswith(", forced"), n


def planned(cells: list[Cell]) -> dict[str, set[str]]:
    """Each derived configuration's planned cell keys, in the cells' order."""
    out: dict[str, set[str]] = {}
    for cell in cells:
        out.setdefault(cell.config.name, set()).add(cell.key)
    return out


def tally(rows: pd.DataFrame, errors: pd.DataFrame, cells: dict[str, set[str]]) -> pd.DataFrame:
    """Per derived configuration (``cells``: name → planned cell keys, :func:`planned`): the planned cells,
    the stored ok and error rows, the
    streams cross-decoded with the forced count, those that decode differently and their differing
    uint8 values, the ok cells not (or not forcibly) cross-decoded, and the total bytes."""
    import pandas as pd

    out = []
    for name, keys in cells.items():
        mine = rows[rows["cell_key"].isin(keys)] if len(rows) else rows
        failed = errors[errors["cell_key"].isin(keys)] if len(errors) else errors
        streams = differ = values = unchecked = 0
        for _, row in mine.iterrows():
            kind, forced, n = outcome(row["cross_decode"])
            if kind is None or not forced:
                unchecked += 1
                continue
            streams += 1
            if kind == "differs":
                differ += 1
                values += n if n is not None else int(row["pixels"]) * 3
        codec, _, path = name.rpartition("+")
        out.append({"codec": codec, "path": path, "cells": len(keys), "ok": len(mine), "errors": len(failed),
                    "streams": streams, "differ": differ, "values": values, "unchecked": unchecked,
                    "bytes": int(mine["bytes"].sum()) if len(mine) else 0})
    return pd.DataFrame(out, columns=["codec", "path", "cells", "ok", "errors", "streams", "differ", "values",
                                      "unchecked", "bytes"])


def rate_change(rows: pd.DataFrame, codec: str) -> tuple[float | None, int]:
    """The portable path's rate change in % against the float32 path's over the (image, rate point,
    size) cells both stored, and how many such pairs; (None, 0) when there are none."""
    paths = {}
    for path in PATHS:
        mine = rows[rows["codec"] == f"{codec}+{path}"] if len(rows) else rows
        paths[path] = {(r["image_sha256"], r["rate_label"], r["resolution"]): int(r["bytes"]) for _, r in mine.iterrows()}
    pairs = sorted(set(paths["float32"]) & set(paths["portable"]))
    if not pairs:
        return None, 0
    f32, port = (sum(paths[p][k] for k in pairs) for p in PATHS)
    return 100.0 * (port / f32 - 1.0), len(pairs)


def markdown(table: pd.DataFrame, rows: pd.DataFrame) -> str:
    """The tally as a Markdown table, then one rate-change line per codec."""
    lines = ["| codec | path | cells | streams cross-decoded (1 thread, forced) | decode differently | "
             "differing uint8 values | bytes |", "|---|---|---|---|---|---|---|"]
    for _, t in table.iterrows():
        lines.append(f"| {t['codec']} | {t['path']} | {t['ok']} of {t['cells']} | {t['streams']} | {t['differ']} | "
                     f"{t['values']} | {t['bytes']} |")
    lines.append("")
    for codec in dict.fromkeys(table["codec"]):
        change, pairs = rate_change(rows, codec)
        lines.append(f"{codec}: rate of the portable path against float32: " +
                     ("no cell stored on both paths" if change is None else f"{change:+.3f} % over {pairs} streams"))
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m bench.tools.portable_paths", description=__doc__.split("\n\n")[0])
    ap.add_argument("--codecs", required=True, help="learned codecs (comma-separated; each adapter needs 'portable')")
    ap.add_argument("--dataset", default="kodak", help="kodak (default), a folder, or any bench run --dataset")
    ap.add_argument("--images", type=int, default=None, help="the first N images of the dataset (default: all)")
    ap.add_argument("--rates", default=None, help="rate labels every codec has (default: each codec's whole ladder)")
    ap.add_argument("--results", type=Path, default=Path(DEFAULT_RESULTS),
                    help=f"results store (default {DEFAULT_RESULTS}; resumed: stored cells are skipped)")
    ap.add_argument("--codecs-dir", type=Path, default=None)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds before a cell is stopped (an error row)")
    ap.add_argument("--retry-errors", action="store_true", help="run again the cells stored as errors")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)

    from bench.session import say_on_stderr as say

    from bench.session import Session

    try:
        configs, notes = path_configs(args.codecs, args.codecs_dir)
        session = Session(session_spec(configs, args, argv))
    except (BenchError, OSError, ValueError) as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
    for note in [*notes, *session.notes]:
        say(note, True)
    try:
        session.run(say)
    except KeyboardInterrupt:
        print("interrupted (the cells already stored are kept; the same command resumes)", file=sys.stderr)
        return 130
    except BenchError as exc:  # e.g. another run holds the store
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
    from bench.results import load

    try:
        view = load(args.results)
    except (BenchError, ValueError) as exc:  # e.g. every cell failed: the store has no row to read
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 1
    table = tally(view.rows, view.errors, planned(session.cells))
    print()
    print(markdown(table, view.rows[view.rows["cell_key"].isin({c.key for c in session.cells})]))
    print(f"store: {args.results} (python -m bench.report {args.results} shows them in 'Cross-decode')")
    status = 0
    for _, t in table.iterrows():
        name = f"{t['codec']}+{t['path']}"
        if t["errors"] or t["ok"] < t["cells"]:
            say(f"{name}: {t['cells'] - t['ok']} of {t['cells']} cell(s) failed or are missing; the same command "
                "with --retry-errors runs them again", True)
            status = 1
        if t["unchecked"]:
            say(f"{name}: {t['unchecked']} stored cell(s) were not cross-decoded with the forced thread count "
                "(see their cross_decode column)", True)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
