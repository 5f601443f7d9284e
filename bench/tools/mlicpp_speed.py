"""MLIC++ decode against the arithmetic limit: ``python -m bench.tools.mlicpp_speed``.

In one process, for each size, the ``reference`` and ``fast`` modes (same seeded untrained weights
with gains, or ``--checkpoint``) encode the same image once and then decode it ``--repeats``
times, interleaved (A B, B A, …), each decode split into parts:

- ``g_s``: the synthesis transform (forward hooks);
- ``hyper_decoder``: h_s (forward hooks);
- ``entropy_coding``: rANS decoding of y, the scale → CDF-index search and z decoding (timed wrappers);
- ``entropy_model``: the rest of the slice recursion: context, attention, LRP and entropy-parameter
  networks and the tensor glue between them (decode time minus the three parts above).

Each part gets its counted multiply-adds (:mod:`bench.complexity`, under the same mode), its seconds
(from the fastest decode), and its achieved rate as a fraction of a 2048² float32 matmul timed in
the same process between the decodes (best of all). The arithmetic floor is counted FLOPs ÷ matmul
rate. Also: CPU time beside wall time, peak RSS growth of the decode, and the bytes of both modes
(the rate difference of ``fast`` against ``reference``). Writes a JSON (``--json``) and a table.

Images: ``kodim01`` is the 768×512 Kodak image; ``WxH`` a centre crop of
``imagecompression-info-subset/flower_foveon.png`` (under ``$BENCH_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PARTS = ("g_s", "hyper_decoder", "entropy_model", "entropy_coding")
COUNTED = {"g_s": ("synthesis",), "hyper_decoder": ("hyper_synthesis",), "entropy_model": ("context",),
           "entropy_coding": ()}
MODES = ("reference", "fast")


class DecodeTimer:
    """Wall seconds per part of :meth:`MLICPlusPlus.decompress` (see the module docstring)."""

    active: "DecodeTimer | None" = None  # the timer of the decode in progress (rANS calls go to it)

    def __init__(self, model: Any):
        self.seconds: dict[str, float] = defaultdict(float)  # wall; "<part>:cpu" the process CPU time
        self._t0: dict[str, tuple[float, float]] = {}
        for name, part in (("g_s", "g_s"), ("h_s", "hyper_decoder")):
            module = getattr(model, name)
            module.register_forward_pre_hook(lambda *_, p=part: self._t0.__setitem__(p, _now()))
            module.register_forward_hook(lambda *_, p=part: self._add(p))
        model.build_indexes = self._timed(model.build_indexes)
        eb = model.entropy_bottleneck
        eb.decompress = self._timed(eb.decompress)

    def _add(self, part: str, start: tuple[float, float] | None = None) -> None:
        wall, cpu = _now()
        wall0, cpu0 = start or self._t0.pop(part)
        self.seconds[part] += wall - wall0
        self.seconds[f"{part}:cpu"] += cpu - cpu0

    def _timed(self, fn: Any) -> Any:
        def call(*args, **kwargs):
            start = _now()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add("entropy_coding", start)
        return call

    def parts(self, total: float, cpu: bool = False) -> dict[str, float]:
        """Seconds per part (wall, or the process's CPU time); the entropy model is the remainder."""
        suffix = ":cpu" if cpu else ""
        out = {p: self.seconds.get(p + suffix, 0.0) for p in ("g_s", "hyper_decoder", "entropy_coding")}
        out["entropy_model"] = total - sum(out.values())
        return out


@contextlib.contextmanager
def timed_rans() -> Iterator[None]:
    """Within: the rANS decoder MLICPlusPlus.decompress creates times its calls into the active timer."""
    import bench.models.mlicpp.model as model_module

    original = model_module.RansDecoder

    class TimedRansDecoder:
        def __init__(self):
            self._dec = original()

        def set_stream(self, s):
            self._dec.set_stream(s)

        def decode_stream(self, *args):
            timer = DecodeTimer.active
            return (timer._timed(self._dec.decode_stream) if timer else self._dec.decode_stream)(*args)

    model_module.RansDecoder = TimedRansDecoder
    try:
        yield
    finally:
        model_module.RansDecoder = original
        DecodeTimer.active = None


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def measure_size(size: str, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Both modes on one image, decodes interleaved; returns the record of this size."""
    import torch

    from bench import device as dev
    from bench.complexity import matmul_cpu_gflops, matmul_gflops, model_complexity
    from bench.models.mlicpp import load_checkpoint, untrained_model
    from bench.models.mlicpp.profile import load_crop

    image = load_crop(size, data_dir, args.source)
    h, w = image.shape[:2]
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)
    models, streams, counts, timers, best = {}, {}, {}, {}, {}
    for mode in MODES:
        model = load_checkpoint(args.checkpoint) if args.checkpoint else untrained_model(seed=args.seed)
        models[mode] = model.configure(reference=mode == "reference")
        counts[mode] = model_complexity(model, h, w)
        streams[mode] = model.compress(x).data
        model.decompress(streams[mode])  # warm-up: oneDNN kernels for this size
        timers[mode] = DecodeTimer(model)
    rates = [matmul_gflops()]
    for r in range(args.repeats):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            timer = timers[mode]
            timer.seconds.clear()
            DecodeTimer.active = timer
            before = dev.host_rss()
            dev.reset_host_peak()
            t, c = time.perf_counter(), time.process_time()
            with timed_rans():
                models[mode].decompress(streams[mode])
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            peak = dev.host_peak_rss()
            if mode not in best or wall < best[mode]["decode_s"]:
                best[mode] = {"decode_s": wall, "decode_cpu_s": cpu, "seconds": timer.parts(wall),
                              "cpu_seconds": timer.parts(cpu, cpu=True),
                              "peak_rss_growth_mb": (peak - before) / 2**20 if peak and before else None}
            rates.append(matmul_gflops())
    rate = max(rates) * 1e9  # FLOP/s
    cpu_rate = matmul_cpu_gflops() * 1e9  # FLOP per CPU second: robust to other load on the machine
    record: dict[str, Any] = {"size": size, "width": w, "height": h, "threads": torch.get_num_threads(),
                              "matmul_gflops": rate / 1e9, "matmul_gflops_all": rates,
                              "matmul_gflop_per_cpu_s": cpu_rate / 1e9,
                              "loadavg_1min": os.getloadavg()[0], "modes": {}}
    for mode in MODES:
        c, b = counts[mode], best[mode]
        parts = {}
        for part in PARTS:
            flops = 2 * c.macs(COUNTED[part])
            s, cs = b["seconds"][part], b["cpu_seconds"][part]
            parts[part] = {"seconds": s, "cpu_seconds": cs, "gflop": flops / 1e9,
                           "matmul_fraction": flops / s / rate if s > 0 else None,
                           "cpu_matmul_fraction": flops / cs / cpu_rate if cs > 0 else None}
        total_flops = 2 * c.decoder_macs
        record["modes"][mode] = {
            **b, "parts": parts, "bytes": len(streams[mode]), "gflop": total_flops / 1e9,
            "dec_kmac_per_px": c.kmac_per_px(c.decoder_macs), "floor_s": total_flops / rate,
            "decode_over_floor": b["decode_s"] / (total_flops / rate),
            "matmul_fraction": total_flops / b["decode_s"] / rate,
            "cpu_floor_s": total_flops / cpu_rate, "cpu_matmul_fraction": total_flops / b["decode_cpu_s"] / cpu_rate,
        }
        del record["modes"][mode]["seconds"], record["modes"][mode]["cpu_seconds"]
    ref, fast = record["modes"]["reference"], record["modes"]["fast"]
    record["fast_over_reference"] = {
        "decode_s": fast["decode_s"] / ref["decode_s"],
        "decode_cpu_s": fast["decode_cpu_s"] / ref["decode_cpu_s"],
        **{p: fast["parts"][p]["seconds"] / ref["parts"][p]["seconds"] for p in PARTS},
        **{f"{p}:cpu": fast["parts"][p]["cpu_seconds"] / ref["parts"][p]["cpu_seconds"] for p in PARTS},
        "bytes_pct": 100.0 * (fast["bytes"] / ref["bytes"] - 1.0),
    }
    return record


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def table(records: list[dict[str, Any]]) -> str:
    """The side-by-side table: per size, mode and part."""
    lines = [f"{'size':>10} {'mode':>9} {'part':>15} {'seconds':>8} {'GFLOP':>8} {'of matmul':>9} {'fast/ref':>8} "
             f"{'CPU s':>7} {'of matmul':>9} {'fast/ref':>8}   (wall, then process CPU time)"]
    for r in records:
        for mode in MODES:
            m = r["modes"][mode]
            for part in PARTS:
                p = m["parts"][part]
                frac = f"{p['matmul_fraction']:.2f}" if p["matmul_fraction"] is not None else "-"
                ratio = f"{r['fast_over_reference'][part]:.2f}" if mode == "fast" else ""
                cratio = f"{r['fast_over_reference'][part + ':cpu']:.2f}" if mode == "fast" else ""
                cfrac = f"{p['cpu_matmul_fraction']:.2f}" if p["cpu_matmul_fraction"] is not None else "-"
                lines.append(f"{r['size']:>10} {mode:>9} {part:>15} {p['seconds']:>8.3f} {p['gflop']:>8.1f} "
                             f"{frac:>9} {ratio:>8} {p['cpu_seconds']:>7.3f} {cfrac:>9} {cratio:>8}")
            ratio = f"{r['fast_over_reference']['decode_s']:.2f}" if mode == "fast" else ""
            lines.append(f"{r['size']:>10} {mode:>9} {'total':>15} {m['decode_s']:>8.3f} {m['gflop']:>8.1f} "
                         f"{m['matmul_fraction']:>9.2f} {ratio:>8}   cpu {m['decode_cpu_s']:.2f} s, floor "
                         f"{m['floor_s']:.3f} s (decode/floor {m['decode_over_floor']:.2f}; CPU: floor "
                         f"{m['cpu_floor_s']:.2f} s, of matmul {m['cpu_matmul_fraction']:.2f}), {m['bytes']} bytes, "
                         f"peak +{_mb(m['peak_rss_growth_mb'])} MB")
        lines.append(f"{r['size']:>10} matmul {r['matmul_gflops']:.1f} GFLOP/s on {r['threads']} threads "
                     f"({r['matmul_gflop_per_cpu_s']:.1f} GFLOP per CPU s), load "
                     f"{r['loadavg_1min']:.2f}; fast vs reference bytes {r['fast_over_reference']['bytes_pct']:+.3f} %")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["kodim01", "2048x1365"], help="kodim01 (768×512) or WxH crops")
    parser.add_argument("--source", default="imagecompression-info-subset/flower_foveon.png")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="decodes per mode, interleaved")
    parser.add_argument("--checkpoint", help="an official checkpoint instead of the untrained model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path("reports/mlicpp_speed.json"))
    args = parser.parse_args(argv)
    if not os.environ.get("BENCH_DATA_DIR"):
        parser.error("set BENCH_DATA_DIR (the datasets folder)")
    import torch

    torch.set_num_threads(args.threads)
    records = []
    for size in args.sizes:
        records.append(measure_size(size, args, Path(os.environ["BENCH_DATA_DIR"])))
        print(f"{size} done", file=sys.stderr, flush=True)
    print(table(records))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "-m", "bench.tools.mlicpp_speed", *sys.argv[1:]])
    args.json.write_text(json.dumps({"command": command, "torch": torch.__version__, "records": records},
                                    indent=1))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
