"""The report's training section reads chained curves (base run + fine-tune) and curves exported
before runs were chained, and takes the held-out figures of a file's last evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pandas")

from bench.report.training import load_training  # noqa: E402

HEADER = "step,split,loss,bpp,mse,psnr,aux,wall_s,cpu_s"


def write(folder: Path, stem: str, lam: float, curve: str) -> None:
    codec = stem.rsplit("-", 1)[0]
    info = {"weights": f"{stem}.pt", "sha256": "ab" * 32, "options": {"codec": codec, "lam": lam, "batch": 8, "crop": 128},
            "steps": 3, "total_steps": 7, "total_wall_s": 7200.0, "total_cpu_s": 3600.0, "half": True}
    (folder / f"{stem}.train.json").write_text(json.dumps(info))
    (folder / f"{stem}.curve.csv").write_text(curve)


def test_chained_and_old_curves(tmp_path):
    write(tmp_path, "tiny-0.02", 0.02, f"{HEADER},run,total_step\n"
          "2,heldout,1,0.9,0,20.0,,1,1,base,2\n4,heldout,1,0.7,0,22.0,,1,1,base,4\n3,heldout,1,0.5,0,24.0,,1,1,tune,7\n")
    write(tmp_path, "tiny-0.01", 0.01, f"{HEADER}\n10,train,1,0.4,0,19.0,,1,1\n20,heldout,1,0.3,0,21.0,,1,1\n")
    write(tmp_path, "other-0.01", 0.01, f"{HEADER}\n20,heldout,1,0.3,0,21.0,,1,1\n")
    summary, held = load_training(tmp_path, ["tiny", "tiny-lof"])
    assert sorted(summary["weights"]) == ["tiny-0.01.pt", "tiny-0.02.pt"]  # other-* serves no codec of the store
    last = summary.set_index("weights")
    assert last.loc["tiny-0.02.pt", "held-out PSNR"] == 24.0 and last.loc["tiny-0.01.pt", "held-out bpp"] == 0.3
    chained = held[held["weights"] == "tiny-0.02"]
    assert list(chained["total_step"]) == [2, 4, 7] and list(chained["run"]) == ["base", "base", "tune"]
    assert list(held[held["weights"] == "tiny-0.01"]["total_step"]) == [20]
    assert last.loc["tiny-0.02.pt", "CPU h"] == 1.0
