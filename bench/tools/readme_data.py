"""README tables of committed data and benchmark stores, for :mod:`bench.tools.readme_tables`: the
measured VTM anchor, counted kMAC/pixel, the trained models' BD-rates and the LOF pairs; and the one
Markdown table format every README generator prints (the decode tables: :mod:`bench.tools.readme_decode`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from bench.errors import ReportError

#: kmac rows: (configuration counted, how the README names it, rate-point groups: (label, first rate) …)
KMAC_ROWS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("mlicpp-untrained", "`mlicpp` (fast mode)", ()),  # the same network as mlicpp, seeded weights
    ("msp-fast", "`msp-fast`", ()),
    ("msp-base", "`msp-base`", ()),
    ("msp-best", "`msp-best`", ()),
    ("mbt2018", "`mbt2018` q1–4 / q5–8", (("q1–4", "quality=1"), ("q5–8", "quality=5"))),
)
KMAC_SIZE = (512, 768)  # height, width: a Kodak image
TRAINED_ANCHORS = ("kodak/vtm-23.13", "codec:jpeg-420", "codec:webp", "codec:jpeg2000", "codec:avif")



def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table as the README writes it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def vtm_anchor_table(name: str = "kodak/vtm-23.13") -> str:
    """The measured VTM anchor's mean curve: QP, bpp, PSNR-RGB, MS-SSIM per rate point."""
    from bench.anchors.store import load_anchor

    anchor = load_anchor(name)
    labels = anchor.conditions.get("rate_points") or []
    qps = [str(label).partition("=")[2] or str(label) for label in labels]
    if len(qps) != len(anchor.points["bpp"]):
        raise ReportError(f"anchor {name!r}: {len(qps)} rate point labels for {len(anchor.points['bpp'])} points")
    rows = [[qp, f"{b:.4f}", f"{p:.3f}", f"{m:.4f}"] for qp, b, p, m in
            zip(qps, anchor.values("bpp"), anchor.values("psnr_rgb"), anchor.values("ms_ssim"))]
    return markdown(["QP", "bpp", "PSNR-RGB (dB)", "MS-SSIM"], rows)


def kmac_row(config_name: str, shown: str, groups: tuple[tuple[str, str], ...]) -> list[str]:
    """One kmac row: encode and decode kMAC/pixel and parameters, per rate-point group joined by `` / ``."""
    from bench.codecs import registry

    config = registry.load_configs()[config_name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained weights: counts do not depend on them
        codec = registry.create(config, device="cpu")
        try:
            counts = [codec.complexity(config.rate(label) if label else config.rates[0], *KMAC_SIZE)
                      for label in ([g[1] for g in groups] or [None])]
        finally:
            codec.close()
    enc = " / ".join(f"{c.kmac_per_px(c.encoder_macs):.0f}" for c in counts)
    dec = " / ".join(f"{c.kmac_per_px(c.decoder_macs):.0f}" for c in counts)
    params = " / ".join(f"{c.params / 1e6:.1f} M" for c in counts)
    return [shown, enc, dec, params]


def kmac_table(names: Sequence[str] | None = None) -> str:
    """Counted kMAC/pixel at 768×512 of the :data:`KMAC_ROWS` (or those of ``names``)."""
    rows = [kmac_row(*spec) for spec in KMAC_ROWS if names is None or spec[0] in names]
    return markdown(["configuration", "encode kMAC/px", "decode kMAC/px", "parameters"], rows)


def _pct(value: float, low: float, high: float) -> str:
    """``+33.4 % [+26.8, +42.4]``; whole percents where any of the three reaches 100."""
    spec = "+.0f" if max(abs(value), abs(low), abs(high)) >= 100 else "+.1f"

    def f(v: float) -> str:
        return format(v, spec).replace("-", "−")
    return f"{f(value)} % [{f(low)}, {f(high)}]"


def trained_bd_table(results: Path, codecs: Sequence[str], anchors: Sequence[str] = TRAINED_ANCHORS,
                     dataset: str = "kodak", metric: str = "psnr-rgb") -> str:
    """BD-rate (``metric``, pchip, average curve) of each of ``codecs`` against each anchor and each other, with
    the 95 % bootstrap interval, then (for PSNR-RGB) the median encode and decode CPU seconds per image, over
    the rows of the configurations this checkout ships (a store may hold rows of older weights: the table
    describes the shipped ones)."""
    from bench.anchor_choice import choose_anchor
    from bench.cells import config_hash
    from bench.codecs.registry import load_configs
    from bench.metrics.registry import METRICS
    from bench.results import from_frame
    from bench.results_rd import short_name
    from bench.store import db_path, read_measurements

    configs = load_configs()
    wanted = set(codecs) | {a.partition(":")[2] for a in anchors if a.startswith("codec:")}
    frame = read_measurements(results, status=None)
    shipped = {name: config_hash(configs[name]) for name in wanted if name in configs}
    frame = frame[frame["codec"].isin(list(shipped)) & (frame["config_hash"] == frame["codec"].map(shipped))]
    missing = sorted(wanted - set(frame["codec"]))
    if missing:
        raise ReportError(f"{results}: no rows of the shipped configuration of {', '.join(missing)}")
    view = from_frame(frame, Path(results), db_path(results))
    chosen_metric = [m for m in METRICS if m.name == metric]
    if not chosen_metric:
        raise ReportError(f"unknown metric {metric!r}; one of {', '.join(m.name for m in METRICS)}")
    key = short_name(chosen_metric[0].bd_column)

    tables = {}

    def cell(anchor: str, codec: str) -> tuple[str, int]:
        if anchor not in tables:
            chosen = choose_anchor(view, anchor, dataset, [])
            tables[anchor] = view.bd(chosen.dataset, chosen.target, chosen.name, "pchip", "average-curve", chosen_metric).table
        table = tables[anchor]
        row = table[table["codec"] == codec]
        if len(row) != 1:
            raise ReportError(f"{results}: {len(row)} BD rows of {codec} against {anchor}")
        r = row.iloc[0]
        text = _pct(r[f"bd_rate_{key}_pct"], r[f"bd_rate_{key}_low"], r[f"bd_rate_{key}_high"])
        return text, int(r[f"n_images_{key}"])

    rows, images = [], set()
    for anchor in anchors:
        cells = [cell(anchor, c) for c in codecs]
        images |= {n for _, n in cells}
        rows.append([f"`{anchor.partition(':')[2] or anchor}`", *(text for text, _ in cells)])
    if len(codecs) == 2:
        cells = [cell(f"codec:{codecs[1]}", codecs[0]), cell(f"codec:{codecs[0]}", codecs[1])]
        images |= {n for _, n in cells}
        rows.append(["each other", f"{cells[0][0]} vs {codecs[1]}", f"{cells[1][0]} vs {codecs[0]}"])
    native = view.rows[(view.rows["dataset"] == dataset) & (view.rows["resolution"] == "native")]
    for column, what in (("enc_cpu_s", "encode"), ("dec_cpu_s", "decode")) if metric == "psnr-rgb" else ():
        medians = [native.loc[native["codec"] == c, column].median() for c in codecs]
        rows.append([f"{what}: median CPU-s per image (native size)", *(f"{m:.2f}" for m in medians)])
    counted = " or ".join(str(n) for n in sorted(images))
    return markdown([f"vs anchor (BD-rate {metric.upper()}, pchip, 95 % interval, {counted} images)", *codecs], rows)


def lof_table(results: Path) -> str:
    """Each LOF pair of a store, per dataset and size: BD-rate of LOF against its base (PSNR-RGB and MS-SSIM,
    paired 95 % bootstrap), the images, and the encode and decode CPU time (medians, LOF ÷ base) — the
    figures of the report's LOF section (:func:`bench.lofresults.lof_figures`)."""
    from bench.lofresults import lof_figures
    from bench.results import load

    summary = lof_figures(load(results)).summary
    if summary.empty:
        raise ReportError(f"{results}: no LOF configuration with its base and an image complete for both")
    rows = []
    for r in summary.to_dict("records"):
        rows.append([f"`{r['lof']}` vs `{r['base']}`", f"{r['dataset']} {r['resolution']}", str(r["n_images"]),
                     str(r["rate_points"]),
                     _pct(r["bd_rate_psnr_pct"], r["bd_rate_psnr_low"], r["bd_rate_psnr_high"]),
                     _pct(r["bd_rate_msssim_pct"], r["bd_rate_msssim_low"], r["bd_rate_msssim_high"]),
                     f"{r['enc_cpu_base_s']:.2f} → {r['enc_cpu_lof_s']:.1f} (×{r['enc_cpu_ratio']:.0f})",
                     f"×{r['dec_cpu_ratio']:.3f}"])
    return markdown(["LOF vs base", "images of", "images", "rate points", "BD-rate PSNR-RGB [95 %]",
                     "BD-rate MS-SSIM [95 %]", "encode CPU-s (median)", "decode CPU"], rows)


def overhead_md(results: Path) -> str:
    """The report's suite-overhead table of a store (:func:`bench.report.tables.overhead_table`): per codec,
    the cells' wall time against their timed calls."""
    from bench.report.tables import overhead_table
    from bench.results import load

    table = overhead_table(load(results).rows)
    if table.empty:
        raise ReportError(f"{results}: no cell with both its wall time and its timed calls stored")
    rows = [[r["codec"], r["device"], str(r["cells"]), f"{r['cell_wall_s']:.1f}", f"{r['timed_s']:.1f}",
             f"{r['overhead']:.2f}"] for r in table.to_dict("records")]
    return markdown(["codec", "device", "cells", "cells' wall (s)", "timed calls (s)", "cell ÷ timed"], rows)
