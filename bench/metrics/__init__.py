"""Quality metrics: the registry (:mod:`bench.metrics.registry`) declares each one once.

The historical names (``psnr_rgb``, ``psnr_y``, ``ms_ssim``, ``ms_ssim_db``, ``all_metrics``) stay
importable from here.
"""

from bench.metrics.basic import (BT709, MS_SSIM_MIN_SIDE, all_metrics, luma, ms_ssim, ms_ssim_db, ms_ssim_y,
                                 psnr_rgb, psnr_y, psnr_yuv, ycbcr)
from bench.metrics.registry import BY_NAME, DEFAULT, JPEG_AI, METRICS, Metric, by_column, columns
from bench.metrics.run import compute, select

__all__ = ["BT709", "MS_SSIM_MIN_SIDE", "all_metrics", "luma", "ms_ssim", "ms_ssim_db", "ms_ssim_y", "psnr_rgb",
           "psnr_y", "psnr_yuv", "ycbcr", "BY_NAME", "DEFAULT", "JPEG_AI", "METRICS", "Metric", "by_column",
           "columns", "compute", "select"]
