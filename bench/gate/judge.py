"""Judging a gate run (pure, no I/O): per-codec summaries, verdicts against the baseline, exit status.

:func:`summarise` turns a store's gate rows into one :class:`CodecSummary` per codec (mean RD
curve, decode-time ratios to the yardstick); :func:`compare` judges them against the baseline
into :class:`Verdict` records; :func:`exit_status` maps those to 0/1/2 and :func:`format_table`
prints them. :func:`baseline_document` is the baseline JSON a summary would be written as.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import GateError
from bench.analysis.bd import DEFAULT_RESAMPLES, DEFAULT_SEED, BDError, Curve, bd, bootstrap_bd
from bench.gate.baseline import SCHEMA
from bench.machine import MachineClass, row_classes
from bench.results_rd import rd_curve
from bench.gate.benchmark import GATE_DATASET, TIME, WALL_TIME, YARDSTICK, GateBenchmark, yardstick_config

#: ``timer`` of a codec whose cells ran on a CPU (wall = ``perf_counter``) or on CUDA (CUDA events).
WALL, CUDA_EVENTS = "wall", "CUDA events"
#: Wall time also carries other load (see the bench.gate docstring), so it fails only beyond this
#: many times the decode-time threshold (default 2 × 25 % = +50 %): unchanged codecs stayed within +20 %
#: at load 5–17, and a wait of a few milliseconds on a decode of a few milliseconds doubles it or more.
WALL_MARGIN = 2.0

# --- summarising a run (pure) --------------------------------------------------------------------

@dataclass
class CodecSummary:
    """One codec's gate numbers from one run (decode times only as ratios to the yardstick).

    ``cell_ratios`` are CPU-time ratios (CPU cells only), ``wall_ratios`` wall-time ratios (CUDA-event
    time for CUDA cells, ``timer`` says which); see the :mod:`bench.gate` docstring for how each is formed.
    """

    rate_label: list[str]
    bpp: list[float]
    psnr_rgb: list[float]
    dec_time_ratio: float  # median over cells of the per-cell ratio (for the table)
    cell_ratios: dict[str, float]  # "<rate label>|<image>" -> decode CPU time / the image's yardstick CPU time
    cells: int
    version: str = ""
    config_hash: str = ""
    errors: list[str] = field(default_factory=list)
    unmeasured: str = ""  # why the run holds no judgeable cells of this codec (not an error of the codec)
    #: per image, its points of the first round (bpp, psnr_rgb by rate label): for the BD interval
    image_points: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    wall_ratios: dict[str, float] = field(default_factory=dict)  # "<rate label>|<image>" -> wall-time ratio
    wall_ratio: float = math.nan  # median over cells of wall_ratios (for the table)
    timer: str = WALL  # WALL, or CUDA_EVENTS when the codec's cells ran on CUDA (CPU time is then not judged)


def cell_key(rate_label: str, image: str) -> str:
    return f"{rate_label}|{image}"


def gate_rows(frame: pd.DataFrame, benchmark: GateBenchmark) -> pd.DataFrame:
    """The gate's cells of a store, each with its ``round`` (a NULL round, from a store written
    before rounds were stored, is round 1)."""
    rows = frame[(frame["dataset"] == GATE_DATASET) & (frame["resolution"] == benchmark.crop)
                 & frame["image"].isin(benchmark.images)]
    rounds = pd.to_numeric(rows["round"], errors="coerce") if "round" in rows else pd.Series(1, index=rows.index)
    return rows.assign(round=rounds.fillna(1).astype(int))


def yardstick_times(rows: pd.DataFrame, column: str = TIME) -> pd.Series:
    """Yardstick decode time (``column``: CPU by default) per (round, image)."""
    yard = rows[(rows["codec"] == YARDSTICK) & (rows["status"] == "ok") & (rows[column] > 0)]
    return yard.groupby(["round", "image"])[column].min()


def on_cuda(rows: pd.DataFrame) -> pd.Series:
    """Per row: whether the cell ran on CUDA (its wall time is then CUDA-event time)."""
    device = rows["device"].fillna("").astype(str) if "device" in rows else pd.Series("", index=rows.index)
    timer = rows["timer"].fillna("").astype(str) if "timer" in rows else pd.Series("", index=rows.index)
    return device.str.startswith("cuda") | (timer == "cuda_events")


def wall_ratios(ok: pd.DataFrame, rows: pd.DataFrame) -> dict[str, float]:
    """Per cell: its fastest wall time over the rounds / the fastest yardstick wall time of its image.

    Minima, not the median of per-round quotients as for CPU time: other load only ever adds wall
    time, and a decode that spans a scheduler slice in one round does not in another, so the
    fastest round is the one least disturbed (a wait the code itself makes is in every round)."""
    if WALL_TIME not in ok or WALL_TIME not in rows:
        return {}
    yard = yardstick_times(rows, WALL_TIME).groupby(level="image").min()
    fastest = ok[ok[WALL_TIME] > 0].groupby(["rate_label", "image"])[WALL_TIME].min()
    return {cell_key(label, image): float(t / yard[image]) for (label, image), t in fastest.items() if image in yard}


def summarise(frame: pd.DataFrame, benchmark: GateBenchmark) -> dict[str, CodecSummary]:
    """Per gate codec: its average RD curve and its decode-time ratios (see the :mod:`bench.gate` docstring).

    ``frame`` holds store rows (all statuses). Raises :class:`GateError` when yardstick cells are
    missing — without them no time can be judged.
    """
    rows = gate_rows(frame, benchmark)
    yard = yardstick_times(rows)
    lacking = sorted(set(benchmark.images) - set(yard.index.get_level_values("image")))
    if lacking:
        raise GateError(f"no yardstick ({YARDSTICK}) cells for {lacking}: this store was not written by the gate "
                        "(run the gate without --results, or keep its store with --keep)")
    out: dict[str, CodecSummary] = {}
    for codec in benchmark.codecs:
        group = rows[rows["codec"] == codec]
        ok = group[group["status"] == "ok"]
        errors = [f"{r.rate_label}/{r.image}: {r.error}" for r in group[group["status"] != "ok"].itertuples()]
        missing = set(benchmark.images) - set(ok["image"])
        if missing and not errors:  # cells absent, not failed: the store is incomplete
            out[codec] = CodecSummary([], [], [], math.nan, {}, len(ok),
                                      unmeasured=f"no measurement in this run for image(s) {sorted(missing)}")
            continue
        first = ok[ok["round"] == ok["round"].min()] if len(ok) else ok  # rounds code identical bytes
        if len(ok) and ok.groupby(["rate_label", "image"])["bytes"].nunique().max() > 1:
            errors.append("the rounds produced different bitstreams: the encoder is not deterministic")
        curve = None
        try:
            if not (ok.empty or errors):  # the view's curve; an image it leaves out fails the codec
                curve, left_out = rd_curve(first, "psnr_rgb")
                errors += [f"{image}: {why}" for image, why in left_out.items()]
        except BDError as exc:
            errors.append(str(exc))
        if errors or curve is None:
            out[codec] = CodecSummary([], [], [], math.nan, {}, len(ok), errors=errors or ["no measurement"])
            continue
        cuda = on_cuda(ok)
        paired = ok[~cuda].join(yard.rename("yard"), on=["round", "image"], how="inner")  # CPU time: CPU cells only
        per_round = paired[TIME] / paired["yard"]  # codec / yardstick, same image, same process
        medians = per_round.groupby([paired["rate_label"], paired["image"]]).median()
        ratios = {cell_key(label, image): float(r) for (label, image), r in medians.items()}
        walls = wall_ratios(ok, rows)
        timer = CUDA_EVENTS if cuda.any() else WALL
        out[codec] = CodecSummary(
            rate_label=list(curve["rate_label"]), bpp=[float(v) for v in curve["bpp"]],
            psnr_rgb=[float(v) for v in curve["psnr_rgb"]],
            dec_time_ratio=_median(ratios if timer == WALL else walls),
            cell_ratios=ratios, cells=len(ok), wall_ratios=walls, wall_ratio=_median(walls), timer=timer,
            version="; ".join(sorted(ok["codec_version"].dropna().astype(str).unique())),
            config_hash=str(ok["config_hash"].iloc[0]),
            image_points={str(img): {"rate_label": list(g["rate_label"]), "bpp": [float(v) for v in g["bpp"]],
                                     "psnr_rgb": [float(v) for v in g["psnr_rgb"]]}
                          for img, g in first.groupby("image", sort=True)})
    return out


def _median(ratios: dict[str, float]) -> float:
    return float(np.median(list(ratios.values()))) if ratios else math.nan


# --- comparing (pure) ----------------------------------------------------------------------------

@dataclass
class Verdict:
    codec: str
    status: str  # PASS, FAIL or UNJUDGED (see the bench.gate docstring: exit 0, 1, 2)
    bd_rate_pct: float = math.nan
    ratio_base: float = math.nan
    ratio_now: float = math.nan
    time_change: float = math.nan  # median over common cells of ratio now / ratio base, minus 1 (CPU time)
    wall_change: float = math.nan  # the same for wall time (CUDA-event time for CUDA cells)
    timer: str = WALL
    bd_rate_low: float = math.nan  # 95 % bootstrap interval over the run's images (baseline curve fixed)
    bd_rate_high: float = math.nan
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def time_change(base_cells: dict[str, float], now_cells: dict[str, float]) -> tuple[float, int]:
    """Median over the cells both runs have of (ratio now / ratio base) − 1, and that cell count."""
    common = sorted(set(base_cells) & set(now_cells))
    if not common:
        return math.nan, 0
    return float(np.median([now_cells[k] / base_cells[k] for k in common])) - 1.0, len(common)


PASS, FAIL, UNJUDGED = "pass", "FAIL", "UNJUDGED"
CI_TEXT = (f"BD-rate intervals: 95 % percentile bootstrap over the run's images ({DEFAULT_RESAMPLES} resamples, seed "
           f"{DEFAULT_SEED}); the baseline stores only its average curve, so they cover this run's image sampling only")


def bd_interval(base: dict[str, Any], now: CodecSummary) -> tuple[float, float]:
    """The bootstrap interval over images of the BD-rate against the baseline curve (NaN without per-image points)."""
    if not now.image_points:
        return math.nan, math.nan
    rows = pd.DataFrame([{"image": img, "rate_label": label, "bpp": b, "psnr_rgb": q}
                         for img, p in now.image_points.items()
                         for label, b, q in zip(p["rate_label"], p["bpp"], p["psnr_rgb"])])
    try:
        ci = bootstrap_bd(rows, Curve(base["bpp"], base["psnr_rgb"]), "psnr_rgb")
    except BDError:
        return math.nan, math.nan
    return ci.low, ci.high


def exit_status(verdicts: list[Verdict]) -> int:
    """0 when every codec passed, 1 when any regressed, else 2 (something could not be judged)."""
    if any(v.status == FAIL for v in verdicts):
        return 1
    return 0 if verdicts and all(v.status == PASS for v in verdicts) else 2


def _judge_cpu(v: Verdict, base: dict[str, Any], now: CodecSummary, judge_time: bool, threshold: float) -> None:
    """Decode CPU time: the median over common cells of (ratio now / ratio base) against ``threshold``."""
    v.time_change, n = time_change(base.get("cell_ratios", {}), now.cell_ratios)
    if n == 0:  # the rate points changed: fall back to the median ratios
        v.time_change = v.ratio_now / v.ratio_base - 1.0 if v.ratio_base > 0 else math.nan
        v.notes.append("no cell in common with the baseline (rate points changed): compared median ratios")
    if not judge_time:
        return
    if not math.isfinite(v.time_change):
        v.status = FAIL
        v.reasons.append("decode-time ratio cannot be computed")
    elif v.time_change > threshold:
        v.status = FAIL
        v.reasons.append(f"decode {v.time_change:+.0%} slower relative to the yardstick (CPU time, median over "
                         f"{n or 'all'} cells; threshold +{threshold:.0%})")


def _judge_wall(v: Verdict, base: dict[str, Any], now: CodecSummary, judge_time: bool, threshold: float) -> None:
    """Decode wall time (CUDA-event time on CUDA), like CPU time but with its own threshold; a baseline
    written before wall time was judged has none, and says so."""
    base_cells = base.get("cell_wall_ratios")
    if not base_cells:
        v.notes.append(f"{now.timer} time not judged: the baseline has no {now.timer}-time ratios "
                       "(rewrite it with --update-baseline)")
        return
    v.wall_change, n = time_change(base_cells, now.wall_ratios)
    if n == 0:
        old = float(base.get("dec_wall_ratio") or math.nan)
        v.wall_change = now.wall_ratio / old - 1.0 if old > 0 else math.nan
    if not judge_time:
        return
    if not math.isfinite(v.wall_change):
        v.status = FAIL
        v.reasons.append(f"decode {now.timer}-time ratio cannot be computed")
    elif v.wall_change > threshold:
        v.status = FAIL
        v.reasons.append(f"decode {v.wall_change:+.0%} slower relative to the yardstick ({now.timer} time, fastest "
                         f"round, median over {n or 'all'} cells; threshold +{threshold:.0%})")


def compare(baseline: dict[str, Any], current: dict[str, CodecSummary], bd_threshold: float = 0.5,
            time_threshold: float = 0.25, judge_time: bool = True) -> list[Verdict]:
    """Judge every codec of the baseline, and mark codecs of the run that it lacks UNJUDGED. Pure: no I/O.

    Decode time is judged twice: CPU time against ``time_threshold`` (CPU cells only) and wall time
    (CUDA-event time on CUDA) against :data:`WALL_MARGIN` × ``time_threshold``; either fails the codec.
    With ``judge_time`` False (another machine class), decode times are reported but not judged: a
    codec whose rates pass is UNJUDGED, not passed.
    """
    if bd_threshold < 0 or time_threshold < 0:
        raise GateError("thresholds must be ≥ 0")
    verdicts = []
    base_codecs: dict[str, Any] = baseline["codecs"]
    for codec, base in base_codecs.items():
        v = Verdict(codec, PASS, ratio_base=float(base["dec_time_ratio"]))
        verdicts.append(v)
        now = current.get(codec)
        if now is None or now.unmeasured:
            v.status, v.reasons = UNJUDGED, [now.unmeasured if now else "not measured in this run"]
            continue
        if now.errors:
            v.status, v.reasons = FAIL, [f"{len(now.errors)} error(s): {now.errors[0]}"]
            continue
        v.ratio_now = now.dec_time_ratio
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # low overlap is judged by the number itself
                v.bd_rate_pct = bd(base["bpp"], base["psnr_rgb"], now.bpp, now.psnr_rgb, "rate", "pchip").value
        except BDError as exc:
            v.status = FAIL
            v.reasons.append(f"RD curve cannot be compared with the baseline: {exc}")
        else:
            v.bd_rate_low, v.bd_rate_high = bd_interval(base, now)
        if v.bd_rate_pct > bd_threshold:
            v.status = FAIL
            v.reasons.append(f"BD-rate {v.bd_rate_pct:+.2f} % vs baseline (threshold +{bd_threshold:.2f} %)")
        elif v.bd_rate_pct < -bd_threshold:
            v.notes.append(f"RD improved ({v.bd_rate_pct:+.2f} %): update the baseline to keep the gain")
        v.timer = now.timer
        base_timer = base.get("timer", WALL)
        if base_timer != now.timer:
            if v.status == PASS:
                v.status = UNJUDGED
            v.reasons.append(f"decode times not comparable: the baseline timed {base_timer}, this run {now.timer}")
        else:
            if now.timer == WALL:
                _judge_cpu(v, base, now, judge_time, time_threshold)
            else:
                v.notes.append("CPU time not judged: the cells ran on CUDA, where it says nothing about the work")
            _judge_wall(v, base, now, judge_time, WALL_MARGIN * time_threshold)
            if not judge_time:
                if v.status == PASS:
                    v.status = UNJUDGED
                v.reasons.append("decode time not judged: the run is from another machine class than the baseline")
        if base.get("version") and now.version and base["version"] != now.version:
            v.notes.append(f"library version changed: {base['version']} → {now.version}")
        if base.get("config_hash") and now.config_hash and base["config_hash"] != now.config_hash:
            v.notes.append("configuration changed since the baseline")
    for codec in sorted(set(current) - set(base_codecs)):
        verdicts.append(Verdict(codec, UNJUDGED, ratio_now=current[codec].dec_time_ratio,
                                reasons=["not in the baseline (run --update-baseline to add it)"]))
    return verdicts


def format_table(verdicts: list[Verdict]) -> str:
    """A plain-text table for terminals and CI logs."""
    header = ("codec", "result", "BD-rate vs base [95 % CI]", "dec ratio base", "dec ratio now", "dec change",
              "wall change", "why / notes")
    rows = []
    for v in verdicts:
        bd_text = "" if math.isnan(v.bd_rate_pct) else f"{v.bd_rate_pct:+.2f} %"
        if bd_text and math.isfinite(v.bd_rate_low):
            bd_text += f" [{v.bd_rate_low:+.2f}, {v.bd_rate_high:+.2f}]"
        rows.append((v.codec, v.status, bd_text,
                     "" if math.isnan(v.ratio_base) else f"{v.ratio_base:.3f}",
                     "" if math.isnan(v.ratio_now) else f"{v.ratio_now:.3f}",
                     "" if not math.isfinite(v.time_change) else f"{v.time_change:+.1%}",
                     "" if not math.isfinite(v.wall_change) else f"{v.wall_change:+.1%}"
                     + (" (CUDA)" if v.timer == CUDA_EVENTS else ""),
                     "; ".join(v.reasons + v.notes)))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths) + "  " + "-" * 11, *map(line, rows)])


# --- the baseline file ---------------------------------------------------------------------------

def baseline_document(benchmark: GateBenchmark, summary: dict[str, CodecSummary], frame: pd.DataFrame,
                      manifest: dict[str, Any]) -> dict[str, Any]:
    """The baseline JSON: the benchmark definition and, per codec, its curve and decode-time ratios."""
    bad = {c: s.errors for c, s in summary.items() if s.errors}
    if bad:
        raise GateError(f"refusing to write a baseline from a run with errors: {bad}")
    rows = gate_rows(frame, benchmark)
    classes = row_classes(rows)
    if len(classes) > 1:
        raise GateError(f"refusing to write a baseline from cells measured on {len(classes)} machine classes "
                        f"({'; '.join(map(str, classes))}): run the gate on one machine class")
    yard = yardstick_times(rows)
    machine = classes[0] if classes else MachineClass.of(manifest)
    return {
        "schema": SCHEMA,
        "note": "Written by `python -m bench.gate --update-baseline`. Decode times are ratios to the yardstick "
                "timed in the same process, never absolute seconds: per cell ('<rate label>|<image>'), "
                "cell_ratios are CPU-time ratios (median over the rounds) and cell_wall_ratios wall-time ratios "
                "(fastest round over the yardstick's fastest; CUDA-event time where timer is 'CUDA events'); "
                "yardstick.dec_time_s (seconds, per image) is for information only.",
        "created_at": manifest.get("started_at"), "git_commit": manifest.get("git_commit"),
        "cpu": manifest.get("cpu"), "machine": machine.to_dict() if machine.known() else None,
        "packages": manifest.get("packages"),
        "benchmark": asdict(benchmark),
        "yardstick": {"codec": YARDSTICK, "definition": yardstick_config().description,
                      "dec_time_s": {k: round(float(v), 7) for k, v in yard.groupby(level="image").median().items()}},
        "codecs": {c: _codec_entry(s) for c, s in summary.items()},
    }


def _codec_entry(s: CodecSummary) -> dict[str, Any]:
    """One codec of the baseline: its curve and decode-time ratios (wall ones only where measured)."""
    entry = {"version": s.version, "config_hash": s.config_hash, "rate_label": s.rate_label, "bpp": s.bpp,
             "psnr_rgb": s.psnr_rgb, "dec_time_ratio": round(s.dec_time_ratio, 6),
             "cell_ratios": {k: round(v, 6) for k, v in sorted(s.cell_ratios.items())}, "timer": s.timer}
    if s.wall_ratios:
        entry.update(dec_wall_ratio=round(s.wall_ratio, 6),
                     cell_wall_ratios={k: round(v, 6) for k, v in sorted(s.wall_ratios.items())})
    return entry
