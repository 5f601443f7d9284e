"""MLIC++ decode against the arithmetic limit: ``python -m bench.tools.mlicpp_speed``.

In one process, for each size, every mode (same seeded untrained weights with gains, or
``--checkpoint``) encodes the same image once and then decodes it ``--repeats`` times,
interleaved (A B C, C B A, …), each decode split into parts:

- ``g_s``: the synthesis transform (forward hooks);
- ``hyper_decoder``: h_s (forward hooks);
- ``entropy_coding``: rANS decoding of y, the scale → CDF-index search and z decoding (timed wrappers);
- ``entropy_model``: the rest of the slice recursion: context, attention, LRP and entropy-parameter
  networks and the tensor glue between them (decode time minus the three parts above).

Each part gets its counted multiply-adds (:mod:`bench.models.macs`, under the same mode), its seconds
(from the fastest decode), and its achieved rate as a fraction of a 2048² float32 matmul timed in
the same process between the decodes (best of all). The arithmetic floor is counted FLOPs ÷ matmul
rate of the mode's dtype. Also: CPU time beside wall time, peak RSS growth of the decode, and the
bytes of every mode (the rate difference against ``reference``). Modes (``--modes``): ``reference``
(official float32 computation), ``fast`` (float32, Winograd convolutions), ``portable`` (float64,
Winograd: the codec's default) and ``fast-direct`` / ``portable-direct`` (the same with direct
convolutions). Writes a table, a JSON (``--json``) and one ``decode_parts`` row per size, mode
and part into the results store (``--results``); ``nox -s mlicpp_speed`` runs it.

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


#: mode → (MLICPlusPlus.configure arguments, dtype of its decoder path)
MODE_SETTINGS: dict[str, tuple[dict[str, bool], str]] = {
    "reference": ({"reference": True}, "float32"),
    "fast": ({}, "float32"),  # float32 path, Winograd convolutions
    "fast-direct": ({"winograd": False}, "float32"),
    "portable": ({"portable": True}, "float64"),  # the codec's default: float64, Winograd
    "portable-direct": ({"portable": True, "winograd": False}, "float64"),
}
DEFAULT_MODES = ("reference", "fast", "fast-direct", "portable", "portable-direct")


def _yardsticks(dtypes: set[str]) -> dict[str, float]:
    """Wall GFLOP/s of a 2048² matmul per dtype, timed now."""
    import torch

    from bench.device import matmul_gflops

    return {d: matmul_gflops(dtype=getattr(torch, d)) for d in sorted(dtypes)}


def measure_size(size: str, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Every mode on one image, decodes interleaved; returns the record of this size."""
    import torch

    from bench import device as dev
    from bench.device import matmul_cpu_gflops
    from bench.models.macs import model_complexity
    from bench.models.mlicpp import load_checkpoint, untrained_model
    from bench.models.mlicpp.profile import load_crop

    modes = args.modes
    image = load_crop(size, data_dir, args.source)
    h, w = image.shape[:2]
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float().div(255)
    models, streams, counts, timers, best = {}, {}, {}, {}, {}
    for mode in modes:
        model = load_checkpoint(args.checkpoint) if args.checkpoint else untrained_model(seed=args.seed)
        models[mode] = model.configure(**MODE_SETTINGS[mode][0])
        counts[mode] = model_complexity(model, h, w)  # direct multiply-adds, whatever algorithm runs
        streams[mode] = model.compress(x).data
        model.decompress(streams[mode])  # warm-up: kernels for this size
        timers[mode] = DecodeTimer(model)
    dtypes = {MODE_SETTINGS[m][1] for m in modes}
    rates = [_yardsticks(dtypes)]
    for r in range(args.repeats):
        for mode in modes if r % 2 == 0 else modes[::-1]:
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
        rates.append(_yardsticks(dtypes))
    record: dict[str, Any] = {"size": size, "width": w, "height": h, "threads": torch.get_num_threads(),
                              "matmul_gflops": {d: max(r[d] for r in rates) for d in dtypes},
                              "matmul_gflops_all": rates,
                              "matmul_gflop_per_cpu_s": {d: matmul_cpu_gflops(dtype=getattr(torch, d)) for d in dtypes},
                              "loadavg_1min": os.getloadavg()[0], "modes": {}}
    for mode in modes:
        c, b, dtype = counts[mode], best[mode], MODE_SETTINGS[mode][1]
        rate, cpu_rate = record["matmul_gflops"][dtype] * 1e9, record["matmul_gflop_per_cpu_s"][dtype] * 1e9
        parts = {}
        for part in PARTS:
            flops = 2 * c.macs(COUNTED[part])
            s, cs = b["seconds"][part], b["cpu_seconds"][part]
            parts[part] = {"seconds": s, "cpu_seconds": cs, "gflop": flops / 1e9,
                           "matmul_fraction": flops / s / rate if s > 0 else None,
                           "cpu_matmul_fraction": flops / cs / cpu_rate if cs > 0 else None}
        total_flops = 2 * c.decoder_macs
        record["modes"][mode] = {
            **b, "dtype": dtype, "parts": parts, "bytes": len(streams[mode]), "gflop": total_flops / 1e9,
            "dec_kmac_per_px": c.kmac_per_px(c.decoder_macs), "floor_s": total_flops / rate,
            "decode_over_floor": b["decode_s"] / (total_flops / rate),
            "matmul_fraction": total_flops / b["decode_s"] / rate,
            "cpu_floor_s": total_flops / cpu_rate, "cpu_matmul_fraction": total_flops / b["decode_cpu_s"] / cpu_rate,
        }
        del record["modes"][mode]["seconds"], record["modes"][mode]["cpu_seconds"]
    if "reference" in modes:
        ref = record["modes"]["reference"]
        for mode in modes:
            m = record["modes"][mode]
            m["over_reference"] = {
                "decode_s": m["decode_s"] / ref["decode_s"], "decode_cpu_s": m["decode_cpu_s"] / ref["decode_cpu_s"],
                **{p: m["parts"][p]["seconds"] / ref["parts"][p]["seconds"] for p in PARTS},
                **{f"{p}:cpu": m["parts"][p]["cpu_seconds"] / ref["parts"][p]["cpu_seconds"] for p in PARTS},
                "bytes_pct": 100.0 * (m["bytes"] / ref["bytes"] - 1.0),
            }
    return record


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(records: list[dict[str, Any]]) -> str:
    """The side-by-side table: per size, mode and part; ÷ref is the ratio to ``reference``."""
    lines = [f"{'size':>10} {'mode':>15} {'part':>15} {'seconds':>8} {'GFLOP':>8} {'of matmul':>9} {'÷ref':>6} "
             f"{'CPU s':>7} {'of matmul':>9} {'÷ref':>6}   (wall, then process CPU time; matmul of the mode's dtype)"]
    for r in records:
        for mode, m in r["modes"].items():
            ratios = m.get("over_reference", {})
            for part in PARTS:
                p = m["parts"][part]
                lines.append(f"{r['size']:>10} {mode:>15} {part:>15} {p['seconds']:>8.3f} {p['gflop']:>8.1f} "
                             f"{_num(p['matmul_fraction'], '.2f'):>9} {_num(ratios.get(part), '.2f'):>6} "
                             f"{p['cpu_seconds']:>7.3f} {_num(p['cpu_matmul_fraction'], '.2f'):>9} "
                             f"{_num(ratios.get(part + ':cpu'), '.2f'):>6}")
            lines.append(f"{r['size']:>10} {mode:>15} {'total':>15} {m['decode_s']:>8.3f} {m['gflop']:>8.1f} "
                         f"{m['matmul_fraction']:>9.2f} {_num(ratios.get('decode_s'), '.2f'):>6}   "
                         f"{m['dtype']}, cpu {m['decode_cpu_s']:.2f} s, floor {m['floor_s']:.3f} s (decode/floor "
                         f"{m['decode_over_floor']:.2f}; CPU: of matmul {m['cpu_matmul_fraction']:.2f}), "
                         f"{m['bytes']} bytes ({_num(ratios.get('bytes_pct'), '+.3f')} % vs reference), "
                         f"peak +{_num(m['peak_rss_growth_mb'], '.0f')} MB")
        rates = ", ".join(f"{d} {g:.1f} GFLOP/s ({r['matmul_gflop_per_cpu_s'][d]:.1f} per CPU s)"
                          for d, g in r["matmul_gflops"].items())
        lines.append(f"{r['size']:>10} matmul on {r['threads']} threads: {rates}; load {r['loadavg_1min']:.2f}")
    return "\n".join(lines)


def store_rows(records: list[dict[str, Any]], codec: str) -> list[dict[str, Any]]:
    """One ``decode_parts`` row per size, mode and part (and ``total``) for the results store."""
    from bench.machine import machine_info

    machine = machine_info()
    rows = []
    for r in records:
        for mode, m in r["modes"].items():
            base = {"codec": codec, "size": r["size"], "width": r["width"], "height": r["height"], "mode": mode,
                    "dtype": m["dtype"], "threads": r["threads"], "host": machine.get("host"),
                    "cpu_model": machine.get("cpu_model"), "matmul_gflops": r["matmul_gflops"][m["dtype"]],
                    "loadavg_1min": r["loadavg_1min"], "bytes": m["bytes"]}
            for part, p in m["parts"].items():
                rows.append({**base, "part": part, "seconds": p["seconds"], "cpu_seconds": p["cpu_seconds"],
                             "gflop": p["gflop"], "matmul_fraction": p["matmul_fraction"]})
            rows.append({**base, "part": "total", "seconds": m["decode_s"], "cpu_seconds": m["decode_cpu_s"],
                         "gflop": m["gflop"], "matmul_fraction": m["matmul_fraction"],
                         "peak_rss_growth_bytes": None if m["peak_rss_growth_mb"] is None
                         else int(m["peak_rss_growth_mb"] * 2**20)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["kodim01", "2048x1365"], help="kodim01 (768×512) or WxH crops")
    parser.add_argument("--source", default="imagecompression-info-subset/flower_foveon.png")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="decodes per mode, interleaved")
    parser.add_argument("--checkpoint", help="an official checkpoint instead of the untrained model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=list(MODE_SETTINGS),
                        help="computation modes, decoded interleaved (÷ref needs 'reference')")
    parser.add_argument("--json", type=Path, default=Path("reports/mlicpp_speed.json"))
    parser.add_argument("--results", type=Path, default=Path("results/mlicpp_speed"),
                        help="results store that gets one decode_parts row per size, mode and part")
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
    from bench.store import Store

    codec = f"mlicpp:{args.checkpoint}" if args.checkpoint else f"mlicpp-untrained:seed={args.seed}"
    with Store(args.results) as store:
        run_id = store.start_run({"command": command, "threads": args.threads, "torch": torch.__version__})
        store.add_decode_parts(run_id, store_rows(records, codec))
        store.finish_run(run_id, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    print(f"stored {args.results} (table decode_parts, run {run_id})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
