"""Time the vectorised BD bootstrap against a loop over resamples (scipy, one curve pair per call).

    PYTHONPATH=$PWD python benchmarks/bd_bootstrap.py [--images 24] [--points 6] [--resamples 1000]

Synthetic per-image curves (each image its own quality offset and bit factor; the test codec saves
5–15 % per image), average-curve convention, paired anchor, pchip. Runs A B A B … and prints wall
and CPU time of each, and checks both give the same interval.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from bench.analysis.bd import bd, bootstrap_bd
from bench.analysis.bd.bootstrap import draw_weights, percentile_interval


def rows(n_images: int, n_points: int, saving: np.ndarray | None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    offsets, bits = rng.uniform(26, 36, n_images), rng.uniform(0.5, 3, n_images)
    ladder = 0.1 * 2.0 ** np.arange(n_points)
    factor = np.ones(n_images) if saving is None else saving
    return pd.DataFrame([dict(image=f"i{i:02d}", rate_label=f"q{k}", bpp=b * bits[i] * factor[i],
                              psnr_rgb=offsets[i] + 9 * np.log10(b)) for i in range(n_images)
                         for k, b in enumerate(ladder)])


def loop(test: pd.DataFrame, anchor: pd.DataFrame, n_resamples: int, seed: int) -> tuple[float, float]:
    """The reference: one scipy BD per resample on the weighted average curves."""
    weights = draw_weights(test["image"].nunique(), n_resamples, seed)
    t = test.pivot(index="image", columns="rate_label")
    a = anchor.pivot(index="image", columns="rate_label")
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for w in weights:
            values.append(bd(w @ a["bpp"].to_numpy(), w @ a["psnr_rgb"].to_numpy(),
                             w @ t["bpp"].to_numpy(), w @ t["psnr_rgb"].to_numpy()).value)
    return percentile_interval(np.array(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    saving = np.random.default_rng(1).uniform(0.85, 0.95, args.images)
    test, anchor = rows(args.images, args.points, saving), rows(args.images, args.points, None)
    timings: dict[str, list[tuple[float, float]]] = {"vectorised": [], "loop": []}
    results = {}
    for _ in range(args.repeats):  # interleaved: A B A B
        for name in ("vectorised", "loop"):
            wall, cpu = time.perf_counter(), time.process_time()
            if name == "vectorised":
                ci = bootstrap_bd(test, anchor, n_resamples=args.resamples)
                results[name] = (ci.low, ci.high)
            else:
                results[name] = loop(test, anchor, args.resamples, 0)
            timings[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    for name, runs in timings.items():
        walls, cpus = zip(*runs)
        print(f"{name:10s} wall median {np.median(walls):.4f} s  cpu median {np.median(cpus):.4f} s  "
              f"interval [{results[name][0]:+.4f}, {results[name][1]:+.4f}] %")
    assert np.allclose(results["vectorised"], results["loop"], atol=1e-8), results


if __name__ == "__main__":
    main()
