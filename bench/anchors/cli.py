"""The anchors' command line: ``python -m bench.anchors list|import``.

``list`` prints one aligned line per anchor; ``import`` regenerates ``anchors/`` from the shared
anchors folder, removing stale files and keeping the anchors measured by this suite. User errors
and disk errors are one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.anchors.schema import QUALITY_COLUMNS
from bench.anchors.sources import build_anchors
from bench.anchors.store import anchor_datasets, anchors_dir, list_anchors, load_anchor, measured_anchors, save_anchor
from bench.argparsing import ArgumentParser
from bench.errors import AnchorError, BenchError, describe, quiet_broken_pipe


#: the first line of the package's docstring (the package imports this module, so it is not read from there)
DESCRIPTION = 'Published rate-distortion curves ("anchors") as data, loadable by name.'


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.anchors import|list``."""
    parser = ArgumentParser(prog="python -m bench.anchors", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    p_imp = sub.add_parser("import", help="regenerate anchors/ from the shared anchors folder")
    p_imp.add_argument("--source", type=Path, default=None,
                       help="shared anchors folder (default: $BENCH_SHARED_DIR/anchors)")
    p_imp.add_argument("--out", type=Path, default=None, help="output folder (default: the project's anchors/)")
    p_list = sub.add_parser("list", help="list anchors: name, dataset, codec version, points, source")
    p_list.add_argument("--dataset", default=None, help="only the anchors of this dataset (e.g. kodak)")
    args = parser.parse_args(argv)

    try:
        return _list(args.dataset) if args.command == "list" else _import(args, parser)
    except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
        return quiet_broken_pipe()
    except (BenchError, OSError) as exc:  # a user error, or the disk: one line, no traceback
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2


def _list(dataset: str | None) -> int:
    """One line per anchor: name, dataset, codec and version, points, qualities, source (aligned columns).

    A file that cannot be loaded is listed as BROKEN with its reason, as ``bench list`` lists a
    broken codec configuration, and the others are still shown. An unknown ``dataset`` is an
    error naming the known ones."""
    names = list_anchors(dataset)
    if dataset is not None and not names:
        raise AnchorError(f"no anchors for dataset {dataset!r}; known datasets: {', '.join(anchor_datasets())}")
    rows = [("name", "dataset", "codec", "version", "points", "qualities", "source")]
    for name in names:
        try:
            a = load_anchor(name)
        except AnchorError as exc:
            rows.append((name, name.split("/", 1)[0], "-", "-", "-", "-",
                         "BROKEN: " + describe(exc).removeprefix(f"{anchors_dir()}{os.sep}")))
            continue
        rows.append((a.name, a.dataset, str(a.codec.get("name", a.label)), str(a.codec.get("version", "unrecorded")),
                     str(len(a.points["bpp"])), ",".join(q for q in QUALITY_COLUMNS if q in a.points),
                     a.source() or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    source = args.source
    if source is None:
        shared = os.environ.get("BENCH_SHARED_DIR")
        if not shared:
            parser.error("pass --source or set BENCH_SHARED_DIR")
        source = Path(shared) / "anchors"
    out = args.out or anchors_dir()
    anchors = build_anchors(source)
    stale = set(list_anchors(root=out)) - {a.name for a in anchors} - set(measured_anchors(out)) if out.is_dir() else set()
    for a in anchors:
        save_anchor(a, out)
    for n in sorted(stale):
        (out / f"{n}.json").unlink()
    size = sum(p.stat().st_size for p in out.rglob("*.json"))
    print(f"wrote {len(anchors)} anchors to {out} ({size / 1024:.0f} KiB); removed {len(stale)} stale; "
          f"kept {len(measured_anchors(out))} measured", file=sys.stderr)
    return 0
