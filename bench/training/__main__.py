"""Train a learned configuration, or export a trained run as a shipped weights file.

    python -m bench.training train CODEC --lambda 0.0067 --steps 4000 --out ~/.cache/lic-bench/train/msp-tiny-0.0067
    python -m bench.training train CODEC --lambda 0.025 --steps 1000 --init RUN/checkpoint.pt --out …
    python -m bench.training export RUN --to codecs/weights/msp-tiny-0.0067.pt [--half]

``train`` resumes from ``OUT/checkpoint.pt`` when it exists (same options required), shows a
progress bar with the ETA (plain lines when the output is not a terminal) and appends the loss
curve to ``OUT/curve.csv``. Images come from ``--train-dir`` (default ``$BENCH_TRAIN_DIR``, else
``$BENCH_DATA_DIR/train``). Errors are one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError, describe


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or resume) one configuration at one λ", allow_abbrev=False)
    t.add_argument("codec", help="configuration name (codecs/NAME.toml), an msp or compressai adapter")
    t.add_argument("--lambda", dest="lam", type=float, required=True, help="λ of R + λ·255²·MSE")
    t.add_argument("--steps", type=int, required=True, help="total optimisation steps of this run")
    t.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, curve); resumed if present")
    t.add_argument("--init", help="start from these weights (a state dict or a training checkpoint)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    t.add_argument("--train-dir", type=Path, default=None)
    t.add_argument("--eval-every", type=int, default=250)
    t.add_argument("--checkpoint-every", type=int, default=100)
    e = sub.add_parser("export", help="write a run's weights as a plain state dict", allow_abbrev=False)
    e.add_argument("run", type=Path, help="run folder of `train`")
    e.add_argument("--to", type=Path, required=True, help="weights file to write (e.g. codecs/weights/NAME.pt)")
    e.add_argument("--half", action="store_true", help="store floating tensors as float16 (half the size)")
    return parser


def _progress(total: int, start: int) -> Any:
    """A callback(step, total, terms): a rich bar on a terminal, else a line every 5 %."""
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                       TimeRemainingColumn(), TextColumn("{task.fields[terms]}"), transient=False)
        task = bar.add_task("training", total=total, completed=start, terms="")
        bar.start()

        def update(step: int, total: int, terms: dict[str, float]) -> None:
            bar.update(task, completed=step, terms=f"loss {terms['loss']:.3f} bpp {terms['bpp']:.3f}")
            if step >= total:
                bar.stop()

        return update
    t0, every = time.perf_counter(), max(1, total // 20)

    def line(step: int, total: int, terms: dict[str, float]) -> None:
        if step % every == 0 or step == total:
            done = step - start
            eta = (time.perf_counter() - t0) / max(done, 1) * (total - step)
            print(f"step {step}/{total} loss {terms['loss']:.4f} bpp {terms['bpp']:.4f} "
                  f"mse {terms['mse']:.6f} ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)

    return line


def train(args: argparse.Namespace) -> int:
    import torch

    from bench.codecs import registry
    from bench.training.data import TrainingSet, default_train_dir
    from bench.training.loop import Trainer, TrainOptions

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1 or args.lam <= 0 or args.batch < 1 or args.crop < 64 or args.crop % 64:
        raise ValueError("--steps and --batch must be >= 1, --lambda > 0, --crop a multiple of 64")
    configs = registry.load_configs()
    if args.codec not in configs:
        raise ValueError(f"no usable configuration {args.codec!r} (known: {', '.join(sorted(configs))})")
    codec = registry.create(configs[args.codec], device="cpu")
    if not hasattr(codec, "untrained_network"):
        raise ValueError(f"{args.codec}: adapter {codec.adapter!r} has no trainable network")
    options = TrainOptions(codec=args.codec, lam=args.lam, steps=args.steps, seed=args.seed, batch=args.batch,
                           crop=args.crop, lr=args.lr, init=str(args.init) if args.init else None)
    data = TrainingSet.load(args.train_dir or default_train_dir(), args.crop)
    trainer = Trainer(codec.untrained_network(args.seed), data, options, args.out,
                      checkpoint_every=args.checkpoint_every, eval_every=args.eval_every)
    resumed = trainer.resume()
    print(f"{args.codec} λ={args.lam}: {len(data.train)} training / {len(data.heldout)} held-out images; "
          f"{'resuming at step ' + str(trainer.step) if resumed else 'starting'} of {args.steps}", file=sys.stderr)
    final = trainer.run(_progress(args.steps, trainer.step))
    print(f"done: step {trainer.step}, held-out {final['bpp']:.4f} bpp (likelihoods), {final['psnr']:.2f} dB; "
          f"{trainer.wall_s / 3600:.2f} h wall, {trainer.cpu_s / 3600:.2f} CPU-h", file=sys.stderr)
    return 0


def export(args: argparse.Namespace) -> int:
    from bench.training.export import export_weights

    path, digest, lam = export_weights(args.run, args.to, half=args.half)
    print(f"{path} sha256 {digest}\nweights table for the configuration's [[rates]] entry (path relative to the TOML):")
    print(f'weights = {{ path = "{path.name}", sha256 = "{digest}", lambda = {lam}, metric = "mse", '
          f'licence = "…", source = "…" }}')
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return train(args) if args.command == "train" else export(args)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; run the same command to resume", file=sys.stderr)
        return 130
    except (BenchError, OSError, ValueError, FloatingPointError) as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
