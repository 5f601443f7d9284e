"""A worker warms every selected metric before its first cell (issue 21): the first use of a metric
(importing its library, building its filters, torch's first convolutions) used to happen inside the
first cell of each fresh worker, after the runner's timeout clock had started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
FIRST_CELL = """
import json, sys
import numpy as np
from bench.metrics import DEFAULT, compute, run
from bench.cells import Settings
from bench.worker import prepare_worker

prepare_worker(Settings(threads=1, metrics=DEFAULT))  # what a worker does before it takes its first cell
before = set(sys.modules)
probed = sorted(run._UNAVAILABLE)
image = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
values, problems = compute(image, image // 2 + 64, DEFAULT)  # the first cell's metrics
print(json.dumps({"imported": sorted(set(sys.modules) - before), "probed": probed, "problems": problems,
                  "computed": sorted(k for k, v in values.items() if v is not None)}))
"""


def test_the_first_cell_of_a_warmed_worker_imports_nothing_new() -> None:
    done = subprocess.run([sys.executable, "-c", FIRST_CELL], cwd=PROJECT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    from bench.metrics import BY_NAME, DEFAULT

    assert got["probed"] == sorted(DEFAULT)  # every selected metric was tried before the first cell
    assert got["imported"] == []  # ... so its first use imported nothing (pytorch_msssim did, lazily)
    assert got["problems"] == {} and set(got["computed"]) == {c for n in DEFAULT for c in BY_NAME[n].columns}

