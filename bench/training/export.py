"""Export a training run as the weights file a codec configuration ships (a plain state dict).

The file holds only tensors (``torch.save`` of a ``dict[str, Tensor]``), so the suite's loaders
read it with ``weights_only=True``; ``half=True`` stores floating tensors as float16 (loaders cast
them back to float32, and every measurement is of the file as shipped). The training curve
(held-out rows, every 10th training row) and a summary go beside it for the report.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import torch

from bench.hashing import file_sha256
from bench.models.weights import load_weights_file
from bench.training.loop import CHECKPOINT, CURVE, weights_state


def export_weights(run: Path, to: Path, half: bool = False) -> tuple[Path, str, float]:
    """Write ``run``'s model weights to ``to`` (atomically), its curve and a summary of the
    training beside (``NAME.curve.csv``, ``NAME.train.json``); returns (path, sha256, λ)."""
    state = weights_state(Path(run) / CHECKPOINT)
    checkpoint = load_weights_file(Path(run) / CHECKPOINT, "training checkpoint")
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    to = Path(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = to.with_name(to.name + ".tmp")
    torch.save({k: v.contiguous().clone() for k, v in state.items()}, tmp)
    os.replace(tmp, to)
    curve = Path(run) / CURVE
    if curve.is_file():  # held-out rows and every 10th training row: enough to plot, small to ship
        with curve.open(newline="") as src, curve_path(to).open("w", newline="") as dst:
            rows = csv.DictReader(src)
            writer = csv.DictWriter(dst, rows.fieldnames or [])
            writer.writeheader()
            writer.writerows(r for r in rows if r["split"] != "train" or int(r["step"]) % 10 == 0)
    digest = file_sha256(to)
    prior = {k: float(checkpoint.get(f"prior_{k}", 0)) for k in ("step", "wall_s", "cpu_s")}
    summary = {"weights": to.name, "sha256": digest, "options": json.loads(checkpoint["options"]),
               "steps": int(checkpoint["step"]), "wall_s": float(checkpoint["wall_s"]),
               "cpu_s": float(checkpoint["cpu_s"]), "total_steps": int(checkpoint["step"] + prior["step"]),
               "total_wall_s": float(checkpoint["wall_s"]) + prior["wall_s"],
               "total_cpu_s": float(checkpoint["cpu_s"]) + prior["cpu_s"], "half": half}
    summary_path(to).write_text(json.dumps(summary, indent=1) + "\n")
    return to, digest, float(summary["options"]["lam"])


def summary_path(weights: Path) -> Path:
    """Where the training summary of a shipped weights file lives: ``NAME.train.json`` beside it."""
    return weights.with_name(weights.stem + ".train.json")


def curve_path(weights: Path) -> Path:
    """Where the training curve of a shipped weights file lives: ``NAME.curve.csv`` beside it."""
    return weights.with_name(weights.stem + ".curve.csv")
