"""Cross-decode mismatch count and rate of every learned codec on Kodak: float32 path vs portable.

    BENCH_DATA_DIR=… python scripts/crossdecode_kodak.py [--images 24] [--rates 0] [--codecs …]

Per codec and path, each Kodak image at each rate point (``--rates 0``: all; N: the first N) is
encoded here with 2 threads and decoded in one fresh process with 1 thread (``--force-threads``:
MLIC++'s float32 decoder would otherwise pin the encoder's 2 threads and hide the difference).
Printed per codec and path: streams, streams whose image differs from the encoder's decode,
differing uint8 values, total bytes; then the portable path's rate change (± %).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEARNED = ("mlicpp-untrained", "msp-fast", "msp-base", "mbt2018")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24, help="the first N Kodak images (sorted)")
    parser.add_argument("--rates", type=int, default=0, help="the first N rate points (0: all)")
    parser.add_argument("--codecs", default=",".join(LEARNED))
    parser.add_argument("--paths", default="float32,portable")
    args = parser.parse_args()
    data = os.environ.get("BENCH_DATA_DIR")
    if not data or not Path(data, "kodak").is_dir():
        print("set BENCH_DATA_DIR to a folder holding kodak/", file=sys.stderr)
        return 2
    import numpy as np
    from PIL import Image

    from bench.codecs import registry
    from bench.crossdecode import cross_check

    warnings.simplefilter("ignore")
    files = sorted(Path(data, "kodak").glob("*.png"))[: args.images]
    pixels = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    print(f"{len(files)} images: {files[0].name} … {files[-1].name}")
    for name in args.codecs.split(","):
        config = registry.load_config(ROOT / "codecs" / f"{name}.toml")
        rates = config.rates if args.rates == 0 else config.rates[: args.rates]
        total = {}
        for path in args.paths.split(","):
            cfg = dataclasses.replace(config, rates=rates, params={**config.params, "portable": path == "portable"})
            # every (image, rate) pair: cross_check cycles rates by index, so repeat images per rate
            images = [p for p in pixels for _ in rates]
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                result = cross_check(cfg, images, Path(tmp), decode_threads=(1,), encode_threads=2, force=True)
            mism = result["mismatches"][1]
            total[path] = sum(result["bytes"])
            print(f"{name:18s} {path:8s}: {len(mism)} streams, {sum(m > 0 for m in mism)} decode differently with "
                  f"1 thread ({sum(mism)} uint8 values), decoder ran with {result['ran'][1]} threads, "
                  f"{total[path]} bytes, {time.perf_counter() - t0:.0f} s", flush=True)
        if len(total) == 2:
            print(f"{name:18s} rate of the portable path: {100 * (total['portable'] / total['float32'] - 1):+.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
