"""Every quality metric, declared once as data: the store, export, report and provenance read this.

Adding a metric = one :class:`Metric` entry (keyword arguments) in :data:`METRICS` (its compute function in
``basic.py``/``perceptual.py`` or beside the entry) plus its test in ``tests/test_metrics.py``.
The JPEG AI set follows the JPEG AI CTC's list of objective metrics (ISO/IEC JTC1/SC29/WG1
N89022, "Report on the JPEG AI Call for Evidence Results", §4.1–4.6; PSNR-HVS-M joined in the
later CTC, not read here): computed on the luma of BT.709 Y'CbCr; VMAF on Y'CbCr 4:4:4 (it reads luma only).
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.metrics import basic, perceptual
from bench.metrics import nlpd as nlpd_impl
from bench.metrics import vmaf as vmaf_cli

Compute = Callable[[np.ndarray, np.ndarray, Any], "dict[str, float | None]"]


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One metric's declaration; keyword-only, so every entry names each field it sets."""

    name: str                      # 'psnr-rgb', 'ms-ssim', 'vmaf', ...
    columns: tuple[str, ...]       # stored columns (REAL), first one the metric's own value
    bd_column: str                 # the column BD-rate is computed on
    higher_is_better: bool
    colour: str                    # what it is computed on
    min_side: int                  # smaller images → NULL, never a number computed some other way
    family: str                    # 'psnr' | 'structural' | 'perceptual' (one BD table per family)
    definition: str                # one paragraph incl. its reference
    implementation: str            # library (its version is added at run time by implementation_version)
    jpeg_ai: bool                  # one of the JPEG AI CTC's seven
    default: bool                  # in the default set (cheap ones)
    compute: Compute               # (original uint8 H×W×3, decoded, per-worker context) → column values
    setup: Callable[[], Any] | None = None  # per-worker setup, its result passed as context
    unavailable: Callable[[], str | None] = lambda: None  # why it cannot run here, or None
    package: str | None = None     # distribution whose version names the implementation
    version: int = 1               # bumped when our computation of it changes: stored with every run's manifest

    @property
    def label(self) -> str:
        """How tables and figures name it: 'PSNR-RGB', 'MS-SSIM', 'VMAF', ..."""
        return self.name.upper()


def _one(column: str, fn: Callable[..., float | None]) -> Compute:
    return lambda original, decoded, context: {column: fn(original, decoded, context)}


def _ms_ssim(column: str, fn: Callable[[np.ndarray, np.ndarray], float | None]) -> Compute:
    def compute(original: np.ndarray, decoded: np.ndarray, context: Any) -> dict[str, float | None]:
        value = fn(original, decoded)
        return {column: value, f"{column}_db": basic.ms_ssim_db(value)}
    return compute


Y = "Y of BT.709 Y'CbCr (full range, float, [0, 1])"

METRICS: tuple[Metric, ...] = (
    Metric(
        name="psnr-rgb", columns=("psnr_rgb",), bd_column="psnr_rgb", higher_is_better=True, colour="R'G'B'",
        min_side=1, family="psnr",
        definition="PSNR over all pixels of all three channels, peak 255: 10·log10(255² / MSE), one MSE (not a mean "
                   "of per-channel PSNRs); inf for identical images.",
        implementation="numpy", jpeg_ai=False, default=True,
        compute=lambda o, d, c: {"psnr_rgb": basic.psnr_rgb(o, d)}, package="numpy",
    ),
    Metric(
        name="psnr-y", columns=("psnr_y",), bd_column="psnr_y", higher_is_better=True,
        colour="Y = 0.2126 R + 0.7152 G + 0.0722 B (BT.709, float)", min_side=1, family="psnr",
        definition="PSNR of BT.709 luma computed in floating point from the 8-bit R'G'B', peak 255.",
        implementation="numpy", jpeg_ai=False, default=True,
        compute=lambda o, d, c: {"psnr_y": basic.psnr_y(o, d)}, package="numpy",
    ),
    Metric(
        name="psnr-yuv", columns=("psnr_yuv",), bd_column="psnr_yuv", higher_is_better=True,
        colour="Y'CbCr BT.709 full range, float, weights 6:1:1", min_side=1, family="psnr",
        definition="(6·PSNR_Y + PSNR_Cb + PSNR_Cr) / 8 with each PSNR at peak 255, the weighting of JVET's CTC "
                   "(JVET common test conditions), also reported by JPEG AI.",
        implementation="numpy", jpeg_ai=False, default=True,
        compute=lambda o, d, c: {"psnr_yuv": basic.psnr_yuv(o, d)}, package="numpy",
    ),
    Metric(
        name="ms-ssim", columns=("ms_ssim", "ms_ssim_db"), bd_column="ms_ssim_db", higher_is_better=True,
        colour="R'G'B' (mean over channels)", min_side=basic.MS_SSIM_MIN_SIDE, family="structural",
        definition="MS-SSIM (Wang, Simoncelli & Bovik 2003): 5 scales, 11×11 Gaussian window σ 1.5, data range 255, "
                   "per channel then averaged; BD on its dB form −10·log10(1 − MS-SSIM), as CompressAI plots it.",
        implementation="pytorch-msssim", jpeg_ai=False, default=True, compute=_ms_ssim("ms_ssim", basic.ms_ssim),
        package="pytorch-msssim",
    ),
    Metric(
        name="ms-ssim-y", columns=("ms_ssim_y", "ms_ssim_y_db"), bd_column="ms_ssim_y_db", higher_is_better=True,
        colour=Y.replace("[0, 1]", "[0, 255]"), min_side=basic.MS_SSIM_MIN_SIDE, family="structural",
        definition="MS-SSIM as above on BT.709 luma, the JPEG AI CTC's form; BD on −10·log10(1 − MS-SSIM).",
        implementation="pytorch-msssim", jpeg_ai=True, default=True,
        compute=_ms_ssim("ms_ssim_y", basic.ms_ssim_y), package="pytorch-msssim",
    ),
    Metric(
        name="iw-ssim", columns=("iw_ssim",), bd_column="iw_ssim", higher_is_better=True, colour=Y, min_side=161,
        family="structural",
        definition="Information-content weighted SSIM (Wang & Li, IEEE TIP 2011): 5-level Laplacian pyramid, "
                   "11×11 window σ 1.5, weights from a Gaussian scale mixture model.",
        implementation="piq", jpeg_ai=True, default=False, compute=_one("iw_ssim", perceptual.iw_ssim),
        unavailable=lambda: perceptual.missing("piq"), package="piq",
    ),
    Metric(
        name="vif", columns=("vif",), bd_column="vif", higher_is_better=True, colour=Y, min_side=41,
        family="structural",
        definition="Pixel-domain visual information fidelity VIFp (Sheikh & Bovik, IEEE TIP 2006), 4 scales, "
                   "noise variance σ_n² = 2 (range [0, 1] data).",
        implementation="piq", jpeg_ai=True, default=False, compute=_one("vif", perceptual.vif),
        unavailable=lambda: perceptual.missing("piq"), package="piq",
    ),
    Metric(
        name="fsim", columns=("fsim",), bd_column="fsim", higher_is_better=True, colour=Y, min_side=32,
        family="structural",
        definition="Feature similarity FSIM (Zhang et al., IEEE TIP 2011): phase congruency and gradient magnitude, "
                   "luma only (not FSIMc); the image is first downsampled as in the authors' code.",
        implementation="piq", jpeg_ai=True, default=False, compute=_one("fsim", perceptual.fsim),
        unavailable=lambda: perceptual.missing("piq"), package="piq",
    ),
    Metric(
        name="nlpd", columns=("nlpd",), bd_column="nlpd", higher_is_better=False, colour=Y, min_side=32,
        family="perceptual",
        definition="Normalised Laplacian pyramid distance (Laparra et al., Electronic Imaging 2016): 6-level "
                   "Laplacian pyramid, divisive normalisation, RMS per level, mean over levels; lower is better. "
                   "One plane (Y), after the authors' MATLAB NLP_dist.m.",
        implementation="lic-bench (numpy/scipy)", jpeg_ai=True, default=False,
        compute=_one("nlpd", perceptual.nlpd), package="scipy", version=nlpd_impl.VERSION,
    ),
    Metric(
        name="psnr-hvs-m", columns=("psnr_hvs_m",), bd_column="psnr_hvs_m", higher_is_better=True, colour=Y,
        min_side=8, family="perceptual",
        definition="PSNR-HVS-M (Ponomarenko et al., VPQM 2007): MSE of 8×8 DCT coefficients weighted by the "
                   "contrast sensitivity function and reduced by between-coefficient contrast masking, peak 1; "
                   "inf if identical.",
        implementation="psnr-hvsm", jpeg_ai=True, default=False, compute=_one("psnr_hvs_m", perceptual.psnr_hvs_m),
        unavailable=lambda: perceptual.missing("psnr_hvsm"), package="psnr-hvsm",
    ),
    Metric(
        name="vmaf", columns=("vmaf",), bd_column="vmaf", higher_is_better=True,
        colour="Y'CbCr BT.709 full range 8-bit 4:4:4 (the model reads Y)", min_side=16, family="perceptual",
        definition="VMAF (Li et al., Netflix tech blog 2016) with the reference model vmaf_v0.6.1 of libvmaf "
                   "(SVM fusion of VIF at 4 scales, ADM and motion, zero for a single frame), one frame.",
        implementation="libvmaf vmaf CLI", jpeg_ai=True, default=False, compute=_one("vmaf", vmaf_cli.vmaf),
        unavailable=vmaf_cli.unavailable,
    ),
    Metric(
        name="ssimulacra2", columns=("ssimulacra2",), bd_column="ssimulacra2", higher_is_better=True,
        colour="sRGB → linear → XYB", min_side=8, family="perceptual",
        definition="SSIMULACRA 2 (Sneyers, Cloudinary 2023; libjxl tools/ssimulacra2.cc): SSIM and edge "
                   "artifact/detail-loss maps in XYB over 6 scales, 1- and 4-norms, fitted to 100 = lossless.",
        implementation="ssimulacra2", jpeg_ai=False, default=False,
        compute=_one("ssimulacra2", perceptual.ssimulacra2),
        unavailable=lambda: perceptual.missing("ssimulacra2", "scipy"), package="ssimulacra2",
    ),
    Metric(
        name="lpips", columns=("lpips",), bd_column="lpips", higher_is_better=False, colour="R'G'B' in [0, 1]",
        min_side=16, family="perceptual",
        definition="LPIPS-VGG (Zhang et al., CVPR 2018): distance of normalised VGG-16 features with learned weights; "
                   "available only when the weights are in the torch hub cache.",
        implementation="piq", jpeg_ai=False, default=False, compute=_one("lpips", perceptual.deep_distance),
        setup=perceptual.lpips_setup, unavailable=lambda: perceptual.hub_weights_missing("lpips"), package="piq",
    ),
    Metric(
        name="dists", columns=("dists",), bd_column="dists", higher_is_better=False, colour="R'G'B' in [0, 1]",
        min_side=16, family="perceptual",
        definition="DISTS (Ding et al., IEEE TPAMI 2020): structure and texture similarity of VGG-16 features; "
                   "available only when the weights are in the torch hub cache.",
        implementation="piq", jpeg_ai=False, default=False, compute=_one("dists", perceptual.deep_distance),
        setup=perceptual.dists_setup, unavailable=lambda: perceptual.hub_weights_missing("dists"), package="piq",
    ),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
DEFAULT: tuple[str, ...] = tuple(m.name for m in METRICS if m.default)
JPEG_AI: tuple[str, ...] = tuple(m.name for m in METRICS if m.jpeg_ai)


def columns() -> tuple[str, ...]:
    """Every stored metric column, in declaration order."""
    return tuple(c for m in METRICS for c in m.columns)


def by_column(column: str) -> Metric | None:
    """The metric that stores ``column``."""
    return next((m for m in METRICS if column in m.columns), None)


def implementation_version(metric: Metric) -> str:
    """``library version`` of the metric's implementation here (``not installed`` if absent), then
    ``, <name> v<N>`` once the metric's own version is past 1: a changed computation, so a run's
    manifest says which one its rows hold (NLPD v1 was pyiqa's channel-mixing 3-channel call)."""
    if metric.name == "vmaf":
        text = vmaf_cli.version() or "libvmaf not built"
    elif metric.package is None:
        text = metric.implementation
    else:
        try:
            text = f"{metric.package} {md.version(metric.package)}"
        except md.PackageNotFoundError:
            text = f"{metric.package} not installed"
    return text + (f", {metric.name} v{metric.version}" if metric.version != 1 else "")
