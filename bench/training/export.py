"""Export a training run as the weights file a codec configuration ships (a plain state dict).

The file holds only tensors (``torch.save`` of a ``dict[str, Tensor]``), so the suite's loaders
read it with ``weights_only=True``; ``half=True`` stores floating tensors as float16 (loaders cast
them back to float32, and every measurement is of the file as shipped), except the entropy models'
likelihood bound, which float16 would flush to zero (:data:`KEEP_FLOAT32`). The training curve
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


#: State-dict keys kept in float32 by ``half=True``: CompressAI's likelihood bound (1e-9) is below
#: float16's smallest value, and stored as 0 it lets a likelihood reach 0 (an infinite rate).
KEEP_FLOAT32 = ("likelihood_lower_bound.bound",)


def export_weights(run: Path, to: Path, half: bool = False) -> tuple[Path, str, float]:
    """Write ``run``'s model weights to ``to`` (atomically), its curve and a summary of the
    training beside (``NAME.curve.csv``, ``NAME.train.json``); returns (path, sha256, λ)."""
    state = weights_state(Path(run) / CHECKPOINT)
    checkpoint = load_weights_file(Path(run) / CHECKPOINT, "training checkpoint")
    if half:
        state = {k: (v.half() if v.is_floating_point() and not k.endswith(KEEP_FLOAT32) else v)
                 for k, v in state.items()}
    to = Path(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = to.with_name(to.name + ".tmp")
    torch.save({k: v.contiguous().clone() for k, v in state.items()}, tmp)
    os.replace(tmp, to)
    write_chain_curve(Path(run), curve_path(to))
    digest = file_sha256(to)
    prior = {k: float(checkpoint.get(f"prior_{k}", 0)) for k in ("step", "wall_s", "cpu_s")}
    summary = {"weights": to.name, "sha256": digest, "options": json.loads(checkpoint["options"]),
               "steps": int(checkpoint["step"]), "wall_s": float(checkpoint["wall_s"]),
               "cpu_s": float(checkpoint["cpu_s"]), "total_steps": int(checkpoint["step"] + prior["step"]),
               "total_wall_s": float(checkpoint["wall_s"]) + prior["wall_s"],
               "total_cpu_s": float(checkpoint["cpu_s"]) + prior["cpu_s"], "half": half}
    summary_path(to).write_text(json.dumps(summary, indent=1) + "\n")
    return to, digest, float(summary["options"]["lam"])


def run_chain(run: Path) -> list[tuple[Path, int, int]]:
    """The runs whose steps made ``run``'s weights, first run first: (folder, steps before it, its
    last step used). A fine-tune's ``init`` checkpoint may have trained on after the fine-tune
    started from it, so only its steps up to that point count; a missing ``init`` ends the chain."""
    checkpoint = load_weights_file(run / CHECKPOINT, "training checkpoint")
    prior = int(checkpoint.get("prior_step", 0))
    chain = [(run, prior, int(checkpoint["step"]))]
    init = json.loads(checkpoint["options"]).get("init")
    while prior and init and Path(init).name == CHECKPOINT and Path(init).is_file():
        parent = load_weights_file(init, "training checkpoint")
        parent_prior = int(parent.get("prior_step", 0))
        chain.insert(0, (Path(init).parent, parent_prior, prior - parent_prior))
        prior, init = parent_prior, json.loads(parent["options"]).get("init")
    return chain


def write_chain_curve(run: Path, to: Path) -> None:
    """The curve of ``run`` and of the runs it started from (:func:`run_chain`): held-out rows and
    every 10th training row — enough to plot, small to ship — with the run's folder name and the
    step counted from the first run (``total_step``)."""
    rows: list[dict[str, str]] = []
    for folder, prior, last in run_chain(run):
        curve = folder / CURVE
        if not curve.is_file():
            continue
        with curve.open(newline="") as src:
            for row in csv.DictReader(src):
                step = int(row["step"])
                if step <= last and (row["split"] != "train" or step % 10 == 0):
                    rows.append({**row, "run": folder.name, "total_step": str(prior + step)})
    if rows:
        with to.open("w", newline="") as dst:
            writer = csv.DictWriter(dst, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def summary_path(weights: Path) -> Path:
    """Where the training summary of a shipped weights file lives: ``NAME.train.json`` beside it."""
    return weights.with_name(weights.stem + ".train.json")


def curve_path(weights: Path) -> Path:
    """Where the training curve of a shipped weights file lives: ``NAME.curve.csv`` beside it."""
    return weights.with_name(weights.stem + ".curve.csv")
