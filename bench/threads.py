"""Thread counts of the math libraries (OpenMP, MKL, OpenBLAS, torch) in this process.

A low module: the worker (:mod:`bench.worker`) and the cross-decode child (:mod:`bench.crossdecode`)
both pin them, and neither may import the other.
"""

from __future__ import annotations

import os
import sys


def set_thread_count(threads: int) -> None:
    """Pin math-library threads before torch/numpy spin up their pools."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
