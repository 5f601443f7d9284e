"""CPU ↔ GPU decoding of every learned codec: encode on one device, decode on the other.

    python scripts/gpu_check.py [--sizes 128x192,256x384] [--images 3] [--float32]

For each learned codec (repository configurations, first rate point, untrained weights) the
images are encoded on CPU (2 threads) and decoded in a fresh process on CUDA, then encoded on
CUDA and decoded in a fresh process on CPU; printed: differing uint8 values per image against
the encoder's own decode (0 everywhere = bit-identical across devices). ``--float32`` runs the
float32 path (``portable = false``) instead, for comparison. Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEARNED = ("mlicpp-untrained", "msp-fast", "msp-base", "mbt2018")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="128x192,256x384")
    parser.add_argument("--images", type=int, default=3, help="seeded photo-like images per size")
    parser.add_argument("--codecs", default=",".join(LEARNED))
    parser.add_argument("--float32", action="store_true", help="the float32 path (portable = false)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    from bench.codecs import registry
    from bench.crossdecode import cross_check
    from tests.conftest import photo_like

    warnings.simplefilter("ignore")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    images = [photo_like(h, w, 1000 + i) for h, w in sizes for i in range(args.images)]
    failed = 0
    for name in args.codecs.split(","):
        config = registry.load_config(ROOT / "codecs" / f"{name}.toml")
        params = {**config.params, "portable": not args.float32}
        if args.float32 and config.adapter == "mlicpp":
            params["mode"] = "fast"
        config = dataclasses.replace(config, rates=config.rates[:1], params=params)
        for enc, dec in (("cpu", "cuda"), ("cuda", "cpu")):
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    result = cross_check(config, images, Path(tmp), decode_threads=(2,), device=enc, decode_device=dec)
                except Exception as exc:  # noqa: BLE001 — report and go on with the next codec
                    print(f"{name:18s} encode {enc:4s} → decode {dec:4s}: ERROR {type(exc).__name__}: {exc}")
                    failed += 1
                    continue
            mism = result["mismatches"][2]
            failed += any(mism)
            print(f"{name:18s} encode {enc:4s} → decode {dec:4s}: differing uint8 values per image {mism} "
                  f"(of {[h * w * 3 for h, w in sizes for _ in range(args.images)]}), bytes {result['bytes']}",
                  flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
