"""The report's training section: how the shipped learned models were trained.

Reads what :mod:`bench.training.export` writes beside each shipped weights file — the loss curve
``NAME.curve.csv`` and the summary ``NAME.train.json`` — from a folder (the ``--training``
option of ``python -m bench.report``; by default the ``weights/`` folder of the codec
configurations), keeping the files whose weights a codec of the store uses, matched by the
weights name's prefix (``msp-tiny-0.0067.pt`` serves ``msp-tiny`` and ``msp-tiny-lof``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd

from bench.report.document import Document, FigureRef, fmt_fixed


def load_training(folder: Path | None, codecs: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary per weights file, held-out curve rows) for the weights the store's ``codecs`` use."""
    summaries, curves = [], []
    if folder is None or not Path(folder).is_dir():
        return pd.DataFrame(), pd.DataFrame()
    for path in sorted(Path(folder).glob("*.train.json")):
        try:
            info = json.loads(path.read_text())
            options = info["options"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours or damaged: the section lists what it could read
        trained = str(options.get("codec", ""))
        users = [c for c in codecs if c == trained or c.startswith(trained + "-")]
        if not users:
            continue
        stem = path.name[: -len(".train.json")]
        summaries.append({"weights": info.get("weights", stem), "codec": trained, "lambda": options.get("lam"),
                          "steps": info.get("total_steps"), "this run": info.get("steps"),
                          "wall h": info.get("total_wall_s", 0) / 3600, "CPU h": info.get("total_cpu_s", 0) / 3600,
                          "batch": f"{options.get('batch')}×{options.get('crop')}²", "float16": info.get("half"),
                          "sha256": str(info.get("sha256", ""))[:12]})
        curve = path.with_name(stem + ".curve.csv")
        if curve.is_file():
            rows = pd.read_csv(curve)
            if "total_step" not in rows:  # a curve exported before runs were chained: its own steps
                rows = rows.assign(total_step=rows["step"], run=stem)
            rows = rows[rows["split"] == "heldout"].assign(weights=stem, codec=trained, lam=options.get("lam"))
            curves.append(rows)
    summary = pd.DataFrame(summaries)
    held = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    if len(summary) and len(held):
        last = held.sort_values("total_step").groupby("weights").tail(1).set_index("weights")
        summary["held-out bpp"] = summary["weights"].map(lambda w: last["bpp"].get(w.removesuffix(".pt")))
        summary["held-out PSNR"] = summary["weights"].map(lambda w: last["psnr"].get(w.removesuffix(".pt")))
    return summary, held


def curve_figure(held: pd.DataFrame):
    """Held-out bpp and PSNR against the training step counted from the first run of each weights
    file's chain (one line per file; fine-tunes share their base run's start)."""
    import matplotlib.pyplot as plt

    from bench.report.figures import STYLE

    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
        for i, (weights, rows) in enumerate(held.groupby("weights", sort=True)):
            style = "-" if rows["codec"].iloc[0].startswith("msp") else "--"
            left.plot(rows["total_step"], rows["bpp"], style, marker="o", ms=3, label=weights)
            right.plot(rows["total_step"], rows["psnr"], style, marker="o", ms=3, label=weights)
        left.set(xlabel="training step (base run + fine-tunes)", ylabel="held-out bpp (from likelihoods)", title="Rate")
        right.set(xlabel="training step (base run + fine-tunes)", ylabel="held-out PSNR (dB, 8-bit x̂)", title="Distortion")
        right.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return fig


def training_section(doc: Document, folder: Path | None, codecs: list[str],
                     csv: Callable[[pd.DataFrame, str], str],
                     figure: Callable[[object, str, str, list[str]], FigureRef]) -> None:
    """Heading, table and curve figure of the shipped models' training (nothing if none is used)."""
    summary, held = load_training(folder, codecs)
    if not len(summary):
        return
    doc.heading(2, "Training of the shipped learned models")
    doc.text("Trained here with `python -m bench.training` (`nox -s train`) on `datasets/train` of the shared data "
             "(BSDS500 + Urban100, research / non-commercial terms, which these weights inherit); every 25th image is "
             "held out and none of the test sets is used. `steps` counts the run and the runs it was fine-tuned from; "
             "held-out figures are the last evaluation of the run (rate from the model's likelihoods, not a "
             "bitstream — the bitstream rates are in the tables above).")
    doc.table(summary, formats={"wall h": fmt_fixed(2), "CPU h": fmt_fixed(2), "held-out bpp": fmt_fixed(3),
                                "held-out PSNR": fmt_fixed(2)})
    if len(held):
        names = [csv(summary, "training_summary"), csv(held, "training_curves")]
        doc.figure(figure(curve_figure(held), "training_curves",
                          "Held-out bpp and PSNR during training, per shipped weights file", names))
