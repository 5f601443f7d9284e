"""The report's matplotlib figures, drawn from the frames of :mod:`bench.report.tables`.

Every function returns a ``Figure`` and draws nothing it was not given; :func:`save` writes PNG
and SVG. The Agg backend is selected here, so the report runs without a display.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from bench.outfiles import write_atomically  # noqa: E402
from bench.report.tables import COSTS  # noqa: E402
from bench.results_rd import QUALITIES  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
ANCHOR_COLOUR = "0.25"
STYLE = {"axes.grid": True, "grid.alpha": 0.35, "axes.spines.top": False, "axes.spines.right": False,
         "font.size": 10, "legend.fontsize": 8.5, "legend.framealpha": 0.9, "svg.fonttype": "none"}


def colours(names: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per name (sorted), shared by every figure so a codec keeps its colour."""
    names = sorted(set(names))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.svg``, each atomically; close the figure.

    The layout (constrained) is computed while drawing the PNG and then frozen, so the SVG reuses
    it instead of solving it again (the same picture, ~15 % less time saving figures)."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    try:
        write_atomically(paths[0], lambda fh: fig.savefig(fh, format="png", dpi=150, bbox_inches="tight"),
                         force=True, binary=True)
        fig.set_layout_engine("none")
        write_atomically(paths[1], lambda fh: fig.savefig(fh, format="svg", bbox_inches="tight"),
                         force=True, binary=True)
    finally:
        plt.close(fig)
    return paths


def finite_points(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows of ``frame`` whose ``columns`` are all finite numbers: the ones a plot can place (an
    MS-SSIM of 1 is +inf dB, a lossless PSNR +inf; those stay in the CSV, not on the axes)."""
    if frame.empty:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    for column in columns:
        keep &= np.isfinite(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float))
    return frame[keep]


def _range(values: np.ndarray, pad: float = 0.04) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    return lo - pad * span, hi + pad * span


def rd_figure(curves: dict[str, pd.DataFrame], anchors: dict[str, pd.DataFrame], dataset: str,
              palette: dict[str, tuple]) -> Figure:
    """Bits per pixel vs each quality of :data:`QUALITIES` (one panel each) for one dataset.

    ``curves[q]`` holds the measured dataset-average curves (solid, one colour per codec),
    ``anchors[q]`` the published curves (dashed, grey shades, labelled with their source). The
    x axis spans the measured rates (anchors are clipped to it); the y axis fits what is visible.
    """
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(QUALITIES), figsize=(12.5, 5.0), layout="constrained")
        handles: dict[str, Line2D] = {}
        anchor_styles = ["--", "-.", ":", (0, (5, 2, 1, 2))]
        for ax, (quality, ylabel) in zip(np.atleast_1d(axes), QUALITIES.items()):
            measured = curves.get(quality, pd.DataFrame())
            measured = measured[measured["dataset"] == dataset] if len(measured) else measured
            measured = finite_points(measured, ("bpp", quality))
            xmax = float(measured["bpp"].max()) * 1.05 if len(measured) else None
            visible_y = [measured[quality].to_numpy()] if len(measured) else []
            for i, (label, group) in enumerate(measured.groupby("label", sort=True)):
                group = group.sort_values("bpp")
                (line,) = ax.plot(group["bpp"], group[quality], marker=MARKERS[i % len(MARKERS)], ms=4.5, lw=1.6,
                                  color=palette.get(group["codec"].iloc[0]), label=label)
                handles.setdefault(label, line)
            published = finite_points(anchors.get(quality, pd.DataFrame()), ("bpp", quality))
            for j, (label, group) in enumerate(published.groupby("label", sort=False) if len(published) else []):
                group = group.sort_values("bpp")
                (line,) = ax.plot(group["bpp"], group[quality], ls=anchor_styles[j % len(anchor_styles)], lw=1.5,
                                  marker=".", ms=5, color=str(0.15 + 0.2 * (j % 3)), label=f"{label} (published)")
                handles.setdefault(line.get_label(), line)
                inside = group[group["bpp"] <= xmax] if xmax else group
                visible_y.append(inside[quality].to_numpy())
                if xmax and group["bpp"].min() < xmax < group["bpp"].max():  # where it leaves the plot
                    visible_y.append(np.interp([xmax], group["bpp"], group[quality]))
            ax.set_xlabel("bits per pixel (bpp)")
            ax.set_ylabel(ylabel)
            if xmax:
                ax.set_xlim(0, xmax)
            ys = np.concatenate([v for v in visible_y if len(v)]) if visible_y else np.array([])
            if ys.size:
                ax.set_ylim(*_range(ys))
            if not len(measured) and not len(published):
                ax.text(0.5, 0.5, f"no {ylabel} data", transform=ax.transAxes, ha="center", va="center")
        fig.suptitle(f"Rate-distortion on {dataset}: dataset-average curves (native resolution)")
        if handles:
            fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                       ncol=min(4, len(handles)), frameon=False)
    return fig


def scaling_figure(points: pd.DataFrame, fits: pd.DataFrame, costs: Sequence[str], title: str,
                   palette: dict[str, tuple], codecs: Sequence[str] = (),
                   flagged: Collection[tuple[str, str, str]] = ()) -> Figure:
    """Cost vs megapixels on log-log axes, one panel per cost, with the fitted power law.

    Markers are the per-size medians over the ladder images; the line is the fit
    ``cost = C·pixels^k`` drawn over the sizes it was fitted on; the legend gives k and R².
    ``codecs`` (those on the ladder) lets the panel name the ones with no positive value at all;
    a ``(codec, device, cost)`` in ``flagged`` gets "⚠ wall ≫ CPU" in the legend (a fit of waiting).
    """
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(costs), figsize=(6.3 * len(costs), 5.6), layout="constrained")
        for ax, cost in zip(np.atleast_1d(axes), costs):
            label, divisor, unit = COSTS[cost]
            pts = points[points["cost"] == cost]
            for i, ((codec, device), group) in enumerate(pts.groupby(["codec", "device"], sort=True)):
                colour = palette.get(codec)
                fit = fits[(fits["codec"] == codec) & (fits["device"] == device) & (fits["cost"] == cost)]
                name = codec if pts["device"].nunique() == 1 else f"{codec} ({device})"
                if len(fit) and np.isfinite(fit["exponent"].iloc[0]):
                    f = fit.iloc[0]
                    if f["n_sizes"] < 3:  # a line through two sizes is exact: R² says nothing
                        name += f": k={f['exponent']:.2f} (2 sizes)"
                    else:
                        r2 = "n/a" if not np.isfinite(f["r2"]) else f"{f['r2']:.2f}"
                        name += f": k={f['exponent']:.2f}, R²={r2}"
                    x = np.geomspace(group["pixels"].min(), group["pixels"].max(), 50)
                    y = np.exp(f["intercept"]) * x ** f["exponent"] if "intercept" in f else None
                    if y is not None:
                        ax.plot(x / 1e6, y / divisor, color=colour, lw=1.2, alpha=0.8)
                    if (codec, device, cost) in flagged:
                        name += " ⚠ wall ≫ CPU"
                else:
                    name += ": no fit"
                ax.plot(group["megapixels"], group["value"] / divisor, ls="none", marker=MARKERS[i % len(MARKERS)],
                        ms=5, color=colour, label=name)
            ax.set_xscale("log")
            ax.set_yscale("log")
            _plain_axis(ax.xaxis)
            ax.set_xlabel("megapixels (log)")
            if unit == "s":
                _seconds_axis(ax.yaxis)
                ax.set_ylabel(f"{label} (log)")
            else:
                _plain_axis(ax.yaxis)
                ax.set_ylabel(f"{label} ({unit}, log)")
            absent = sorted(set(codecs) - set(pts["codec"]))
            if absent:
                ax.text(0.02, 0.98, "nothing positive to draw for:\n" + ", ".join(absent), transform=ax.transAxes,
                        va="top", fontsize=8, color="0.3")
            ax.set_title(label)
            if len(pts):
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
            else:
                ax.text(0.5, 0.5, "no positive values on the ladder", transform=ax.transAxes, ha="center")
        fig.suptitle(title)
    return fig


#: x axes of the trade-off figures: column → (axis label, title, tick formatter or None for plain)
TRADEOFF_X = {
    "dec_time_s": ("median decode time per image (log)", "Decode time vs coding efficiency"),
    "dec_kmac_per_px": ("decoder multiply-adds, kMAC/pixel (log; counted, see bench.models.macs)",
                        "Decoder complexity vs coding efficiency"),
}


def tradeoff_figure(frame: pd.DataFrame, anchor_label: str, palette: dict[str, tuple], x: str = "dec_time_s") -> Figure:
    """Median decode time or decoder kMAC/pixel (``x``, log) vs BD-rate (y) per codec; one marker per
    family (adapter), profiles of a family joined by a thin line; below the zero line is better than
    the anchor. Codecs without a value of ``x`` (e.g. classical codecs for kMAC) are left out."""
    frame = frame[pd.to_numeric(frame[x], errors="coerce") > 0] if len(frame) else frame
    xlabel, title = TRADEOFF_X[x]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8.5, 5.6), layout="constrained")
        families = sorted(frame["family"].unique()) if len(frame) else []
        for i, family in enumerate(families):
            group = frame[frame["family"] == family].sort_values(x)
            if len(group) > 1:
                ax.plot(group[x], group["bd_rate_pct"], color="0.6", lw=0.8, zorder=1)
            for _, r in group.iterrows():
                ax.scatter(r[x], r["bd_rate_pct"], marker=MARKERS[i % len(MARKERS)], s=55,
                           color=palette.get(r["codec"]), zorder=3, edgecolors="black", linewidths=0.5)
        zero = ax.axhline(0.0, color=ANCHOR_COLOUR, lw=1, ls="--", label=f"anchor {anchor_label} (0 %)")
        ax.set_xscale("log")
        if x == "dec_time_s":
            _seconds_axis(ax.xaxis)
        ax.set_xlabel(xlabel)
        metric = frame["bd_metric"].iloc[0] if len(frame) and "bd_metric" in frame else "PSNR-RGB"
        ax.set_ylabel(f"BD-rate vs anchor, {metric} (%)  — lower is better")
        ax.set_title(title)
        if len(frame):
            ax.set_xlim(frame[x].min() / 1.6, frame[x].max() * 2.2)
            lo, hi = _range(np.append(frame["bd_rate_pct"].to_numpy(), 0.0), pad=0.12)
            ax.set_ylim(lo, hi)
            legend = [Line2D([], [], ls="none", marker=MARKERS[i % len(MARKERS)], color="0.4", label=f)
                      for i, f in enumerate(families)]
            ax.legend(handles=[*legend, zero], title="family (adapter)", loc="upper left", bbox_to_anchor=(1.01, 1.0))
            fig.canvas.draw()  # fix the limits before placing labels in display space
            place_labels(ax, frame[x].to_numpy(), frame["bd_rate_pct"].to_numpy(),
                         [f"{c} (anchor)" if f"codec:{c}" == anchor_label else c for c in frame["codec"]])
        else:
            ax.text(0.5, 0.5, "no codec with a BD-rate" + (" and a kMAC count" if x != "dec_time_s" else ""),
                    transform=ax.transAxes, ha="center")
    return fig


def _plain_axis(axis) -> None:
    """Log-axis ticks at 1, 2, 5 × 10ⁿ written as plain numbers (``20``, ``0.5``), never ``2×10¹``;
    no minor labels."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}" if v > 0 else ""))
    axis.set_minor_formatter(ticker.NullFormatter())


def _seconds_axis(axis) -> None:
    """Readable log-axis ticks for durations: 1 ms, 10 ms, 0.1 s, 1 s ... and no crowded minor labels."""
    def label(v: float, _pos: int) -> str:
        if v <= 0:
            return ""
        return f"{v * 1e3:g} ms" if v < 1 else f"{v:g} s"
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(label))
    axis.set_minor_formatter(ticker.NullFormatter())


def place_labels(ax, xs: np.ndarray, ys: np.ndarray, texts: list[str], fontsize: float = 8.5) -> None:
    """Annotate points without labels overlapping each other or the markers.

    Greedy: points in order of height, each label tries a few offsets around its point and takes
    the first whose box (estimated from the text length) is clear of labels placed so far and of
    every marker; if none is clear, the first offset is used.
    """
    to_points = 72.0 / ax.figure.dpi
    where = ax.transData.transform(np.column_stack([xs, ys])) * to_points  # display → points
    height = fontsize * 1.25
    markers = [(x - 5, y - 5, x + 5, y + 5) for x, y in where]
    placed: list[tuple[float, float, float, float]] = []

    def clear(box: tuple[float, float, float, float]) -> bool:
        return not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                       for b in placed + markers)

    for i in np.argsort(ys):
        x, y = where[i]
        width = 0.6 * fontsize * len(texts[i])
        offsets = [(6, 3), (6, -3 - height), (-6 - width, 3), (-6 - width, -3 - height), (6, 3 + height),
                   (6, -3 - 2 * height), (-width / 2, 7), (-width / 2, -7 - height)]
        chosen = offsets[0]
        for dx, dy in offsets:
            if clear((x + dx, y + dy, x + dx + width, y + dy + height)):
                chosen = (dx, dy)
                break
        placed.append((x + chosen[0], y + chosen[1], x + chosen[0] + width, y + chosen[1] + height))
        ax.annotate(texts[i], (xs[i], ys[i]), textcoords="offset points", xytext=chosen, fontsize=fontsize,
                    va="bottom", ha="left")
