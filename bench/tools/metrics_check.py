"""Cross-check every registry metric against a second implementation, and time it, on Kodak pairs.

    python -m bench.tools.metrics_check [--images kodim01,kodim02,...] [--quality 50] [--vmaf-float PATH] [--json OUT]
                                        [--metrics NAME,...] [--results DIR]

Each original is compressed with Pillow's JPEG at ``--quality`` (4:2:0, the library default); both
implementations get exactly the same pair on the same channel (BT.709 Y where the registry says Y).
Second implementations: scikit-image (PSNR), piq (MS-SSIM), pyiqa (FSIM; NLPD's pyramid on one
channel), sewar (VIFp),
psnr-hvsm's C++ backend (PSNR-HVS-M; same authors, separate code) and libvmaf's floating-point
feature path with ``vmaf_float_v0.6.1`` (``--vmaf-float``: a vmaf binary built with
``-Denable_float=true``; same authors, separate code). A missing one is reported as such. The
seconds are wall time and CPU time (this process and its children, with torch's default threads) for one call of our implementation per image (after
one untimed call, so set-ups are not counted): indicative on a loaded machine. Every value is also stored,
one row per metric and image, in the ``metric_checks`` table of a results store (``--results``, default
``results/metrics_check``; the report's "Metric cross-checks" section shows them).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench import datasets
from bench.images import load_image
from bench.metrics import luma, run, ycbcr
from bench.metrics.registry import METRICS, implementation_version


def _psnr_y_skimage(o: np.ndarray, d: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(luma(o), luma(d), data_range=255))


def _psnr_yuv_skimage(o: np.ndarray, d: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    a, b = ycbcr(o), ycbcr(d)
    p = [float(peak_signal_noise_ratio(a[..., c], b[..., c], data_range=255)) for c in range(3)]
    return (6 * p[0] + p[1] + p[2]) / 8


def _piq_ms_ssim(planes: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], float]:
    def compute(o: np.ndarray, d: np.ndarray) -> float:
        import piq
        import torch

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(planes(a)).permute(2, 0, 1)[None]
        return float(piq.multi_scale_ssim(t(o), t(d), data_range=255.0))
    return compute


def _pyiqa_fsim(o: np.ndarray, d: np.ndarray) -> float:
    import torch
    from pyiqa.archs.fsim_arch import fsim

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(luma(a) / 255.0)[None, None].expand(1, 3, -1, -1).contiguous()
    return float(fsim(t(o), t(d), chromatic=False))


def _pyiqa_nlpd(o: np.ndarray, d: np.ndarray) -> float:
    """pyiqa's NLPD pyramid on the one Y plane (its ``nlpd()`` refuses one channel without its own
    BT.601 conversion, so its ``pyramid`` is called and the RMS-per-level mean taken as it does)."""
    import torch
    from pyiqa.archs.nlpd_arch import NLPD

    module = NLPD(channels=1, test_y_channel=False).double().eval()
    with torch.inference_mode():
        a, b = (module.pyramid(torch.from_numpy(luma(x) / 255.0)[None, None]) for x in (o, d))
        return float(torch.stack([torch.sqrt(torch.mean((p - q) ** 2)) for p, q in zip(a, b)]).mean())


def _sewar_vifp(o: np.ndarray, d: np.ndarray) -> float:
    from sewar.full_ref import vifp

    return float(vifp(luma(o), luma(d)))


def _psnr_hvsm_cpp(o: np.ndarray, d: np.ndarray) -> float:
    from psnr_hvsm import BACKENDS

    _, mse = BACKENDS["cpp"]["hvs_hvsm_mse"](luma(o) / 255.0, luma(d) / 255.0)
    return 10.0 * np.log10(1.0 / float(mse))


def _vmaf_float(binary: Path | None) -> Callable[[np.ndarray, np.ndarray], float]:
    def compute(o: np.ndarray, d: np.ndarray) -> float:
        from bench.metrics.vmaf import write_y4m

        if binary is None:
            raise RuntimeError("no --vmaf-float binary given")
        with tempfile.TemporaryDirectory() as tmp:
            ref, dist, out = Path(tmp) / "r.y4m", Path(tmp) / "d.y4m", Path(tmp) / "o.json"
            write_y4m(ref, o)
            write_y4m(dist, d)
            subprocess.run([str(binary), "-r", str(ref), "-d", str(dist), "--model", "version=vmaf_float_v0.6.1",
                            "--json", "-o", str(out), "-q"], check=True, capture_output=True, timeout=600)
            return float(json.loads(out.read_text())["pooled_metrics"]["vmaf"]["mean"])
    return compute


def second_implementations(vmaf_float: Path | None) -> dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], float]]]:
    """metric name → (what the second implementation is, its function)."""
    return {
        "psnr-rgb": ("scikit-image peak_signal_noise_ratio",
                     lambda o, d: __import__("skimage.metrics").metrics.peak_signal_noise_ratio(o, d, data_range=255)),
        "psnr-y": ("scikit-image peak_signal_noise_ratio on our Y", _psnr_y_skimage),
        "psnr-yuv": ("scikit-image PSNR per plane of our Y'CbCr", _psnr_yuv_skimage),
        "ms-ssim": ("piq multi_scale_ssim (RGB)", _piq_ms_ssim(lambda a: a.astype(np.float64))),
        "ms-ssim-y": ("piq multi_scale_ssim (Y)", _piq_ms_ssim(lambda a: luma(a)[..., None])),
        "vif": ("sewar vifp", _sewar_vifp),
        "fsim": ("pyiqa fsim (chromatic=False)", _pyiqa_fsim),
        "nlpd": ("pyiqa NLPD pyramid, one channel", _pyiqa_nlpd),
        "psnr-hvs-m": ("psnr-hvsm C++ backend", _psnr_hvsm_cpp),
        "vmaf": ("libvmaf float features, vmaf_float_v0.6.1", _vmaf_float(vmaf_float)),
    }


def check(images: Sequence[str], quality: int, vmaf_float: Path | None,
          names: Sequence[str] | None = None) -> list[dict]:
    """One row per metric (all, or ``names``): our values, the second implementation's, the largest
    difference, seconds per image."""
    from io import BytesIO

    from PIL import Image

    folder = datasets.data_dir() / "kodak"
    pairs = []
    for name in images:
        original = load_image(folder / f"{name}.png", name).pixels
        buffer = BytesIO()
        Image.fromarray(original).save(buffer, format="JPEG", quality=quality)
        pairs.append((name, original, np.asarray(Image.open(BytesIO(buffer.getvalue())).convert("RGB"))))
    others = second_implementations(vmaf_float)
    rows = []
    for metric in METRICS:
        if names is not None and metric.name not in names:
            continue
        row: dict = {"metric": metric.name, "ours": [], "other": [],
                     "second": others.get(metric.name, ("none", None))[0],
                     "implementation": implementation_version(metric), "images": [n for n, _, _ in pairs]}
        reason = run.unavailable(metric)
        if reason:
            rows.append({**row, "unavailable": reason})
            continue
        wall, cpu = [], []
        for _, o, d in pairs:
            run.compute(o, d, (metric.name,))  # untimed: set-up and first-call costs
            w0, c0, k0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
            values, problems = run.compute(o, d, (metric.name,))
            k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall.append(time.perf_counter() - w0)  # CPU: this process and its children (the vmaf CLI)
            cpu.append(time.process_time() - c0 + k1.ru_utime - k0.ru_utime + k1.ru_stime - k0.ru_stime)
            row["ours"].append(values[metric.columns[0]])
            second = others.get(metric.name, (None, None))[1]
            if second is not None:
                try:
                    row["other"].append(float(second(o, d)))
                except Exception as exc:  # noqa: BLE001 — a missing second implementation is a result too
                    row.setdefault("second_failed", f"{type(exc).__name__}: {exc}")  # once, not per image
                    second = None
        row.update(wall_s=float(np.median(wall)), cpu_s=float(np.median(cpu)), wall_each=wall, cpu_each=cpu)
        if len(row["other"]) == len(row["ours"]) and row["other"]:
            diff = np.abs(np.array(row["ours"], float) - np.array(row["other"], float))
            row.update(max_abs_diff=float(diff.max()),
                       max_rel_diff=float((diff / np.maximum(np.abs(row["other"]), 1e-12)).max()))
        rows.append(row)
    return rows


def store_rows(rows: Sequence[dict], quality: int) -> list[dict]:
    """One ``metric_checks`` row per metric and image (:data:`bench.store_schema.METRIC_CHECK_COLUMNS`); a metric
    that cannot run here is one row without an image, its reason in ``note``."""
    from bench.codeversion import git_commit
    from bench.machine import machine_info

    machine = machine_info()
    common = {"distortion": f"jpeg q{quality} (Pillow 4:2:0)", "suite_commit": git_commit(),
              "host": machine.get("host"), "cpu_model": machine.get("cpu_model")}
    out = []
    for r in rows:
        base = {**common, "metric": r["metric"], "second": r["second"], "implementation": r.get("implementation")}
        if "unavailable" in r:
            out.append({**base, "note": f"unavailable: {r['unavailable']}"})
            continue
        paired = len(r["other"]) == len(r["ours"])
        note = (None if paired or r["second"] == "none" else
                f"the second implementation failed: {r['second_failed']}" if "second_failed" in r else
                "the second implementation gave no value")
        for i, image in enumerate(r["images"]):
            ours = r["ours"][i]
            theirs = r["other"][i] if paired else None
            diff = abs(ours - theirs) if ours is not None and theirs is not None else None
            out.append({**base, "image": image, "ours": ours, "theirs": theirs, "abs_diff": diff,
                        "wall_s": r["wall_each"][i], "cpu_s": r["cpu_each"][i], "note": note})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tools.metrics_check", description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="kodim01,kodim02,kodim03,kodim04")
    parser.add_argument("--quality", type=int, default=50, help="Pillow JPEG quality of the distorted images")
    parser.add_argument("--vmaf-float", type=Path, default=None, help="a vmaf binary built with -Denable_float=true")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--metrics", default=None, help="comma-separated registry names (default: every metric)")
    parser.add_argument("--results", type=Path, default=Path("results/metrics_check"),
                        help="results store that gets the metric_checks rows (default results/metrics_check)")
    args = parser.parse_args(argv)
    names = None if args.metrics is None else [n.strip() for n in args.metrics.split(",") if n.strip()]
    unknown = sorted(set(names or ()) - {m.name for m in METRICS})
    if unknown or names == []:
        parser.error(f"--metrics: unknown metric(s) {', '.join(unknown) or '(none given)'} "
                     f"(known: {', '.join(m.name for m in METRICS)})")
    from bench.errors import StoreError
    from bench.store import Store

    try:
        store = Store(args.results)  # refused (one line, exit 2) before the checks run, not after
    except StoreError as exc:
        parser.error(str(exc))
    command = " ".join(["python", "-m", "bench.tools.metrics_check", *(sys.argv[1:] if argv is None else argv)])
    try:
        rows = check([n.strip() for n in args.images.split(",") if n.strip()], args.quality, args.vmaf_float, names)
        from bench.codeversion import git_commit

        run_id = store.start_run({"command": command, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                  "git_commit": git_commit()})
        store.add_metric_checks(run_id, store_rows(rows, args.quality))
        store.finish_run(run_id, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    finally:
        store.close()
    print("| metric | ours (mean) | second implementation | its mean | max |Δ| | max rel. Δ | s/image wall | CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "unavailable" in r:
            print(f"| {r['metric']} | unavailable: {r['unavailable']} | | | | | | |")
            continue
        other = f"{np.mean(r['other']):.6g}" if r["other"] else "-"
        diff = (f"{r['max_abs_diff']:.3g} | {r['max_rel_diff']:.2g}" if "max_abs_diff" in r else "- | -")
        second = r["second"] + (f" (failed: {r['second_failed']})" if "second_failed" in r else "")
        print(f"| {r['metric']} | {np.mean(r['ours']):.6g} | {second} | {other} | {diff} | "
              f"{r['wall_s']:.3f} | {r['cpu_s']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"stored {args.results} (table metric_checks, run {run_id})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
