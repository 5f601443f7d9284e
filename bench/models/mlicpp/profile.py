"""Time and memory of MLIC++ coding vs image size: ``python -m bench.models.mlicpp.profile``.

Every size runs in its own child process (so its peak RSS is its own): build the model (untrained
by default, or ``--checkpoint``), encode/decode a centre crop once as warm-up (oneDNN kernel
generation), then time encode and decode (best of ``--repeats``), per top-level module too, and
read the peak RSS (VmHWM). The same child times a fixed reference workload — a 2048×2048 fp32
matmul on the same threads — so figures compare across machines and loads. The parent fits the
log-log exponent of time and memory against pixels (1.0 = linear) and prints a table. CPU time
(process time) is recorded too: with ``--threads 1`` it is the robust measure of work on a shared
machine, where wall time with several threads suffers badly from other processes.

Crops come from the large images under ``$BENCH_DATA_DIR`` (default source
``imagecompression-info-subset/flower_foveon.png``, 2268×1512); ``kodim01`` is the 768×512 Kodak
image itself. Keep runs short on shared machines: the 2048×1365 point takes a while.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_SIZES = ("256x256", "512x512", "768x512", "1024x1024", "2048x1365")
DEFAULT_SOURCE = "imagecompression-info-subset/flower_foveon.png"
TOP_MODULES = (
    "g_a", "h_a", "h_s", "g_s", "local_context", "channel_context", "global_inter_context",
    "global_intra_context", "entropy_parameters_anchor", "entropy_parameters_nonanchor", "lrp_anchor",
    "lrp_nonanchor",
)


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def reference_workload(repeats: int = 5) -> float:
    """Seconds for one 2048×2048 fp32 matmul (best of ``repeats``) on the current threads."""
    from bench.device import matmul_gflops

    return 2 * 2048**3 / (matmul_gflops(2048, repeats) * 1e9)


def load_crop(spec: str, data_dir: Path, source: str):
    """``WxH`` centre crop of ``source`` (or ``kodim01``: the whole 768×512 Kodak image)."""
    import numpy as np
    from PIL import Image

    if spec == "kodim01":
        return np.asarray(Image.open(data_dir / "kodak" / "kodim01.png").convert("RGB"))
    w, h = (int(v) for v in spec.lower().split("x"))
    image = np.asarray(Image.open(data_dir / source).convert("RGB"))
    H, W = image.shape[:2]
    if h > H or w > W:
        raise SystemExit(f"{source} is {W}×{H}, too small for a {w}×{h} crop")
    top, left = (H - h) // 2, (W - w) // 2
    return np.ascontiguousarray(image[top:top + h, left:left + w])


class ModuleTimer:
    """Wall time per top-level module via forward hooks (inclusive of their children)."""

    def __init__(self, model):
        self.seconds: dict[str, float] = {}
        self._start: dict[int, float] = {}
        for name in TOP_MODULES:
            module = getattr(model, name)
            parts = [m for m in module if m is not None] if hasattr(module, "__iter__") else [module]
            for part in parts:
                part.register_forward_pre_hook(self._pre)
                part.register_forward_hook(self._post(name))

    def _pre(self, module, args):
        self._start[id(module)] = time.perf_counter()

    def _post(self, name):
        def hook(module, args, output):
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - self._start.pop(id(module))
        return hook


def child(args: argparse.Namespace) -> dict:
    """Measure one size in this process; returns the record."""
    import torch

    torch.set_num_threads(args.threads)
    from bench.models.mlicpp import load_checkpoint, untrained_model

    data_dir = Path(os.environ.get("BENCH_DATA_DIR", ""))
    image = load_crop(args.child, data_dir, args.source)
    matmul_s = reference_workload()
    model = load_checkpoint(args.checkpoint) if args.checkpoint else untrained_model(seed=args.seed)
    model.configure(reference=args.mode == "reference")
    model.fingerprint()
    rss_model = _current_rss_mb()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)
    result = model.compress(x)  # warm-up: kernel generation for this size
    model.decompress(result.data)
    timer = ModuleTimer(model) if args.modules else None
    encode, decode, enc_cpu, dec_cpu, enc_modules, dec_modules = [], [], [], [], {}, {}
    for _ in range(args.repeats):
        if timer:
            timer.seconds = {}
        t, c = time.perf_counter(), time.process_time()
        result = model.compress(x)
        encode.append(time.perf_counter() - t)
        enc_cpu.append(time.process_time() - c)
        if timer and encode[-1] == min(encode):
            enc_modules = dict(timer.seconds)
        if timer:
            timer.seconds = {}
        t, c = time.perf_counter(), time.process_time()
        model.decompress(result.data)
        decode.append(time.perf_counter() - t)
        dec_cpu.append(time.process_time() - c)
        if timer and decode[-1] == min(decode):
            dec_modules = dict(timer.seconds)
    stats = result.stats
    return {
        "size": args.child, "width": image.shape[1], "height": image.shape[0],
        "pixels": int(image.shape[0] * image.shape[1]), "threads": args.threads, "mode": args.mode,
        "encode_s": min(encode), "decode_s": min(decode), "encode_all_s": encode, "decode_all_s": decode,
        "encode_cpu_s": min(enc_cpu), "decode_cpu_s": min(dec_cpu), "loadavg_1min": os.getloadavg()[0],
        "peak_rss_mb": _peak_rss_mb(), "rss_after_model_mb": rss_model, "matmul_2048_s": matmul_s,
        "bytes": len(result.data), "y_nonzero_fraction": stats["y_nonzero"] / stats["y_symbols"],
        "y_escaped": stats["y_escaped"], "encode_modules_s": enc_modules, "decode_modules_s": dec_modules,
        "torch": torch.__version__,
    }


def fit_exponent(pixels: list[float], values: list[float]) -> float:
    """Slope of log(value) against log(pixels)."""
    import numpy as np

    if len(pixels) < 2:
        return float("nan")
    return float(np.polyfit(np.log(pixels), np.log(values), 1)[0])


def report(records: list[dict]) -> str:
    rows = sorted((r for r in records if r["size"] != "kodim01"), key=lambda r: r["pixels"])
    lines = [f"{'size':>10} {'pixels':>9} {'encode s':>9} {'decode s':>9} {'enc cpu s':>9} {'dec cpu s':>9} "
             f"{'peak MB':>8} {'above model MB':>14} {'matmul s':>9} {'load':>5}"]
    for r in sorted(records, key=lambda r: (r["size"] != "kodim01", r["pixels"])):
        lines.append(f"{r['size']:>10} {r['pixels']:>9} {r['encode_s']:>9.3f} {r['decode_s']:>9.3f} "
                     f"{r['encode_cpu_s']:>9.3f} {r['decode_cpu_s']:>9.3f} "
                     f"{r['peak_rss_mb']:>8.0f} {r['peak_rss_mb'] - r['rss_after_model_mb']:>14.0f} "
                     f"{r['matmul_2048_s']:>9.4f} {r['loadavg_1min']:>5.2f}")
    if len(rows) >= 2:
        px = [r["pixels"] for r in rows]
        lines.append("log-log exponents vs pixels (1.0 = linear):")
        for key, label in (("encode_s", "encode time"), ("decode_s", "decode time"),
                           ("encode_cpu_s", "encode CPU time"), ("decode_cpu_s", "decode CPU time"),
                           ("peak_rss_mb", "peak RSS")):
            lines.append(f"  {label:<22} {fit_exponent(px, [r[key] for r in rows]):.3f}")
        above = [r["peak_rss_mb"] - r["rss_after_model_mb"] for r in rows]
        lines.append(f"  {'peak RSS above model':<22} {fit_exponent(px, above):.3f}")
        for side in ("encode_modules_s", "decode_modules_s"):
            names = sorted({n for r in rows for n in r[side]})
            if names and all(r[side] for r in rows):
                exps = {n: fit_exponent(px, [max(r[side].get(n, 0.0), 1e-9) for r in rows]) for n in names}
                lines.append(f"  {side[:6]} per module: " + ", ".join(
                    f"{n} {e:.2f} ({rows[-1][side].get(n, 0):.2f}s)" for n, e in sorted(exps.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES) + ["kodim01"],
                        help="WxH centre crops, or kodim01 (default: %(default)s)")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="image under $BENCH_DATA_DIR to crop")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mode", choices=("fast", "reference"), default="fast")
    parser.add_argument("--checkpoint", help="an official checkpoint instead of the untrained model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modules", action="store_true", help="also time each top-level module")
    parser.add_argument("--json", type=Path, help="write all records here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    if not os.environ.get("BENCH_DATA_DIR"):
        parser.error("set BENCH_DATA_DIR (the datasets folder)")
    records = []
    for size in args.sizes:
        cmd = [sys.executable, "-m", "bench.models.mlicpp.profile", "--child", size, "--source", args.source,
               "--threads", str(args.threads), "--repeats", str(args.repeats), "--mode", args.mode,
               "--seed", str(args.seed)] + (["--checkpoint", args.checkpoint] if args.checkpoint else []) + (
               ["--modules"] if args.modules else [])
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            print(f"{size}: failed\n{run.stderr[-2000:]}", file=sys.stderr)
            continue
        record = json.loads(run.stdout.strip().splitlines()[-1])
        records.append(record)
        print(f"{size}: encode {record['encode_s']:.3f} s, decode {record['decode_s']:.3f} s, "
              f"peak {record['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    print(report(records))
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
