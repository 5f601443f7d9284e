"""Decode a stored bitstream in a fresh process (used by ``bench run --cross-decode``).

    python -m bench.crossdecode CONFIG.json STREAM.bin OUT.npy --device cpu --threads 1

Writes the decoded H×W×3 uint8 array to OUT.npy; the caller compares it with its own decode.
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.worker import set_thread_count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crossdecode")
    parser.add_argument("config")
    parser.add_argument("stream")
    parser.add_argument("out")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_thread_count(args.threads)

    import numpy as np

    from bench.codecs import registry
    from bench.codecs.base import CodecConfig, RatePoint

    doc = json.loads(open(args.config).read())
    doc["rates"] = tuple(RatePoint(r["label"], r["params"]) for r in doc["rates"])
    config = CodecConfig(**doc)
    codec = registry.create(config, device=args.device)
    set_thread_count(args.threads)  # again: the codec may have imported torch
    with open(args.stream, "rb") as fh:
        decoded = codec.decode(fh.read())
    np.save(args.out, decoded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
