"""Decode stored bitstreams in a fresh process at a given thread count (``bench run --cross-decode``).

    python -m bench.crossdecode CONFIG.json --threads 1 [--device cpu] [--force-threads] STREAM.bin OUT.npy [STREAM OUT ...]

Each decoded H×W×3 uint8 array goes to its OUT.npy; the caller compares them with its own
decodes. The last stdout line is JSON: the torch thread count and device the decodes really ran
with (read from torch around each decode, not assumed from the request), so a caller can check
that the other count was in force. Bad arguments: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import procenv


def decode_files(config_path: str, pairs: list[tuple[str, str]], device: str, threads: int,
                 force: bool = False) -> dict:
    """Decode each (stream, out) pair with ``threads`` torch threads; what ran, as a dict.

    ``force``: also override a decoder that pins the encoder's thread count (MLIC++ float32
    streams), to measure what the pinning hides."""
    procenv.pin(threads)  # env vars first: math libraries read them when they load

    import numpy as np

    from bench.codecs import registry
    from bench.codecs.base import CodecConfig, RatePoint

    def torch_threads() -> int:  # codecs without torch run with the env-var count set above
        torch = sys.modules.get("torch")
        return torch.get_num_threads() if torch is not None else threads

    with open(config_path) as fh:
        doc = json.load(fh)
    doc["rates"] = tuple(RatePoint(r["label"], r["params"]) for r in doc["rates"])
    codec = registry.create(CodecConfig(**doc), device=device)
    if force and hasattr(codec, "decode_threads"):
        codec.decode_threads = threads
    seen: set[int] = set()
    for stream, out in pairs:
        procenv.pin(threads)  # again: a codec may pin threads for its encoder
        with open(stream, "rb") as fh:
            data = fh.read()
        seen.add(torch_threads())
        decoded = codec.decode(data)
        seen.add(getattr(codec, "last_decode_threads", None) or torch_threads())
        np.save(out, decoded)
    return {"threads": sorted(seen), "device": device, "decoded": len(pairs)}


def write_config(config: Any, path: Path) -> Path:
    """The codec configuration as the JSON file :func:`decode_files` reads."""
    path.write_text(json.dumps({**asdict(config), "rates": [asdict(r) for r in config.rates]}))
    return path


def decode_fresh(config_path: Path, streams: Sequence[Path], threads: int, device: str = "cpu",
                 timeout: float | None = None, force: bool = False) -> tuple[list[Any], list[int]]:
    """Decode ``streams`` in one fresh ``python -m bench.crossdecode`` process with ``threads``
    threads: (decoded arrays, thread counts the decodes ran with). ``RuntimeError`` if it fails.
    ``timeout``: seconds (a worker passes its run's limit); None: the limit this process was given
    (:func:`bench.procenv.timeout_s`), else half an hour."""
    import numpy as np

    outs = [Path(f"{s}.{device.replace(':', '_')}.t{threads}.npy") for s in streams]
    pairs = [str(p) for pair in zip(streams, outs) for p in pair]
    env = procenv.child_env(threads, python=True)
    cmd = [sys.executable, "-m", "bench.crossdecode", str(config_path), *pairs,
           "--threads", str(threads), "--device", device, *(["--force-threads"] if force else [])]
    limit = procenv.timeout_s(1800) if timeout is None else timeout
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=limit)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"
        raise RuntimeError(f"bench.crossdecode with {threads} threads failed: {tail}")
    ran = json.loads(proc.stdout.strip().splitlines()[-1])["threads"]
    return [np.load(o) for o in outs], ran


def cross_check(config: Any, images: Sequence[Any], workdir: Path, decode_threads: Sequence[int] = (1, 2),
                encode_threads: int = 2, device: str = "cpu", decode_device: str | None = None,
                force: bool = False) -> dict[str, Any]:
    """Encode ``images`` here with ``encode_threads`` threads (and decode them here: the reference),
    then decode the streams in one fresh process per count in ``decode_threads``.

    Returns ``{"bytes": [...], "mismatches": {threads: [differing uint8 values per image]},
    "ran": {threads: [counts the fresh process decoded with]}}``.
    """
    import numpy as np
    import torch  # noqa: F401 — loaded first, so that pinned_for restores its count afterwards

    from bench.codecs import registry

    with procenv.pinned_for(encode_threads):
        codec = registry.create(config, device=device)
        streams, reference = [], []
        for i, image in enumerate(images):
            encoded = codec.encode(image, config.rates[i % len(config.rates)])
            data = getattr(encoded, "data", encoded)
            streams.append(Path(workdir, f"stream{i}.bin"))
            streams[-1].write_bytes(data)
            reference.append(codec.decode(data))
        codec.close()
    cfg = write_config(config, Path(workdir, "config.json"))
    out: dict[str, Any] = {"bytes": [p.stat().st_size for p in streams], "mismatches": {}, "ran": {}}
    for threads in decode_threads:
        decoded, out["ran"][threads] = decode_fresh(cfg, streams, threads, decode_device or device, force=force)
        out["mismatches"][threads] = [
            int((a != b).sum()) if a.shape == b.shape else int(b.size) for a, b in zip(decoded, reference)
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crossdecode")
    parser.add_argument("config")
    parser.add_argument("files", nargs="+", metavar="STREAM OUT", help="pairs: stream file, output .npy")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--force-threads", action="store_true",
                        help="override decoders that pin the encoder's thread count (MLIC++ float32 streams)")
    args = parser.parse_args(argv)
    if len(args.files) % 2 or args.threads < 1:
        parser.error("give STREAM OUT pairs and --threads ≥ 1")
    pairs = list(zip(args.files[::2], args.files[1::2]))
    print(json.dumps(decode_files(args.config, pairs, args.device, args.threads, args.force_threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
