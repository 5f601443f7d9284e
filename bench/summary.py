"""The tables that close a run: what ran, and numbers that can be compared across codecs.

A mean of bpp or PSNR over a codec's whole ladder depends on where the ladder's points lie, not
only on how good the codec is, so it compares nothing. The run therefore prints:

- per codec: native and ladder (centre-crop) cells counted separately, error cells, the BD-rate
  (PSNR-RGB, pchip, dataset-average curves) against ``jpeg-420`` when this run measured it at
  native size, and the median encode / decode time of its native cells;
- per codec and rate point: the median bpp and PSNR-RGB over the images (native cells; ladder
  cells when the run had none), i.e. points that can be read off next to another codec's.

Only the rows of this run are summarised (through the results view, :mod:`bench.results`, so that its
BD-rate rests on the images the report's would); the report reads the whole store.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.analysis.bd import AVERAGE_CURVE
from bench.errors import BDError
from bench.results import ResultsView, from_frame
from bench.results_rd import measured_anchor

#: The BD anchor of the summary: always in the default run, fast, and known to every reader.
SUMMARY_ANCHOR = "jpeg-420"


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def bd_against_anchor(view: ResultsView, anchor: str = SUMMARY_ANCHOR) -> dict[str, str]:
    """``{codec: BD-rate text}`` against ``anchor``'s native rows of this run (empty when it has none).

    The BD table of the results view, PSNR-RGB only and without bootstrap intervals: the summary
    prints one number per codec, so no resamples are drawn. A codec that ran on several devices
    gets one value per device.
    """
    native = view.native
    if anchor not in set(native["codec"]) or native["dataset"].nunique() != 1:
        return {}
    try:
        table = view.bd(native["dataset"].iloc[0], measured_anchor(native, anchor), anchor, "pchip", AVERAGE_CURVE,
                        metrics=("psnr_rgb",), n_resamples=0).table
    except BDError:  # the anchor has no PSNR-RGB at all
        return {}
    texts: dict[str, list[str]] = {}
    for _, r in table.iterrows():
        text = f"{r['bd_rate_psnr_pct']:+.1f} %" if r["status_psnr"] == "ok" else f"n/a ({r['status_psnr']})"
        texts.setdefault(r["codec"], []).append(text)
    devices = table.groupby("codec")["device"].apply(list).to_dict()
    return {codec: t[0] if len(t) == 1 else "; ".join(f"{d}: {x}" for d, x in zip(devices[codec], t))
            for codec, t in texts.items()}


def summary_tables(rows: list[dict[str, Any]]):
    """The two rich tables printed at the end of ``bench run`` (see the module docstring)."""
    from rich.table import Table

    frame = pd.DataFrame(rows)  # every row of the run, in its order: the cell counts
    view = from_frame(frame, where="this run")
    ok, native = view.rows, view.native
    bd = bd_against_anchor(view)

    title = "this run, per codec (times: median over native cells"
    title += f"; BD-rate: PSNR-RGB, pchip, dataset-average curves against {SUMMARY_ANCHOR})" if bd else ")"
    per_codec = Table(title=title)
    columns = ["codec", "native cells", "ladder cells", "errors"]
    columns += [f"BD-rate vs {SUMMARY_ANCHOR}"] if bd else []
    columns += ["median enc s", "median dec s"]
    for col in columns:  # a codec name folds onto a second line in a narrow terminal, never cut ("compress…")
        per_codec.add_column(col, justify="left" if col == "codec" else "right",
                             overflow="fold" if col == "codec" else "ellipsis")
    for codec, items in frame.groupby("codec", sort=False):
        is_native = items["resolution"] == "native"
        mine = native[native["codec"] == codec]
        cells = [codec, str(int(is_native.sum())), str(int((~is_native).sum())),
                 str(int((items["status"] != "ok").sum()))]
        cells += [bd.get(codec, "-")] if bd else []
        cells += [_fmt(mine["enc_time_s"].median(), ".4f"), _fmt(mine["dec_time_s"].median(), ".4f")]
        per_codec.add_row(*cells)

    points = native if len(native) else ok  # a ladder-only run: its crops, per size
    per_rate = Table(title="per rate point: medians over the images" +
                     (" (native size)" if len(native) else " (ladder crops)"))
    shown = ("codec", "rate") + (() if len(native) else ("resolution",)) + ("images", "median bpp", "median PSNR-RGB")
    for col in shown:
        per_rate.add_column(col, justify="left" if col in ("codec", "rate", "resolution") else "right",
                            overflow="fold" if col in ("codec", "rate") else "ellipsis")
    if len(points):
        medians = (points.groupby(["codec", "resolution", "rate_label"], sort=False)
                   .agg(images=("image", "nunique"), bpp=("bpp", "median"), psnr=("psnr_rgb", "median"))
                   .reset_index())
        order = {codec: i for i, codec in enumerate(frame["codec"].unique())}
        medians = medians.sort_values(["codec", "resolution", "bpp"], key=lambda s: s.map(order) if s.name == "codec"
                                      else s, kind="stable")
        for _, r in medians.iterrows():
            where = () if len(native) else (r["resolution"],)
            per_rate.add_row(r["codec"], str(r["rate_label"]), *where, str(r["images"]),
                             _fmt(r["bpp"], ".3f"), _fmt(r["psnr"], ".2f"))
    return per_codec, per_rate
