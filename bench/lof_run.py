"""LOF on an image (or a few), as a preset of the pipeline: a base configuration and its LOF variant run as
cells into a results store, then the LOF figures read back from it.

    python -m bench.lof_run --codec msp-tiny-lof --image kodim23.png [--image kodim01.png] --crop 128 [--rate 2]
    python -m bench.lof_run --codec msp-base --image kodim23.png --crop 128 --iterations 100 --eval-every 25 --out results/lof

``--codec`` names a LOF configuration (its TOML's ``lof_of`` names the base) or a configuration with
LOF off (the base). The LOF settings given (``--iterations``, ``--eval-every``, ``--lr``,
``--rounding``) make a derived configuration — data, with its own configuration hash and a name
saying what changed, e.g. ``msp-base-lof100`` — checked against the base like a TOML's ``lof_of``.
The cells (one centre crop of the image, dataset ``lof-run``, every rate point or ``--rate``) run
through :mod:`bench.session` like any run: the store is locked, resumed (stored cells are skipped)
and keeps every row. The figures are those of the report's LOF section (:mod:`bench.lofresults`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from bench.argparsing import ArgumentParser
from bench.codecs.base import CodecConfig
from bench.errors import BenchError, ConfigError, UsageError

#: the dataset label of the cells this tool runs
LOF_DATASET = "lof-run"
#: LOF iterations of a variant derived from a base configuration when --iterations is not given
DEFAULT_ITERATIONS = 100


def lof_configs(name: str, codecs_dir: str | Path | None = None, iterations: int | None = None,
                eval_every: int | None = None, lr: float | None = None,
                rounding: str | None = None) -> tuple[CodecConfig, CodecConfig, bool]:
    """``(base, lof, derived)`` for ``--codec name``: a LOF configuration and the base its ``lof_of``
    names, or a base and a LOF variant derived from it. Any LOF setting given derives a variant
    (``derived`` True: not in the codecs folder, it runs as an extra configuration of the session)."""
    from bench.codecs import registry

    configs = registry.load_configs(codecs_dir)
    if name not in configs and name not in configs.broken:
        raise UsageError(f"--codec {name}: no such configuration (see python -m bench list)")
    config = configs[name]  # a broken one raises its ConfigError
    if config.lof_of:
        base, lof = configs[config.lof_of], config
    elif int(config.params.get("lof_iterations", 0) or 0) > 0:
        raise UsageError(f"--codec {name}: LOF is on but its TOML names no base configuration (lof_of = \"...\")")
    else:
        base, lof = config, config
        iterations = DEFAULT_ITERATIONS if iterations is None else iterations
    given = {"lof_iterations": iterations, "lof_eval_every": eval_every, "lof_lr": lr, "lof_rounding": rounding}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return base, lof, False
    declared = registry.adapter_class(base.adapter).fixed_params
    if declared is not None and "lof_iterations" not in declared:
        raise UsageError(f"--codec {name}: adapter {base.adapter!r} has no LOF (only learned codecs do)")
    for key, value in given.items():
        if declared is not None and not declared[key].accepts(value):
            raise UsageError(f"--{key.removeprefix('lof_').replace('_', '-')} {value}: must be {declared[key].allowed()}")
    params = {**lof.params, **given}
    if int(params["lof_iterations"]) <= 0:
        raise UsageError(f"--iterations {params['lof_iterations']}: LOF needs at least 1 iteration")
    tags = [f"{params['lof_iterations']}"] + [f"{tag}{given[k]}" for k, tag in
                                               (("lof_eval_every", "e"), ("lof_lr", "lr"), ("lof_rounding", "-"))
                                               if k in given]
    derived = dataclasses.replace(
        lof, name=f"{base.name}-lof{''.join(tags)}", params=params, lof_of=base.name, default_run=False,
        description=f"{lof.name} with LOF settings {given} (derived by bench.lof_run from {lof.source})")
    problem = registry.name_problem(derived.name) or registry.lof_problem(derived, base)
    if problem:
        raise UsageError(f"--codec {name} with {given}: {problem}")
    if derived.name in configs or derived.name in configs.broken:
        raise UsageError(f"--codec {name}: the derived configuration's name {derived.name!r} is taken by a TOML "
                         "in the codecs folder; run that one instead")
    return base, derived, True


def session_spec(base: CodecConfig, lof: CodecConfig, derived: bool, images: list[Path], crop: int,
                 rate: int | None, out: Path, threads: int, repeats: int, codecs_dir: str | Path | None,
                 argv: list[str]):
    """The session of one LOF run: base and LOF cells of one centre crop of each image, into ``out``
    (resumable). ``crop`` 0: the whole image (then all images must have the first one's size)."""
    from PIL import Image

    from bench.images import file_sha256
    from bench.plan import CropPlanSpec
    from bench.session import SessionSpec, command_line

    if crop < 0:
        raise UsageError(f"--crop {crop}: give a size in pixels, or 0 for the whole image")
    planned, sizes = [], []
    for image in images:
        try:
            with Image.open(image) as im:
                sizes.append(im.size)
            planned.append((image, image.stem, file_sha256(image)))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--image {image}: cannot be read as an image ({exc})") from None
    if len({stem for _, stem, _ in planned}) < len(planned):
        raise UsageError("--image: two images of the same name; the store tells images apart by name")
    if crop == 0 and len(set(sizes)) > 1:
        raise UsageError("--crop 0 (whole images) needs images of one size; give --crop N")
    side = min([crop, *(min(s) for s in sizes)])
    size = f"{sizes[0][0]}x{sizes[0][1]}" if crop == 0 else f"{side}x{side}"
    rates = None
    if rate is not None:
        if not 0 <= rate < len(base.rates):
            raise UsageError(f"--rate {rate}: {base.name} has rate points 0 to {len(base.rates) - 1} "
                             f"({', '.join(p.label for p in base.rates)})")
        rates = (base.rates[rate].label,)
    plan = CropPlanSpec(tuple(planned), size, LOF_DATASET, "cpu", rates=rates)
    return SessionSpec(out=out, command=command_line("bench.lof_run", argv),
                       codecs=base.name if derived else f"{base.name},{lof.name}", codecs_dir=codecs_dir,
                       plan=plan, extra_configs=(lof,) if derived else (), strict=True, jobs=1, threads=threads,
                       warmup=1, repeats=repeats, memory="off", check_images=False)


def _extras(rows: Any, lof: str, image: str, size: str) -> list[dict[str, Any]]:
    """The LOF extras (coded cost before/after, best iteration, LOF time) of the LOF cells of ``image``."""
    out = []
    mine = rows[(rows["codec"] == lof) & (rows["image"] == image) & (rows["resolution"] == size)]
    for _, row in mine.iterrows():
        try:
            extras = json.loads(row["extras"]) if isinstance(row["extras"], str) else {}
        except json.JSONDecodeError:
            extras = {}
        lof_extras = {k: v for k, v in extras.items() if k.startswith("lof_")}
        out.append({"image": image, "rate_label": row["rate_label"], **lof_extras})
    return out


def report(results: Path, base: CodecConfig, lof: CodecConfig, images: list[str], size: str, as_json: bool) -> int:
    """Print the LOF figures of the pair at ``size`` read back from the store (the report section's numbers)."""
    from bench.analysis.bd.bootstrap import MIN_BOOTSTRAP_IMAGES
    from bench.lofresults import LOFPair, lof_figures
    from bench.results import load

    view = load(results)
    pair = LOFPair(lof.name, base.name, int(lof.params["lof_iterations"]), "manifest")
    figures = lof_figures(view, [pair])
    summary = figures.summary[figures.summary["resolution"] == size] if len(figures.summary) else figures.summary
    per_rate = figures.per_rate[figures.per_rate["resolution"] == size] if len(figures.per_rate) else figures.per_rate
    extras = [x for image in images for x in _extras(view.rows, lof.name, image, size)]
    if as_json:
        print(json.dumps({"summary": summary.to_dict("records"), "per_rate": per_rate.to_dict("records"),
                          "lof_extras": extras, "notes": figures.notes}, indent=1, default=str))
        return 0
    for note in figures.notes:
        print(note)
    for _, s in summary.iterrows():
        print(f"{s['lof']} vs {s['base']} ({s['lof_iterations']} LOF iterations) on {s['n_images']} image(s) of "
              f"{s['dataset']} at {s['resolution']}, {s['device']}:")
        for short, label in (("psnr", "PSNR-RGB"), ("msssim", "MS-SSIM")):
            if s[f"status_{short}"] == "ok":
                few = (f" (over {s[f'n_images_{short}']} image(s): an interval over fewer than "
                       f"{MIN_BOOTSTRAP_IMAGES} is not meaningful)" if s[f"n_images_{short}"] < MIN_BOOTSTRAP_IMAGES else "")
                print(f"  BD-rate {label}: {s[f'bd_rate_{short}_pct']:+.2f} % "
                      f"[{s[f'bd_rate_{short}_low']:+.2f}, {s[f'bd_rate_{short}_high']:+.2f}]{few}")
            else:
                print(f"  BD-rate {label}: {s[f'status_{short}']} — {s[f'reason_{short}']}")
        print(f"  encode: wall {s['enc_time_base_s']:.3f} -> {s['enc_time_lof_s']:.3f} s ({s['enc_time_ratio']:.1f}x), "
              f"CPU {s['enc_cpu_base_s']:.3f} -> {s['enc_cpu_lof_s']:.3f} s ({s['enc_cpu_ratio']:.1f}x); decode wall "
              f"{s['dec_time_ratio']:.2f}x, CPU {s['dec_cpu_ratio']:.2f}x (decoder unchanged)")
    for _, r in per_rate.iterrows():
        print(f"  {r['rate_label']}: bpp {r['bpp_base']:.4f} -> {r['bpp_lof']:.4f}, "
              f"PSNR-RGB {r['psnr_base']:.3f} -> {r['psnr_lof']:.3f} dB ({r['n_images']} image(s))")
    for x in extras:
        if "lof_cost_before" in x:
            print(f"  {x['image']} {x['rate_label']}: coded cost (bpp + λ·255²·MSE) {x['lof_cost_before']:.4f} -> "
                  f"{x['lof_cost_after']:.4f}, best at iteration {x.get('lof_best_iteration')}, "
                  f"LOF {x.get('lof_time_s', float('nan')):.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = ArgumentParser(prog="python -m bench.lof_run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", required=True, help="a LOF configuration (its lof_of names the base) or a base")
    ap.add_argument("--image", type=Path, required=True, action="append",
                    help="an image file (repeat for several: the BD is over the images)")
    ap.add_argument("--crop", type=int, default=0, help="centre square crop (0: whole image)")
    ap.add_argument("--rate", type=int, default=None,
                    help="index of the one rate point to run (default: every rate point, which the BD needs)")
    ap.add_argument("--iterations", type=int, default=None,
                    help=f"LOF iterations (default: the LOF configuration's; {DEFAULT_ITERATIONS} for a base)")
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--rounding", choices=("ste", "sga"), default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="timed encodes and decodes per cell (after 1 warm-up)")
    ap.add_argument("--out", type=Path, default=Path("results/lof"), help="results folder (resumes; default results/lof)")
    ap.add_argument("--codecs-dir", default=None, help="folder of codec configurations (default codecs/)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    from bench.session import run_session

    try:
        if args.threads < 1 or args.repeats < 1:
            raise UsageError("--threads and --repeats must be at least 1")
        base, lof, derived = lof_configs(args.codec, args.codecs_dir, args.iterations, args.eval_every, args.lr,
                                         args.rounding)
        spec = session_spec(base, lof, derived, args.image, args.crop, args.rate, args.out, args.threads,
                            args.repeats, args.codecs_dir, argv)
        say = (lambda text, warning: print(text, file=sys.stderr))
        result = run_session(spec, say)
        if result.errors:
            print(f"{result.errors} cell(s) failed: see their error in {result.store}", file=sys.stderr)
        return report(args.out, base, lof, [p.stem for p in args.image], spec.plan.crop, args.json)
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BenchError, ValueError) as exc:  # ValueError: the store holds no successful cell
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
