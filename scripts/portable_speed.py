"""A/B cost of the portable path: encode/decode time (wall and CPU) and bytes, float32 vs portable.

    python scripts/portable_speed.py [--size 128x192] [--repeats 3] [--threads 2] [--codecs …]

Both variants of each codec are built in this process; their decodes are interleaved
(A B A B …) so machine load hits both alike; printed: median wall and CPU seconds of decode and
encode per variant, the ratios portable/float32, and the bytes of each stream.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="128x192")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--codecs", default="mlicpp-untrained,msp-fast,msp-base,mbt2018")
    args = parser.parse_args()
    import torch

    from bench.codecs import registry
    from tests.conftest import photo_like

    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    image = photo_like(h, w, 7)
    for name in args.codecs.split(","):
        config = registry.load_config(ROOT / "codecs" / f"{name}.toml")
        codecs, data, times = {}, {}, {}
        for path in ("float32", "portable"):
            cfg = dataclasses.replace(config, rates=config.rates[:1], params={**config.params, "portable": path == "portable"})
            codecs[path] = registry.create(cfg, device="cpu")
            times[path] = {"enc_wall": [], "enc_cpu": [], "dec_wall": [], "dec_cpu": []}
            codecs[path].decode(codecs[path].encode(image, cfg.rates[0]).data)  # warm-up (model build, caches)
        for _ in range(args.repeats):
            for path, codec in codecs.items():
                enc, ew, ec = timed(codec.encode, image, codec.config.rates[0])
                data[path] = enc.data
                _, dw, dc = timed(codec.decode, enc.data)
                for key, v in zip(("enc_wall", "enc_cpu", "dec_wall", "dec_cpu"), (ew, ec, dw, dc)):
                    times[path][key].append(v)
        med = {p: {k: statistics.median(v) for k, v in t.items()} for p, t in times.items()}
        a, b = med["float32"], med["portable"]
        print(f"{name:18s} {args.size} {args.threads} threads, median of {args.repeats}: "
              f"decode wall {a['dec_wall']:.2f} → {b['dec_wall']:.2f} s (×{b['dec_wall'] / a['dec_wall']:.2f}), "
              f"CPU {a['dec_cpu']:.2f} → {b['dec_cpu']:.2f} s (×{b['dec_cpu'] / a['dec_cpu']:.2f}); "
              f"encode wall ×{b['enc_wall'] / a['enc_wall']:.2f}, CPU ×{b['enc_cpu'] / a['enc_cpu']:.2f}; "
              f"bytes {len(data['float32'])} → {len(data['portable'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
