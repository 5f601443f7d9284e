"""Importing lic-bench caps OpenBLAS's thread pool before numpy or scipy load (issue 21, D13): under
``ulimit -v`` the run's parent otherwise spun at 100 % CPU starting the pool while importing scipy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
PROBE = ("import bench, os; import numpy, bench.analysis.bd; "
         "print(os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')))")


def _probe(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT, capture_output=True, text=True, timeout=300,
                          env={**clean, "PYTHONPATH": str(PROJECT), **env})
    assert done.returncode == 0, done.stderr
    value, threads = done.stdout.split()
    return value, int(threads)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux /proc")
def test_importing_bench_caps_openblas_before_numpy_and_scipy_start_their_pools() -> None:
    value, threads = _probe()
    assert value == "1"
    assert threads == 1  # neither numpy's nor scipy's OpenBLAS started a pool thread


def test_a_thread_count_the_user_chose_is_kept() -> None:
    assert _probe(OPENBLAS_NUM_THREADS="2")[0] == "2"
    assert _probe(OMP_NUM_THREADS="2")[0] == "None"  # OpenBLAS follows OMP_NUM_THREADS: left alone
