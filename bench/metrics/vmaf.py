"""VMAF with Netflix's reference libvmaf (model ``vmaf_v0.6.1``), through its ``vmaf`` CLI.

The two images are written as 8-bit Y4M 4:4:4 (BT.709 full-range Y'CbCr, rounded) into a temporary
folder and the CLI is run as a subprocess (an argument list, never a shell string) with JSON output.
VMAF v0.6.1's features (VIF, ADM, motion) read the luma plane only, so 4:4:4 and 4:2:0 give the same
score; 4:4:4 avoids a chroma filter choice. The binary is the one ``python -m bench.tools.vmaf build``
installs, or ``$BENCH_VMAF`` (a path to a ``vmaf`` executable).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics.basic import ycbcr
from bench.third_party import LIBVMAF

MODEL = "vmaf_v0.6.1"


def binary() -> Path:
    """The ``vmaf`` executable to use: ``$BENCH_VMAF``, else the build tool's install folder."""
    if os.environ.get("BENCH_VMAF"):
        return Path(os.environ["BENCH_VMAF"])
    return LIBVMAF.prefix() / "bin" / "vmaf"


def unavailable() -> str | None:
    """Why VMAF cannot run here (no built binary), else None."""
    path = binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        return f"libvmaf's vmaf CLI not found at {path}: build it with python -m bench.tools.vmaf build"
    return None


def version() -> str | None:
    """``libvmaf <version>`` of the binary, or None if it does not run."""
    try:
        out = subprocess.run([str(binary()), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + out.stderr).strip()
    return f"libvmaf {text.split()[-1]}" if out.returncode == 0 and text else None


def write_y4m(path: Path, image: np.ndarray) -> None:
    """One-frame 8-bit Y4M, 4:4:4, full-range BT.709 Y'CbCr rounded to integers."""
    planes = ycbcr(image)
    planes[..., 1:] += 128.0
    data = np.clip(np.rint(planes), 0, 255).astype(np.uint8)
    height, width = image.shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F1:1 Ip A1:1 C444 XCOLORRANGE=FULL\nFRAME\n".encode())
        for c in range(3):
            f.write(np.ascontiguousarray(data[..., c]).tobytes())


def vmaf(original: np.ndarray, decoded: np.ndarray, context: Any = None) -> float:
    """VMAF (v0.6.1 model, one frame) of ``decoded`` against ``original``; raises RuntimeError on failure."""
    with tempfile.TemporaryDirectory(prefix="bench-vmaf-") as tmp:
        ref, dist, out = Path(tmp) / "ref.y4m", Path(tmp) / "dist.y4m", Path(tmp) / "vmaf.json"
        write_y4m(ref, original)
        write_y4m(dist, decoded)
        cmd = [str(binary()), "--reference", str(ref), "--distorted", str(dist), "--model", f"version={MODEL}",
               "--json", "--output", str(out), "--threads", "1", "--quiet"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise RuntimeError(f"vmaf exited with {done.returncode}: {' '.join(tail)}")
        result = json.loads(out.read_text(encoding="utf-8"))
    return float(result["pooled_metrics"]["vmaf"]["mean"])
