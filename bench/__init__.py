"""lic-bench: benchmarking and rate-distortion analysis for learned image compression."""

import os as _os

__version__ = "0.1.0"

# OpenBLAS (numpy's, and scipy's own copy) starts a thread pool the size of the machine when it is
# loaded. Under a virtual-memory limit (``ulimit -v``) the parent of a run, which has mapped its
# libraries by then, could not map those threads' buffers and spun at 100 % CPU for minutes while
# importing scipy (bench.analysis.bd, for the run's summary). No lic-bench process does BLAS work
# that needs a pool outside the workers, which set their own thread counts (bench.worker), so the
# pool is capped here, before numpy or scipy can load, unless the user has chosen a size.
if "OPENBLAS_NUM_THREADS" not in _os.environ and "OMP_NUM_THREADS" not in _os.environ:
    _os.environ["OPENBLAS_NUM_THREADS"] = "1"
