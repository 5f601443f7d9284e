"""Measure decode time against resolution: serial O(n) context model vs MSP's constant steps.

    python -m bench.decode_scaling [--out results.json] [--sizes 256x256,...]

Centre crops of one image (default ``$BENCH_DATA_DIR/imagecompression-info-subset/
flower_foveon.png``, 2268×1512) at each size are encoded once and decoded ``--repeats`` times
(minimum kept) by every codec, through the same :class:`bench.codecs.base.Codec` interface the
benchmark uses:

* ``mbt2018`` (CompressAI; one sequential decoding step per latent position — O(n) steps);
* each MSP profile (``codecs/msp-*.toml``; (1 + k·S)·G steps at every size), encoded with LOF
  switched off (LOF is encoder-only; the decoder is unchanged). ``msp-base-lof`` shares
  msp-base's decoder, so it is not timed again unless ``--time-lof-profiles``;
* MLIC++ when ``bench.models.mlicpp`` is importable and a ``codecs/*.toml`` uses an ``mlic*``
  adapter.

Untrained weights are fine for timing (the untrained modes code realistic symbol statistics).
Reported: decode seconds per size, fitted log-log exponents (time ∝ pixels^b), per-step decode
times of MSP at the largest size, and each MSP profile's speed-up over mbt2018 at the largest
size both decoded. Wall-clock timings on a shared machine: the load average is recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.codecs import registry
from bench.codecs.base import Codec, CodecConfig
from bench.datasets import parse_size
from bench.images import centre_crop, load_image

DEFAULT_SIZES = "256x256,512x512,768x512,1024x683,1536x1024,2048x1365"
DEFAULT_MBT_SIZES = "256x256,512x512,1024x683,2048x1365"
MSP_PROFILES = ("msp-fast", "msp-base", "msp-best")
LOF_PROFILES = {"msp-base-lof": "msp-base"}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"WxH,WxH" → [(width, height), ...]."""
    return [parse_size(item.strip()) for item in text.split(",")]


def fit_exponent(pixels: list[int], seconds: list[float]) -> float | None:
    """Least-squares slope b of log(seconds) = a + b·log(pixels)."""
    if len(pixels) < 2:
        return None
    return float(np.polyfit(np.log(pixels), np.log(seconds), 1)[0])


def time_codec(codec: Codec, config: CodecConfig, crops: dict[tuple[int, int], np.ndarray], repeats: int) -> dict:
    """Encode each crop once, decode ``repeats`` times; per-size decode times and step data."""
    rate = config.rates[min(4, len(config.rates) - 1)]
    rows = []
    for (w, h), img in crops.items():
        t0 = time.perf_counter()
        enc = codec.encode(img, rate)
        codec.synchronize()
        encode_s = time.perf_counter() - t0
        times, step_times, split = [], None, None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = codec.decode(enc.data)
            codec.synchronize()
            times.append(time.perf_counter() - t0)
            step_times = getattr(codec, "last_decode_step_times", None)
            split = getattr(codec, "last_decode_times", None)
        if out.shape != img.shape:
            raise RuntimeError(f"{config.name}: decoded {out.shape} for a {img.shape} crop")
        row = {
            "width": w, "height": h, "pixels": w * h, "bytes": len(enc.data),
            "encode_s": encode_s, "decode_s": min(times), "decode_all_s": times,
            "sequential_steps": enc.extras.get("sequential_steps"),
        }
        if step_times:
            row["step_times"] = [[n, t] for n, t in step_times]
        if split:
            row.update({k: v for k, v in split.items()})
        rows.append(row)
        print(f"  {config.name:14s} {w:5d}x{h:<5d} decode {row['decode_s']:9.3f} s  "
              f"(encode {encode_s:7.2f} s, steps {row['sequential_steps']})", flush=True)
    return {"rate": rate.label, "trained": codec.trained, "version": codec.library_version(), "rows": rows}


def mlic_configs(configs: dict[str, CodecConfig]) -> list[CodecConfig]:
    if importlib.util.find_spec("bench.models.mlicpp") is None:
        return []
    from bench.codecs.registry import availability

    return [c for c in configs.values() if c.adapter.lower().startswith("mlic") and availability(c) is None]


def summarise(results: dict[str, dict]) -> dict[str, Any]:
    """Exponents, speed-ups over mbt2018 at the largest common size, per-step times."""
    summary: dict[str, Any] = {"exponents": {}, "speedup_vs_mbt2018": {}, "step_times_largest": {}}
    for name, res in results.items():
        rows = res["rows"]
        summary["exponents"][name] = {
            "decode": fit_exponent([r["pixels"] for r in rows], [r["decode_s"] for r in rows]),
        }
        if rows and "entropy_decoding_s" in rows[0]:
            summary["exponents"][name]["entropy_decoding"] = fit_exponent(
                [r["pixels"] for r in rows], [r["entropy_decoding_s"] for r in rows])
            summary["exponents"][name]["synthesis"] = fit_exponent(
                [r["pixels"] for r in rows], [r["synthesis_s"] for r in rows])
        if rows and "step_times" in rows[-1]:
            summary["step_times_largest"][name] = {
                "size": f"{rows[-1]['width']}x{rows[-1]['height']}", "steps": rows[-1]["step_times"]}
    mbt = results.get("mbt2018")
    if mbt and mbt["rows"]:
        mbt_rows = {(r["width"], r["height"]): r for r in mbt["rows"]}
        for name, res in results.items():
            if name == "mbt2018":
                continue
            common = [r for r in res["rows"] if (r["width"], r["height"]) in mbt_rows]
            if common:
                r = max(common, key=lambda r: r["pixels"])
                m = mbt_rows[(r["width"], r["height"])]
                entry = {"size": f"{r['width']}x{r['height']}", "mbt2018_s": m["decode_s"],
                         "codec_s": r["decode_s"], "speedup": m["decode_s"] / r["decode_s"]}
                if "entropy_decoding_s" in r and "entropy_decoding_s" in m:
                    entry["entropy_decoding_speedup"] = m["entropy_decoding_s"] / r["entropy_decoding_s"]
                summary["speedup_vs_mbt2018"][name] = entry
    return summary


def markdown(results: dict[str, dict], summary: dict[str, Any], aliases: dict[str, str]) -> str:
    sizes = sorted({(r["width"], r["height"]) for res in results.values() for r in res["rows"]},
                   key=lambda s: s[0] * s[1])
    lines = ["| codec | steps | " + " | ".join(f"{w}×{h}" for w, h in sizes) + " | exponent b |",
             "|---" * (len(sizes) + 3) + "|"]
    for name, res in results.items():
        by = {(r["width"], r["height"]): r for r in res["rows"]}
        steps = sorted({r["sequential_steps"] for r in res["rows"]})
        steps_txt = str(steps[0]) if len(steps) == 1 else f"{steps[0]}…{steps[-1]}"
        cells = [f"{by[s]['decode_s']:.2f}" if s in by else "—" for s in sizes]
        b = summary["exponents"][name]["decode"]
        b_txt = "—" if b is None else f"{b:.2f}"
        lines.append(f"| {name} | {steps_txt} | " + " | ".join(cells) + f" | {b_txt} |")
    for alias, target in aliases.items():
        lines.append(f"| {alias} | (decoder of {target}; LOF is encoder-only — not timed separately) |")
    lines.append("")
    for name, s in summary["speedup_vs_mbt2018"].items():
        ent = s.get("entropy_decoding_speedup")
        lines.append(f"- {name}: {s['speedup']:.1f}× faster than mbt2018 at {s['size']} "
                     f"({s['codec_s']:.2f} s vs {s['mbt2018_s']:.1f} s)"
                     + (f"; entropy-decoding part (all but g_s) {ent:.0f}× faster" if ent else ""))
    split = [(n, res["rows"]) for n, res in results.items() if res["rows"] and "synthesis_s" in res["rows"][-1]]
    if split:
        lines += ["", "| codec | size | entropy decoding (s) | synthesis g_s (s) | b entropy | b synthesis |",
                  "|---|---|---|---|---|---|"]
        for name, rows in split:
            r, e = rows[-1], summary["exponents"][name]
            lines.append(f"| {name} | {r['width']}×{r['height']} | {r['entropy_decoding_s']:.2f} | "
                         f"{r['synthesis_s']:.2f} | {e['entropy_decoding']:.2f} | {e['synthesis']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, help="source image (default: flower_foveon.png under $BENCH_DATA_DIR)")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"WxH list for MSP/MLIC++ (default {DEFAULT_SIZES})")
    ap.add_argument("--mbt-sizes", default=DEFAULT_MBT_SIZES,
                    help=f"WxH list for mbt2018, whose serial decoder is slow (default {DEFAULT_MBT_SIZES})")
    ap.add_argument("--codecs", default=",".join(("mbt2018", *MSP_PROFILES)), help="configurations to time")
    ap.add_argument("--codecs-dir", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=1, help="decodes per size (minimum kept)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: on a shared CPU, thread-pool contention makes "
                         "small serial ops, i.e. mbt2018's per-position steps, up to ~8x slower)")
    ap.add_argument("--time-lof-profiles", action="store_true", help="also time msp-base-lof's decoder")
    ap.add_argument("--out", type=Path, help="write all raw numbers as JSON here")
    args = ap.parse_args(argv)

    path = args.image
    if path is None:
        data_dir = os.environ.get("BENCH_DATA_DIR")
        if not data_dir:
            ap.error("give --image or set BENCH_DATA_DIR")
        path = Path(data_dir) / "imagecompression-info-subset" / "flower_foveon.png"
    source = load_image(path).pixels
    configs = registry.load_configs(args.codecs_dir)
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    aliases = {} if args.time_lof_profiles else {a: t for a, t in LOF_PROFILES.items() if t in names}
    if args.time_lof_profiles:
        names += [a for a in LOF_PROFILES if a not in names]
    selected = [configs[n] for n in names] + mlic_configs(configs)

    env = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
           "loadavg_start": os.getloadavg(), "image": str(path), "device": args.device}
    import torch

    torch.set_num_threads(args.threads)
    env["torch"], env["torch_threads"] = torch.__version__, torch.get_num_threads()
    results: dict[str, dict] = {}
    lof_off: list[str] = []
    for cfg in selected:
        if int(cfg.params.get("lof_iterations", 0)) > 0:
            # LOF is encoder-only and leaves the decoder unchanged: switch it off to time decoding.
            cfg = dataclasses.replace(cfg, params={**cfg.params, "lof_iterations": 0})
            lof_off.append(cfg.name)
        sizes = parse_sizes(args.mbt_sizes if cfg.name == "mbt2018" else args.sizes)
        crops = {s: centre_crop(source, *s) for s in sizes}
        print(f"{cfg.name}: {len(crops)} sizes", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the untrained warning: expected here
            codec = registry.create(cfg, device=args.device)
        results[cfg.name] = time_codec(codec, cfg, crops, args.repeats)
        codec.close()
    env["loadavg_end"] = os.getloadavg()
    env["lof_switched_off_for_timing"] = lof_off
    summary = summarise(results)
    print()
    print(markdown(results, summary, aliases))
    for name, st in summary["step_times_largest"].items():
        print(f"\n{name} per-step decode times at {st['size']} (s): "
              + ", ".join(f"{n} {t:.3f}" for n, t in st["steps"]))
    print(f"\nload average start {env['loadavg_start']}, end {env['loadavg_end']}")
    if lof_off:
        print(f"LOF switched off (encoder-only, decoder unchanged) for: {', '.join(lof_off)}")
    if args.out:
        args.out.write_text(json.dumps({"environment": env, "results": results, "summary": summary,
                                        "aliases": aliases}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
