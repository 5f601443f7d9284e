"""The complexity columns of a cell: a learned codec's counted multiply-adds, stored once per size.

The counting itself is model-level and lives below the codecs (:mod:`bench.models.macs`, called
through a codec's public :meth:`~bench.codecs.base.Codec.complexity`); the matmul yardstick stored
beside it is the device layer's (:func:`bench.device.matmul_gflops`). This module is the measure
layer's part: ask the codec, cache the answer, add the yardstick.
"""

from __future__ import annotations

from typing import Any

from bench.device import matmul_gflops
from bench.measurecache import MeasureCache, cell_key

_CACHE = MeasureCache()  # this process's counts when the caller passes no cache
_MATMUL: dict[str, float] = {}


def cell_columns(codec: Any, rate: Any, height: int, width: int, cache: MeasureCache | None = None) -> dict[str, Any]:
    """Complexity columns of a cell, counted once per (configuration, rate, size, weights, code)
    and kept in ``cache`` (:mod:`bench.measurecache`: shared by a run's workers and kept for a
    resumed run when it has a folder; this process only otherwise).

    Empty for codecs whose :meth:`~bench.codecs.base.Codec.complexity` returns None (classical
    codecs); ``matmul_gflops`` is the yardstick timed once in this process (a measurement of this
    run's machine, never cached). A counting failure is stored in ``complexity`` as an error,
    never fails the cell, and is kept in this process only (a later run counts again).
    """
    cache = _CACHE if cache is None else cache
    key = cell_key("complexity", codec, rate, height, width)
    columns = cache.get(key)
    if columns is None:
        try:
            counted = codec.complexity(rate, height, width)
        except Exception as exc:  # noqa: BLE001 — the measurement stands without its count
            columns = {"complexity": {"error": f"{type(exc).__name__}: {exc}"}}
            cache.put(key, columns, persist=False)
        else:
            if counted is None:
                return {}
            columns = counted.columns()
            cache.put(key, columns)
    if codec.device not in _MATMUL:
        _MATMUL[codec.device] = matmul_gflops(device=codec.device)
    return {**columns, "matmul_gflops": _MATMUL[codec.device]}
