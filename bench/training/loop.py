"""The rate-distortion training loop: objective, resumable checkpoints, and the loss curve.

Objective (CompressAI's, Ballé et al.): ``L = R + λ·255²·D`` with R the bits per pixel from the
model's likelihoods (additive uniform noise in training), D the MSE of x̂ on [0, 1] images, plus
the entropy bottlenecks' auxiliary loss optimised separately on their ``quantiles``. Adam,
gradient norm clipped at 1, learning rate divided by 10 for the last ``decay_fraction`` of steps.

Resumable: every ``checkpoint_every`` steps (and at the end) the model, both optimisers and the
step go atomically to ``OUT/checkpoint.pt``; a later call with the same ``OUT`` and options
continues from it and draws the same batches an uninterrupted run would have (see
:mod:`bench.training.data`). Only ``steps`` may change on resume (to lengthen or shorten a run;
the learning-rate decay moves with it).
The curve — training R, D, loss and, every ``eval_every`` steps, the held-out bpp and PSNR —
is appended to ``OUT/curve.csv``, which the report plots.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bench.errors import CheckpointError
from bench.models.entropy import restore_likelihood_bounds
from bench.models.weights import load_weights_file

CHECKPOINT = "checkpoint.pt"
CURVE = "curve.csv"
CURVE_FIELDS = ("step", "split", "loss", "bpp", "mse", "psnr", "aux", "wall_s", "cpu_s")


@dataclass(frozen=True)
class TrainOptions:
    """Everything that decides the trained weights (stored with the checkpoint and compared on resume)."""

    codec: str
    lam: float
    steps: int
    seed: int = 0
    batch: int = 8
    crop: int = 128
    lr: float = 3e-4
    aux_lr: float = 1e-3
    decay_fraction: float = 0.2
    init: str | None = None  # weights (a checkpoint or state dict) to start from, e.g. a neighbouring λ
    extra: dict[str, Any] = field(default_factory=dict)

    def lr_at(self, step: int) -> float:
        """Learning rate of ``step`` (0-based): ``lr``, then ``lr/10`` for the last part."""
        return self.lr if step < self.steps * (1 - self.decay_fraction) else self.lr / 10


def rd_terms(model: nn.Module, x: Tensor, lam: float) -> dict[str, Tensor]:
    """bpp, MSE and the loss R + λ·255²·D of a forward pass on ``x`` (N×3×H×W in [0, 1])."""
    out = model(x)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bits = sum(torch.log(lik).sum() for lik in _flat_likelihoods(out["likelihoods"])) / -math.log(2)
    bpp = bits / pixels
    mse = torch.mean((out["x_hat"].to(x.dtype) - x) ** 2)
    return {"loss": bpp + lam * 255**2 * mse, "bpp": bpp, "mse": mse}


def _flat_likelihoods(likelihoods: dict[str, Any]) -> list[Tensor]:
    out: list[Tensor] = []
    for value in likelihoods.values():
        out.extend(value if isinstance(value, (list, tuple)) else [value])
    return out


def psnr(mse: float) -> float:
    return 10 * math.log10(1 / mse) if mse > 0 else float("inf")


def optimisers(model: nn.Module, options: TrainOptions) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the network, Adam for the entropy bottlenecks' ``quantiles`` (the aux loss)."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles") and p.requires_grad]
    return torch.optim.Adam(main, lr=options.lr), torch.optim.Adam(aux, lr=options.aux_lr)


def to_tensor(batch: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255)


class Trainer:
    """One training run in folder ``out`` (see the module docstring)."""

    def __init__(self, model: nn.Module, data: Any, options: TrainOptions, out: Path,
                 checkpoint_every: int = 100, eval_every: int = 250):
        self.model, self.data, self.options, self.out = model, data, options, Path(out)
        self.checkpoint_every, self.eval_every = checkpoint_every, eval_every
        self.optimizer, self.aux_optimizer = optimisers(model, options)
        self.step = 0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        #: steps, wall and CPU seconds of the run(s) this one started from (``options.init``)
        self.prior = {"step": 0.0, "wall_s": 0.0, "cpu_s": 0.0}
        self.out.mkdir(parents=True, exist_ok=True)
        self._heldout = to_tensor(data.heldout_crops(256 if min(min(h.shape[:2]) for h in data.heldout) >= 256
                                                     else options.crop))

    # --- checkpoints ---------------------------------------------------------------------------
    def resume(self) -> bool:
        """Continue from ``OUT/checkpoint.pt`` if there is one (``CheckpointError`` if it was
        made with other options); else start from ``options.init`` if given. True if resumed."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            if self.options.init:
                self._start_from(self.options.init)
            return False
        state = load_weights_file(path, "training checkpoint")
        saved = json.loads(state["options"])
        wanted = json.loads(json.dumps(asdict(self.options)))
        saved.pop("steps"), wanted.pop("steps")  # a run may be lengthened or shortened
        if saved != wanted:
            raise CheckpointError(f"{path} was made with other options ({saved}); use another output folder")
        if int(state["step"]) > self.options.steps:
            raise CheckpointError(f"{path} is already at step {int(state['step'])}, past --steps {self.options.steps}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        self.step, self.wall_s, self.cpu_s = int(state["step"]), float(state["wall_s"]), float(state["cpu_s"])
        self.prior = {k: float(state.get(f"prior_{k}", 0)) for k in self.prior}
        self._truncate_curve()
        return True

    def _start_from(self, init: str) -> None:
        """Weights from ``init``; if it is a training checkpoint, its steps and time count as prior."""
        obj = load_weights_file(init, "initial weights")
        self.model.load_state_dict(weights_state(init))
        restore_likelihood_bounds(self.model)  # a float16 file holds them as 0
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            self.prior = {k: float(obj.get(f"prior_{k}", 0)) + float(obj[k]) for k in ("step", "wall_s", "cpu_s")}

    def summary(self) -> dict[str, float]:
        """Steps and time of this run and of the runs it started from (``total_*``)."""
        return {"steps": self.step, "wall_s": self.wall_s, "cpu_s": self.cpu_s,
                "total_steps": self.step + self.prior["step"], "total_wall_s": self.wall_s + self.prior["wall_s"],
                "total_cpu_s": self.cpu_s + self.prior["cpu_s"]}

    def save(self) -> None:
        """Write the checkpoint atomically (a killed save leaves the previous one intact)."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "aux_optimizer": self.aux_optimizer.state_dict(), "step": self.step,
                 "wall_s": self.wall_s, "cpu_s": self.cpu_s, "options": json.dumps(asdict(self.options)),
                 **{f"prior_{k}": v for k, v in self.prior.items()}}
        tmp = self.out / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.out / CHECKPOINT)

    # --- the curve -----------------------------------------------------------------------------
    def _truncate_curve(self) -> None:
        """Drop curve rows written after the checkpoint being resumed (the steps will be redone)."""
        path = self.out / CURVE
        if not path.is_file():
            return
        with path.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= self.step]
        self._write_curve(rows, mode="w")

    def _write_curve(self, rows: list[dict[str, Any]], mode: str = "a") -> None:
        path = self.out / CURVE
        new = mode == "w" or not path.is_file()
        with path.open(mode, newline="") as fh:
            writer = csv.DictWriter(fh, CURVE_FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)

    # --- steps ---------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimisation step on the batch of (seed, step)."""
        o = self.options
        torch.manual_seed(o.seed * 1_000_003 + self.step)  # the training noise of this step
        x = to_tensor(self.data.batch(o.seed, self.step, o.batch, o.crop))
        for group in self.optimizer.param_groups:
            group["lr"] = o.lr_at(self.step)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        self.aux_optimizer.zero_grad(set_to_none=True)
        terms = rd_terms(self.model, x, o.lam)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        aux = self.model.aux_loss()
        aux.backward()
        self.aux_optimizer.step()
        self.step += 1
        return {k: float(v) for k, v in terms.items()} | {"aux": float(aux)}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out bpp (from the likelihoods of the rounded latent) and PSNR of x̂ rounded to 8 bits."""
        self.model.eval()
        bpp = mse = 0.0
        for x in self._heldout.split(4):
            out = self.model(x)
            pixels = x.shape[0] * x.shape[2] * x.shape[3]
            bpp += float(sum(torch.log(l).sum() for l in _flat_likelihoods(out["likelihoods"]))) / -math.log(2) / pixels * len(x)
            x_hat = (out["x_hat"].clamp(0, 1) * 255).round() / 255
            mse += float(torch.mean((x_hat.to(x.dtype) - x) ** 2)) * len(x)
        n = len(self._heldout)
        bpp, mse = bpp / n, mse / n
        return {"loss": bpp + self.options.lam * 255**2 * mse, "bpp": bpp, "mse": mse, "psnr": psnr(mse)}

    def run(self, progress: Any = None) -> dict[str, float]:
        """Train to ``options.steps`` (resuming first); returns the final held-out figures."""
        total = self.options.steps
        pending: list[dict[str, Any]] = []
        wall0, cpu0 = time.perf_counter() - self.wall_s, time.process_time() - self.cpu_s
        while self.step < total:
            terms = self.train_step()
            self.wall_s, self.cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
            if not all(math.isfinite(v) for v in terms.values()):
                raise FloatingPointError(f"step {self.step}: non-finite loss {terms}; lower --lr or resume")
            pending.append({"step": self.step, "split": "train", **terms, "psnr": psnr(terms["mse"]),
                            "wall_s": self.wall_s, "cpu_s": self.cpu_s})
            if self.step % self.eval_every == 0 or self.step == total:
                pending.append({"step": self.step, "split": "heldout", **self.evaluate(), "aux": "",
                                "wall_s": self.wall_s, "cpu_s": self.cpu_s})
            if self.step % self.checkpoint_every == 0 or self.step == total:
                self._write_curve(pending)
                pending.clear()
                self.save()
            if progress is not None:
                progress(self.step, total, terms)
        final = self.evaluate()
        return final


def weights_state(path: str | Path) -> dict[str, Tensor]:
    """The model state dict in a weights file or a training checkpoint (read with ``weights_only``)."""
    obj = load_weights_file(path, "initial weights")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds no state dict")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in obj.items()}
