"""Bjøntegaard-delta (BD) metrics: BD-rate and BD-quality between rate-distortion curves, over datasets.

The public API follows FAU's ``bjontegaard`` package (the method is a keyword argument)::

    bd_rate(rate_anchor, dist_anchor, rate_test, dist_test, method="pchip")     # percent
    bd_quality(rate_anchor, dist_anchor, rate_test, dist_test, method="pchip")  # dB / quality units

Modules:

- :mod:`~bench.analysis.bd.core` — one pair of curves: methods ``pchip`` (JVET CTC), ``cubic``
  (VCEG-M33), ``akima``; input checks, convex hull, overlap.
- :mod:`~bench.analysis.bd.averaging` — per-image rows to one BD value: ``average-curve`` and
  ``mean-of-per-image``; which images a BD can rest on.
- :mod:`~bench.analysis.bd.bootstrap` — percentile bootstrap intervals over images, vectorised.
- :mod:`~bench.analysis.bd.table` — tables over codecs: BD with intervals, sensitivity to method
  and convention, the JPEG AI mean over its seven metrics.

Everything here is a pure function of its inputs: no I/O.
"""

from bench.analysis.bd.averaging import (AVERAGE_CURVE, AVERAGINGS, MEAN_OF_PER_IMAGE, Averaging, average_curve,
                                         average_curve_bd, complete_images, curve_of, dataset_bd, image_matrix,
                                         mean_of_per_image_bd)
from bench.analysis.bd.bootstrap import (DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, MIN_BOOTSTRAP_IMAGES, Interval,
                                         batch_bd, bootstrap_bd, few_images_note)
from bench.analysis.bd.core import (DEFAULT_MIN_OVERLAP, METHODS, MIN_POINTS, BDResult, ConvexHullWarning, Curve,
                                    HasCurve, Kind, LowOverlapWarning, Method, bd, bd_curves, bd_quality, bd_rate,
                                    upper_hull_mask)
from bench.analysis.bd.table import (DEFAULT_GROUP_BY, JPEG_AI_METRICS, UNTRAINED_REASON, bd_table, jpeg_ai_summary,
                                     sensitivity_table)
from bench.errors import BDError

__all__ = [
    "AVERAGE_CURVE", "AVERAGINGS", "BDError", "BDResult", "ConvexHullWarning", "Curve", "DEFAULT_GROUP_BY",
    "DEFAULT_LEVEL", "DEFAULT_MIN_OVERLAP", "DEFAULT_RESAMPLES", "DEFAULT_SEED", "MIN_BOOTSTRAP_IMAGES", "HasCurve",
    "Interval",
    "JPEG_AI_METRICS", "Kind", "LowOverlapWarning", "MEAN_OF_PER_IMAGE", "METHODS", "MIN_POINTS", "Method",
    "UNTRAINED_REASON", "Averaging", "average_curve", "average_curve_bd", "batch_bd", "bd", "bd_curves",
    "bd_quality", "bd_rate", "bd_table", "bootstrap_bd", "complete_images", "curve_of", "dataset_bd",
    "few_images_note", "image_matrix", "jpeg_ai_summary", "mean_of_per_image_bd", "sensitivity_table",
    "upper_hull_mask",
]
