"""Learned decoders split into parts, against the arithmetic floor: ``python -m bench.tools.decode_parts``.

``--codecs msp-fast,mbt2018`` (any learned configuration whose codec has ``decode_parts``): in one
process, for each size, every codec and mode (``--modes``: configuration overrides, e.g. ``fast``
= float32, ``portable`` = float64) encodes the same image once at its first rate point (``--rate``)
and then decodes it ``--repeats`` times per thread count (``--threads 1,2``), interleaved
(A B C, C B A, …). Each decode is split into the parts the codec names
(:mod:`bench.models.decodeparts`: ``g_s``, ``h_s``, ``context``, ``entropy_coding``, ``rest``),
wall and process CPU time. Per part: counted GFLOP (:mod:`bench.models.macs`: 2 per direct
multiply-add) and the fraction of a 2048² matmul of the mode's dtype timed in the same run between
the decodes (best of all, per thread count); the arithmetic floor is counted FLOPs ÷ that rate, and
``decode/floor`` the decode's distance to it (1.0 = at the machine's matmul rate). The fastest
decode of each unit counts. ``--versus A:B`` prints B's decode time ÷ A's, wall and CPU, per size
and thread count (same mode). The first timed decode is checked to give the pixels of an
uninstrumented one. Writes a table, a JSON (``--json``) and one ``decode_parts`` row per size, codec,
mode, thread count and part (and ``total``) into the results store (``--results``; the report shows
them). ``nox -s decode_parts`` runs it.

Images: ``kodim01`` is the 768×512 Kodak image; ``WxH`` a centre crop of ``--source`` under
``$BENCH_DATA_DIR`` (default ``imagecompression-info-subset/flower_foveon.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import parse_size
from bench.errors import BenchError
from bench.images import centre_crop, load_image
from bench.models.decodeparts import COUNTED, PARTS

#: ``--modes``: configuration overrides; a mode applies to a codec whose adapter declares its keys
MODES: dict[str, dict[str, Any]] = {
    "default": {},  # the configuration as it is
    "portable": {"portable": True},  # float64 decoder path
    "fast": {"portable": False},  # float32
    "portable-direct": {"winograd": False},  # MLIC++ without Winograd convolutions
    "fast-direct": {"portable": False, "winograd": False},
    "reference": {"mode": "reference", "portable": False, "winograd": False},  # MLIC++'s official computation
}


class Unit:
    """One codec in one mode: its stream, counted work, part split and best decode."""

    def __init__(self, codec: Any, mode: str, rate_index: int, image: Any, warm_up: bool = True):
        import numpy as np

        from bench.models.macs import model_complexity
        from bench.models.decodeparts import PartTimer

        self.codec, self.mode = codec, mode
        if rate_index >= len(codec.config.rates):
            raise ValueError(f"--rate {rate_index}: the ladder has {len(codec.config.rates)} rate points")
        self.rate = codec.config.rates[rate_index]
        own = getattr(codec, "decode_parts", None)  # learned codecs (bench.codecs.learned)
        parts = own(self.rate) if callable(own) else None
        if parts is None:
            raise ValueError(f"{codec.name} does not split its decode into parts (its codec has no decode_parts)")
        self.data = codec.encode(image, self.rate).data
        self.timer, self.dtype = PartTimer(parts), parts.dtype
        h, w = image.shape[:2]
        self.counted = model_complexity(codec.memory_model(self.rate), h, w)
        self.warm = warm_up
        self.pixels = codec.decode(self.data) if warm_up else None  # kernels for this size, uninstrumented
        self.identical: dict[int, bool | None] = {}  # thread count → first instrumented decode == uninstrumented
        self.best: dict[int, dict[str, Any]] = {}
        self._same = lambda out: bool(np.array_equal(out, self.pixels))

    def warm_up(self) -> None:
        """An uninstrumented decode at the current thread count: the pixels the timed ones must give
        (skipped with ``--no-warm-up``: then nothing is compared)."""
        if self.warm:
            self.pixels = self.codec.decode(self.data)

    @property
    def key(self) -> str:
        return f"{self.codec.name}/{self.mode}"

    def decode(self, threads: int) -> None:
        """One instrumented decode; kept if it is the fastest at ``threads``."""
        from bench import device as dev

        self.timer.clear()
        before = dev.host_rss()
        dev.reset_host_peak()
        with self.timer.attached():
            t, c = time.perf_counter(), time.process_time()
            out = self.codec.decode(self.data)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
        peak = dev.host_peak_rss()
        if threads not in self.identical:
            self.identical[threads] = self._same(out) if self.pixels is not None else None
        if threads not in self.best or wall < self.best[threads]["decode_s"]:
            self.best[threads] = {"decode_s": wall, "decode_cpu_s": cpu, "split": self.timer.split(wall, cpu),
                                  "peak_rss_growth_bytes": peak - before if peak and before else None}


def _yardsticks(dtypes: set[str]) -> dict[str, float]:
    """Wall GFLOP/s of a 2048² matmul per dtype, timed now."""
    import torch

    from bench.device import matmul_gflops

    return {d: matmul_gflops(dtype=getattr(torch, d)) for d in sorted(dtypes)}


def record_of(unit: Unit, threads: int, rate: float, cpu_rate: float) -> dict[str, Any]:
    """The stored numbers of one unit at one thread count (``rate``: matmul FLOP/s, wall and CPU)."""
    c, b = unit.counted, unit.best[threads]
    parts = {}
    for part in PARTS:
        flops = 2 * c.macs(COUNTED[part])
        s, cs = b["split"][part]["seconds"], b["split"][part]["cpu_seconds"]
        if part not in unit.timer.parts.modules and part not in ("entropy_coding", "rest") and not flops:
            continue  # the codec has no such part (MSP: no h_s)
        parts[part] = {"seconds": s, "cpu_seconds": cs, "gflop": flops / 1e9,
                       # no counted work (entropy coding): no fraction, rather than a misleading 0
                       "matmul_fraction": flops / s / rate if s > 0 and flops else None,
                       "cpu_matmul_fraction": flops / cs / cpu_rate if cs > 0 and flops else None}
    flops = 2 * c.decoder_macs
    floor = flops / rate
    return {"codec": unit.codec.name, "mode": unit.mode, "rate": unit.rate.label, "dtype": unit.dtype,
            "threads": threads, "bytes": len(unit.data), "identical_to_uninstrumented": unit.identical[threads],
            "decode_s": b["decode_s"], "decode_cpu_s": b["decode_cpu_s"], "gflop": flops / 1e9,
            "dec_kmac_per_px": c.kmac_per_px(c.decoder_macs), "floor_s": floor,
            "decode_over_floor": b["decode_s"] / floor if floor else None,
            "matmul_fraction": flops / b["decode_s"] / rate, "cpu_floor_s": flops / cpu_rate,
            "cpu_matmul_fraction": flops / b["decode_cpu_s"] / cpu_rate,
            "peak_rss_growth_bytes": b["peak_rss_growth_bytes"], "parts": parts}


def measure_size(size: str, units: list[Unit], threads: list[int], repeats: int) -> dict[str, Any]:
    """Every unit decoded interleaved at every thread count; the record of this size."""
    import torch

    from bench.device import matmul_cpu_gflops

    dtypes = {u.dtype for u in units}
    record: dict[str, Any] = {"size": size, "by_threads": []}
    for i, t in enumerate(threads):
        torch.set_num_threads(t)
        for u in units:
            u.warm_up()
        rates = [_yardsticks(dtypes)]
        for r in range(repeats):
            for u in units if (i + r) % 2 == 0 else units[::-1]:  # A B | B A | A B …, across thread counts too
                u.decode(t)
            rates.append(_yardsticks(dtypes))
        best = {d: max(r[d] for r in rates) for d in dtypes}
        per_cpu = {d: matmul_cpu_gflops(dtype=getattr(torch, d)) for d in dtypes}
        record["by_threads"].append({
            "threads": t, "matmul_gflops": best, "matmul_gflops_all": rates, "matmul_gflop_per_cpu_s": per_cpu,
            "loadavg_1min": os.getloadavg()[0],
            "units": [record_of(u, t, best[u.dtype] * 1e9, per_cpu[u.dtype] * 1e9) for u in units]})
    return record


def versus(records: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """B's decode time ÷ A's for every ``(A, B)`` pair, per size, thread count and shared mode."""
    out = []
    for rec in records:
        for by in rec["by_threads"]:
            units = {(u["codec"], u["mode"]): u for u in by["units"]}
            for a, b in pairs:
                for (codec, mode), ua in units.items():
                    ub = units.get((b, mode))
                    if codec != a or ub is None:
                        continue
                    out.append({"size": rec["size"], "threads": by["threads"], "mode": mode, "fast": a, "slow": b,
                                "wall_ratio": ub["decode_s"] / ua["decode_s"],
                                "cpu_ratio": ub["decode_cpu_s"] / ua["decode_cpu_s"],
                                # what the fast codec's arithmetic floor would allow at best
                                "floor_ratio": ub["decode_s"] / ua["floor_s"]})
    return out


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(records: list[dict[str, Any]], ratios: list[dict[str, Any]]) -> str:
    """Per size, thread count, codec/mode and part: wall and CPU seconds, GFLOP, fraction of matmul."""
    lines = [f"{'size':>10} {'thr':>3} {'codec/mode':>24} {'part':>15} {'seconds':>8} {'CPU s':>8} {'GFLOP':>8} "
             f"{'of matmul':>9} {'(CPU)':>6}   (matmul of the mode's dtype, same run)"]
    for r in records:
        for by in r["by_threads"]:
            for u in by["units"]:
                name = f"{u['codec']}/{u['mode']}"
                for part, p in u["parts"].items():
                    lines.append(f"{r['size']:>10} {by['threads']:>3} {name:>24} {part:>15} {p['seconds']:>8.3f} "
                                 f"{p['cpu_seconds']:>8.3f} {p['gflop']:>8.2f} {_num(p['matmul_fraction'], '.3f'):>9} "
                                 f"{_num(p['cpu_matmul_fraction'], '.3f'):>6}")
                lines.append(f"{r['size']:>10} {by['threads']:>3} {name:>24} {'total':>15} {u['decode_s']:>8.3f} "
                             f"{u['decode_cpu_s']:>8.3f} {u['gflop']:>8.2f} {u['matmul_fraction']:>9.3f} "
                             f"{u['cpu_matmul_fraction']:>6.3f}   {u['dtype']}, floor {u['floor_s']:.3f} s, "
                             f"decode/floor {_num(u['decode_over_floor'], '.1f')}, {u['bytes']} bytes, "
                             f"{u['dec_kmac_per_px']:.1f} kMAC/px, same pixels as uninstrumented: "
                             f"{u['identical_to_uninstrumented']}")
            rates = ", ".join(f"{d} {g:.1f} GFLOP/s ({by['matmul_gflop_per_cpu_s'][d]:.1f} per CPU s)"
                              for d, g in by["matmul_gflops"].items())
            lines.append(f"{r['size']:>10} {by['threads']:>3} matmul: {rates}; load {by['loadavg_1min']:.2f}")
    for v in ratios:
        lines.append(f"{v['size']:>10} {v['threads']:>3} {v['slow']} ÷ {v['fast']} ({v['mode']}): wall ×"
                     f"{v['wall_ratio']:.2f}, CPU ×{v['cpu_ratio']:.2f}; {v['slow']} ÷ {v['fast']}'s floor ×"
                     f"{v['floor_ratio']:.2f}")
    return "\n".join(lines)


def store_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``decode_parts`` row per size, codec, mode, thread count and part (and ``total``)."""
    from bench.machine import machine_info

    machine = machine_info()
    rows = []
    for r in records:
        for by in r["by_threads"]:
            for u in by["units"]:
                base = {"codec": u["codec"], "rate": u["rate"], "size": r["size"], "width": r["width"],
                        "height": r["height"], "mode": u["mode"], "dtype": u["dtype"], "threads": by["threads"],
                        "host": machine.get("host"), "cpu_model": machine.get("cpu_model"),
                        "matmul_gflops": by["matmul_gflops"][u["dtype"]], "loadavg_1min": by["loadavg_1min"],
                        "matmul_gflop_per_cpu_s": by["matmul_gflop_per_cpu_s"][u["dtype"]],
                        "bytes": u["bytes"]}
                for part, p in u["parts"].items():
                    rows.append({**base, "part": part, "seconds": p["seconds"], "cpu_seconds": p["cpu_seconds"],
                                 "gflop": p["gflop"], "matmul_fraction": p["matmul_fraction"]})
                rows.append({**base, "part": "total", "seconds": u["decode_s"], "cpu_seconds": u["decode_cpu_s"],
                             "gflop": u["gflop"], "matmul_fraction": u["matmul_fraction"],
                             "peak_rss_growth_bytes": u["peak_rss_growth_bytes"]})
    return rows


def _csv(kind: Any) -> Any:
    def parse(text: str) -> list[Any]:
        items = [kind(v) for v in text.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError("give at least one value")
        return items
    return parse


def _pair(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a or not b:
        raise argparse.ArgumentTypeError(f"{text!r}: give FAST:SLOW, e.g. msp-fast:mbt2018")
    return a, b


def _threads(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{value}: threads must be 1..256")
    return value


def _units(args: argparse.Namespace, image: Any, fail: Any) -> list[Unit]:
    """Create every (codec, mode) that applies; ``fail`` (exit 2) on a codec that cannot run."""
    from bench.codecs.learned import missing_weights
    from bench.codecs.registry import adapter_class, availability, create, load_configs

    configs = load_configs()
    units = []
    for name in args.codecs:
        if name not in configs:
            fail(f"unknown codec {name!r} (see python -m bench list)")
        config = configs[name]
        declared = adapter_class(config.adapter).fixed_params or {}
        for mode in args.modes:
            overrides = MODES[mode]
            if set(overrides) - set(declared):
                print(f"decode_parts: mode {mode!r} does not apply to {name} (its adapter has no "
                      f"{', '.join(sorted(set(overrides) - set(declared)))}); skipped", file=sys.stderr)
                continue
            cfg = replace(config, params={**config.params, **overrides}, device="cpu")
            reason = availability(cfg)
            if reason and reason != missing_weights(cfg):  # absent weights: untrained, fine for timing
                fail(f"{name} ({mode}): {reason}")
            try:
                units.append(Unit(create(cfg, device="cpu"), mode, args.rate, image, args.warm_up))
            except ValueError as exc:
                fail(f"{name} ({mode}): {exc}")
            print(f"decode_parts: {name}/{mode} encoded", file=sys.stderr, flush=True)
    if not units:
        fail("no codec and mode to measure")
    return units



def load_size(spec: str, data_dir: Path, source: str) -> np.ndarray:
    """``kodim01`` (the 768×512 Kodak image itself) or a ``WxH`` centre crop of ``source`` under ``data_dir``."""
    if spec == "kodim01":
        return load_image(data_dir / "kodak" / "kodim01.png").pixels
    width, height = parse_size(spec)
    return centre_crop(load_image(data_dir / source).pixels, width, height)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tools.decode_parts", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    parser.add_argument("--codecs", type=_csv(str), required=True, help="learned configurations, comma-separated")
    parser.add_argument("--modes", type=_csv(str), default=["default"], help=f"comma-separated: {', '.join(MODES)}")
    parser.add_argument("--sizes", type=_csv(str), default=["2048x1365"], help="kodim01 (768×512) or WxH crops")
    parser.add_argument("--source", default="imagecompression-info-subset/flower_foveon.png")
    parser.add_argument("--threads", type=_csv(_threads), default=[1, 2], help="torch thread counts, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=2, help="decodes per unit and thread count, interleaved")
    parser.add_argument("--rate", type=int, default=0, help="rate point index (default the first)")
    parser.add_argument("--versus", type=_csv(_pair), default=[], help="FAST:SLOW pairs, e.g. msp-fast:mbt2018")
    parser.add_argument("--warm-up", action=argparse.BooleanOptionalAction, default=True,
                        help="an uninstrumented decode per unit and thread count before the timed ones, also the "
                             "pixels they are checked against (--no-warm-up for serial decoders that take minutes)")
    parser.add_argument("--json", type=Path, default=Path("reports/decode_parts.json"))
    parser.add_argument("--results", type=Path, default=Path("results/decode_parts"),
                        help="results store that gets the decode_parts rows")
    args = parser.parse_args(argv)
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        parser.error(f"unknown mode(s) {', '.join(bad)} (known: {', '.join(MODES)})")
    if args.repeats < 1 or args.rate < 0:
        parser.error("--repeats must be >= 1 and --rate >= 0")
    if not os.environ.get("BENCH_DATA_DIR"):
        parser.error("set BENCH_DATA_DIR (the datasets folder)")
    import torch

    records, command = [], " ".join(["python", "-m", "bench.tools.decode_parts", *(argv or sys.argv[1:])])
    for size in args.sizes:
        try:
            image = load_size(size, Path(os.environ["BENCH_DATA_DIR"]), args.source)
        except (BenchError, OSError, ValueError) as exc:
            parser.error(f"size {size!r}: {exc}")
        torch.set_num_threads(max(args.threads))
        units = _units(args, image, parser.error)
        record = measure_size(size, units, args.threads, args.repeats)
        records.append({**record, "height": int(image.shape[0]), "width": int(image.shape[1])})
        for u in units:
            u.codec.close()
        print(f"decode_parts: {size} done", file=sys.stderr, flush=True)
    ratios = versus(records, args.versus)
    print(table(records, ratios))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": command, "torch": torch.__version__, "records": records,
                                     "versus": ratios}, indent=1))
    print(f"wrote {args.json}", file=sys.stderr)
    from bench.store import Store

    with Store(args.results) as store:
        run_id = store.start_run({"command": command, "threads": args.threads, "torch": torch.__version__})
        store.add_decode_parts(run_id, store_rows(records))
        store.finish_run(run_id, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    print(f"stored {args.results} (table decode_parts, run {run_id})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
