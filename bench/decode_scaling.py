"""Decode time against resolution, through the benchmark pipeline: serial O(n) decoders vs MSP's constant steps.

    python -m bench.decode_scaling [--results results/decode-scaling] [--sizes 256x256,...] [--out figures.json]

Centre crops of one image (default ``$BENCH_DATA_DIR/imagecompression-info-subset/
flower_foveon.png``, 2268×1512) at each size are run as resolution-ladder cells of a session
(:mod:`bench.session`, what ``bench run --dataset IMAGE --images 0 --ladder-set IMAGE --ladder SIZES
--ladder-per-size 1`` runs) into the results store ``--results``: each cell encodes and decodes in a
clean worker process at the configuration's middle rate point, and its row carries decode wall and
CPU time and the codec's sequential decoding steps (``extras``). The store is resumable: the same
command skips the cells already stored. Codecs:

* ``mbt2018`` (CompressAI; one sequential decoding step per latent position — O(n) steps), and any
  configuration of the same serial architecture, at ``--mbt-sizes`` (its decoder is slow);
* each MSP profile (``codecs/msp-*.toml``; (1 + k·S)·G steps at every size), with LOF switched off
  (LOF is encoder-only; the decoder is unchanged). A LOF variant (``lof_of`` in its TOML, e.g.
  ``msp-base-lof``) shares its base's decoder, so it is not run again unless ``--time-lof-profiles``;
* without ``--codecs``, also MLIC++ when ``bench.models.mlicpp`` is importable and a
  ``codecs/*.toml`` uses an ``mlic*`` adapter that can run here (``--codecs`` runs exactly the
  configurations it names).

Untrained weights are fine for timing. The figures printed (and written by ``--out`` as JSON) are
read back from the store (:mod:`bench.analysis.scaling`): per codec the steps and decode time per
size, the fitted log-log exponents of decode wall and CPU time and of the steps (time ∝ pixels^k),
and each codec's speed-up over each serial decoder at the largest size both decoded, wall and CPU.
``python -m bench.report RESULTS`` shows the same in its "Decode scaling" part. Per-part decode
times (entropy coding, context, synthesis) are ``python -m bench.tools.decode_parts``'s; per-step
MSP times are no longer printed.

Exit status: 0 every cell measured, 1 some cells failed (named; rerun with the same command and
``--retry-errors``), 2 bad input.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.argparsing import ArgumentParser
from bench.datasets import parse_size
from bench.errors import BenchError, UsageError, describe

if TYPE_CHECKING:
    import pandas as pd

    from bench.codecs.base import CodecConfig
    from bench.session import Session

DEFAULT_SIZES = "256x256,512x512,768x512,1024x683,1536x1024,2048x1365"
DEFAULT_MBT_SIZES = "256x256,512x512,1024x683,2048x1365"
DEFAULT_RESULTS = "results/decode-scaling"
DEFAULT_IMAGE = Path("imagecompression-info-subset") / "flower_foveon.png"
MSP_PROFILES = ("msp-fast", "msp-base", "msp-best")
DEFAULT_CODECS = ("mbt2018", *MSP_PROFILES)
#: the serial context architecture whose configurations get ``--mbt-sizes``
SERIAL_ARCHITECTURE = "mbt2018"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"WxH,WxH" → [(width, height), ...]; a bad size is a :class:`UsageError` naming it."""
    return [parse_size(item.strip()) for item in text.split(",") if item.strip()]


def mlic_configs(configs: dict[str, CodecConfig]) -> list[CodecConfig]:
    """The MLIC++ configurations that can run here (none when its model is not installed)."""
    import importlib.util

    if importlib.util.find_spec("bench.models.mlicpp") is None:
        return []
    from bench.codecs.registry import availability

    return [c for c in configs.values() if c.adapter.lower().startswith("mlic") and availability(c) is None]


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m bench.decode_scaling", description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, help=f"source image (default: {DEFAULT_IMAGE} under $BENCH_DATA_DIR)")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"WxH list for MSP/MLIC++ (default {DEFAULT_SIZES})")
    ap.add_argument("--mbt-sizes", default=DEFAULT_MBT_SIZES,
                    help=f"WxH list for mbt2018-architecture codecs, whose serial decoder is slow (default "
                         f"{DEFAULT_MBT_SIZES})")
    ap.add_argument("--codecs", default=None,
                    help=f"configurations to run (default {','.join(DEFAULT_CODECS)} and MLIC++ where it can run)")
    ap.add_argument("--codecs-dir", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=Path(DEFAULT_RESULTS),
                    help=f"results store the cells run into and the figures are read from (default {DEFAULT_RESULTS}; "
                         "resumed: stored cells are skipped)")
    ap.add_argument("--repeats", type=int, default=1, help="timed encode/decode calls per cell (median stored)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="untimed calls per cell before timing (default 0: mbt2018's serial decode takes minutes)")
    ap.add_argument("--memory", choices=("all", "mid", "size", "off"), default="off",
                    help="clean-process memory readings as in bench run (default off: each doubles a cell's time)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds before a cell is stopped (an error row)")
    ap.add_argument("--retry-errors", action="store_true", help="run again the cells stored as errors")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads per cell (default 1: on a shared CPU, thread-pool contention makes small serial "
                         "ops, i.e. mbt2018's per-position steps, up to ~8x slower)")
    ap.add_argument("--time-lof-profiles", action="store_true", help="also run the LOF variants (lof_of) of the selected codecs")
    ap.add_argument("--out", type=Path, help="write the figures read from the store as JSON here")
    return ap


def _image(arg: Path | None) -> Path:
    if arg is None:
        data_dir = os.environ.get("BENCH_DATA_DIR")
        if not data_dir:
            raise UsageError("give --image or set BENCH_DATA_DIR")
        arg = Path(data_dir) / DEFAULT_IMAGE
    if not arg.is_file():
        raise UsageError(f"--image {arg}: no such image file")
    return arg


def _configs(args: Any) -> tuple[list[CodecConfig], dict[str, str], list[str], list[str]]:
    """The configurations to run (LOF switched off), the aliases not run, notes, and the names
    whose LOF was switched off."""
    from bench import plan
    from bench.codecs import registry

    names = plan.labels(args.codecs or ",".join(DEFAULT_CODECS))
    # a LOF variant (its TOML's lof_of) decodes with its base's decoder: not run again unless asked
    folder = registry.load_configs(args.codecs_dir)
    lof_of = {c.name: c.lof_of for c in folder.values() if c.lof_of}
    variants = {a: t for a, t in lof_of.items() if t in names}
    aliases = {} if args.time_lof_profiles else variants
    if args.time_lof_profiles:
        names += [a for a in variants if a not in names]
    configs, notes = plan.select_codecs(",".join(names), args.codecs_dir)
    known = {c.name for c in configs}
    if args.codecs is None:
        configs += [c for c in mlic_configs(folder) if c.name not in known]
    if not configs:
        raise UsageError("no codec available to run: " + ("; ".join(notes) or "none selected"))
    lof_off = []
    for i, cfg in enumerate(configs):
        if int(cfg.params.get("lof_iterations", 0)) > 0:
            # LOF is encoder-only and leaves the decoder unchanged: switch it off to time decoding.
            configs[i] = dataclasses.replace(cfg, params={**cfg.params, "lof_iterations": 0})
            lof_off.append(cfg.name)
    return configs, aliases, notes, lof_off


@dataclasses.dataclass
class Request:
    """What one command runs: its sessions (chosen and planned, nothing run yet), the LOF profiles
    not run (their decoder is another's), notes on codecs that cannot run, LOF switched off for."""

    sessions: list[Session]
    aliases: dict[str, str]
    notes: list[str]
    lof_off: list[str]


def request(args: Any, argv: list[str]) -> Request:
    """One session per size list (serial decoders at ``--mbt-sizes``, the others at ``--sizes``),
    all into ``--results``."""
    from bench.plan import PlanSpec
    from bench.session import Session, SessionSpec, command_line

    image = _image(args.image)
    sizes = {False: parse_sizes(args.sizes), True: parse_sizes(args.mbt_sizes)}
    for option, value, least in (("--repeats", args.repeats, 1), ("--warmup", args.warmup, 0),
                                 ("--threads", args.threads, 1)):
        if value < least:
            raise UsageError(f"{option} {value}: must be at least {least}")
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout}: must be a positive number of seconds")
    configs, aliases, notes, lof_off = _configs(args)
    out = []
    for serial in (True, False):
        group = [c for c in configs if (c.params.get("architecture") == SERIAL_ARCHITECTURE) is serial]
        if not group or not sizes[serial]:
            continue
        ladder = ",".join(f"{w}x{h}" for w, h in sizes[serial])
        spec = SessionSpec(
            out=args.results, command=command_line("bench.decode_scaling", argv), codecs="", extra_configs=tuple(group),
            plan=PlanSpec(dataset=str(image), images=0, ladder=ladder, ladder_set=str(image), ladder_per_size=1,
                          device=args.device),
            jobs=1, threads=args.threads, warmup=args.warmup, repeats=args.repeats, memory=args.memory,
            timeout_s=args.timeout, retry_errors=args.retry_errors,
            manifest_extra={"decode_scaling": {"image": str(image), "sizes": ladder, "lof_switched_off": lof_off}})
        out.append(Session(spec))
    return Request(out, aliases, notes, lof_off)


def figures(ladder: pd.DataFrame) -> dict[str, Any]:
    """The decode-scaling figures of ladder rows (:mod:`bench.analysis.scaling`), JSON-ready."""
    from bench.analysis.scaling import decode_points, decode_scaling_fits, decode_speedups

    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return json.loads(frame.to_json(orient="records"))  # NaN → null

    return {"points": records(decode_points(ladder)), "fits": records(decode_scaling_fits(ladder)),
            "speedups": records(decode_speedups(ladder))}


def markdown(found: dict[str, Any], aliases: dict[str, str]) -> str:
    """The figures as Markdown: steps and decode wall time (CPU time) per size and the exponents,
    then the speed-ups over each serial decoder."""
    points = found["points"]
    sizes = sorted({(p["resolution"], p["pixels"]) for p in points}, key=lambda s: s[1])
    lines = ["| codec | steps | " + " | ".join(r.replace("x", "×") for r, _ in sizes)
             + " | k wall | k CPU | k steps |", "|---" * (len(sizes) + 5) + "|"]

    def num(v: float | None, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    for fit in found["fits"]:
        mine = {p["resolution"]: p for p in points if p["codec"] == fit["codec"] and p["device"] == fit["device"]}
        steps = sorted({int(p["sequential_steps"]) for p in mine.values() if p["sequential_steps"] is not None})
        steps_txt = "—" if not steps else str(steps[0]) if len(steps) == 1 else f"{steps[0]}…{steps[-1]}"
        cells = [f"{num(mine[r]['dec_time_s'], '.2f')} ({num(mine[r]['dec_cpu_s'], '.2f')})" if r in mine else "—"
                 for r, _ in sizes]
        lines.append(f"| {fit['codec']} | {steps_txt} | " + " | ".join(cells) + " | "
                     + " | ".join(num(fit[k], ".2f") for k in ("dec_time_k", "dec_cpu_k", "steps_k")) + " |")
    for alias, target in aliases.items():
        lines.append(f"| {alias} | (decoder of {target}; LOF is encoder-only — not run separately) |")
    lines += ["", "Decode seconds per size: wall (CPU)."]
    for s in found["speedups"]:
        lines.append(f"- {s['codec']}: {num(s['wall_speedup'], '.1f')}× faster than {s['reference']} at "
                     f"{s['resolution']} in wall time ({num(s['wall_s'], '.2f')} s vs {num(s['reference_wall_s'], '.2f')}"
                     f" s), {num(s['cpu_speedup'], '.1f')}× in CPU time ({num(s['cpu_s'], '.2f')} s vs "
                     f"{num(s['reference_cpu_s'], '.2f')} s)")
    return "\n".join(lines)


def read_back(results: Path, planned: list[Session]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ok and error rows of the planned cells, from the store (latest configuration per codec)."""
    from bench.results import load

    keys = {(c.config.name, c.resolution, c.image_sha256, c.device) for s in planned for c in s.cells}
    view = load(results)

    def mine(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        return frame[[k in keys for k in zip(frame["codec"], frame["resolution"], frame["image_sha256"],
                                              frame["device"])]]

    return mine(view.ladder), mine(view.errors)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)

    from bench.session import say_on_stderr as say

    try:
        asked = request(args, argv)
        for note in asked.notes:
            say(note, True)
        for session in asked.sessions:
            for note in session.notes:
                say(note, True)
            session.run(say)
        ladder, errors = read_back(args.results, asked.sessions)
    except KeyboardInterrupt:
        print("interrupted (the cells already stored are kept; the same command resumes)", file=sys.stderr)
        return 130
    except (BenchError, OSError, ValueError) as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
    found = figures(ladder)
    print()
    print(markdown(found, asked.aliases))
    if asked.lof_off:
        print(f"LOF switched off (encoder-only, decoder unchanged) for: {', '.join(asked.lof_off)}")
    print(f"store: {args.results} (python -m bench.report {args.results} shows these in 'Decode scaling')")
    if args.out:
        from bench.outfiles import write_atomically

        document = {"store": str(args.results), "aliases": asked.aliases, "lof_switched_off_for_timing": asked.lof_off,
                    **found}
        write_atomically(args.out, lambda fh: fh.write(json.dumps(document, indent=1)), force=True)
    if len(errors):
        for _, row in errors.iterrows():
            say(f"{row['codec']} {row['resolution']}: {row['error']}", True)
        say(f"{len(errors)} cell(s) failed; the same command with --retry-errors runs them again", True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
