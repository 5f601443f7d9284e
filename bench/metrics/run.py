"""Selecting metrics (``--metrics``) and computing them in a worker, never failing the cell.

A metric that is unavailable here (missing library, weights or binary), too small an image, or
one whose computation raises leaves its columns NULL; the reason goes to the row's extras.
Per-worker setups (a network loaded once) are cached in this process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.errors import UsageError
from bench.metrics.registry import BY_NAME, DEFAULT, JPEG_AI, METRICS, Metric

_CONTEXTS: dict[str, Any] = {}
_UNAVAILABLE: dict[str, str | None] = {}


def select(spec: str | None) -> tuple[str, ...]:
    """``'default'``/None, ``'jpeg-ai'``, ``'all'`` or comma-separated names (and those words) → names,
    always with the default set: the run's summary, the report's RD curves and its BD tables against
    other stores and published anchors read PSNR-RGB and MS-SSIM, and the default set costs little
    beside any other metric (``--metrics jpeg-ai`` = default + the JPEG AI set).

    An unknown name is a :class:`UsageError` listing the known ones."""
    names: list[str] = list(DEFAULT)
    for word in (spec or "default").split(","):
        word = word.strip()
        group = {"default": DEFAULT, "jpeg-ai": JPEG_AI, "all": tuple(BY_NAME)}.get(word)
        if group is None and word not in BY_NAME:
            raise UsageError(f"--metrics: unknown metric {word!r}; known: default, jpeg-ai, all, "
                             f"{', '.join(BY_NAME)} (python -m bench metrics lists them)")
        names += group if group is not None else [word] if word else []
    return tuple(m.name for m in METRICS if m.name in names)  # declaration order, no duplicates


def unavailable(metric: Metric) -> str | None:
    """Why ``metric`` cannot run in this process (cached), else None."""
    if metric.name not in _UNAVAILABLE:
        try:
            _UNAVAILABLE[metric.name] = metric.unavailable()
        except Exception as exc:  # a probe must not break the run
            _UNAVAILABLE[metric.name] = f"availability check failed: {exc}"
    return _UNAVAILABLE[metric.name]


def compute(original: np.ndarray, decoded: np.ndarray,
            names: tuple[str, ...] = DEFAULT) -> tuple[dict[str, float | None], dict[str, str]]:
    """Column values of the selected metrics, and why each available-size metric that gave NULL did so."""
    values: dict[str, float | None] = {}
    problems: dict[str, str] = {}
    for name in names:
        metric = BY_NAME[name]
        values.update(dict.fromkeys(metric.columns))
        if min(original.shape[:2]) < metric.min_side:
            continue  # NULL by definition (the registry states the minimum), not a problem
        reason = unavailable(metric)
        if reason is None:
            try:
                if metric.setup is not None and name not in _CONTEXTS:
                    _CONTEXTS[name] = metric.setup()
                values.update(metric.compute(original, decoded, _CONTEXTS.get(name)))
                continue
            except Exception as exc:  # a metric never fails a cell: NULL, and the reason kept
                reason = f"{type(exc).__name__}: {exc}"
        problems[name] = reason
    return values, problems


def table(names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """One row per metric (all, or ``names``): what ``bench metrics`` shows and the run manifest records."""
    from bench.metrics.registry import implementation_version

    rows = []
    for metric in METRICS:
        if names is not None and metric.name not in names:
            continue
        reason = unavailable(metric)
        rows.append({"metric": metric.name, "columns": ", ".join(metric.columns), "bd column": metric.bd_column,
                     "higher is better": metric.higher_is_better, "family": metric.family, "on": metric.colour,
                     "min side": metric.min_side, "jpeg-ai": metric.jpeg_ai, "default": metric.default,
                     "implementation": implementation_version(metric) if reason is None else metric.implementation,
                     "available": reason is None, "reason": reason})
    return rows
