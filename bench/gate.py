"""The regression gate: ``python -m bench.gate --baseline gate/baseline.json``.

It runs a small fixed benchmark (centre crops of a few Kodak images, a few codecs, their whole
rate ladders) into a temporary store — or reads ``--results DIR`` — and compares every codec with
the committed baseline:

rate-distortion
    The codec's gate curve (mean bpp and mean PSNR-RGB per rate point over the gate images) is
    compared with its baseline curve by BD-rate (pchip). It **fails** when the BD-rate is worse
    than ``--bd-threshold`` percentage points (default 0.5): the codec now needs that many percent
    more bits for the same PSNR. Codecs are deterministic, so an unchanged codec gives 0.00 %.
decode time
    Never absolute seconds (machines differ, and so does one machine's load from run to run):
    every run also times a **yardstick** — libwebp decoding a WebP (q75) of each gate crop, a
    fixed configuration defined here, not one of ``codecs/``. The benchmark runs in **rounds**;
    each round runs every cell once (rate labels ``<label>@<round>``) in a **fresh worker
    process**, yardstick first. A codec cell's time in a round is divided by the yardstick's time
    for the same image in the same round (same process, minutes apart at most); the cell's
    **ratio** is the median of those quotients over the rounds. The baseline stores these
    dimensionless ratios per cell. A codec **fails** when the median over its cells of (ratio now
    / ratio in the baseline) exceeds 1 + ``--time-threshold`` (default 0.25). Comparing cell by
    cell removes the spread between rate points and images; the medians make a disturbed cell or
    round harmless.

    Why this shape — each choice measured on a loaded, shared 2-core VM: the decode speed of
    libjpeg-turbo and of dav1d settles *per process* into states up to ±25 % apart (repeats in
    one process agree with each other, a new process may not), so one long-lived worker shifted a
    whole run; five processes and a median over them average that out. The gate pins itself and
    its workers to **one CPU** (``sched_setaffinity``, inherited by the workers): Pillow's AVIF
    decoder sizes its dav1d thread pool by the CPUs it may use, and two threads on a loaded
    2-core machine swung its times by ±20 %; pinned, no process migrates and every decoder runs
    single-threaded. The yardstick is WebP because libwebp's times were the steady ones. Each cell
    is coded once per round, without a warm-up call (``--warmup 0 --repeats 1``): the rounds are
    the repeats that matter, and the encodes a warm-up would add (AVIF, JPEG XL) doubled the
    gate's time without steadying it — cold, unchanged runs agreed within ±6 % for every codec
    (with one warm-up call, within ±8 %), where one long-lived worker had strayed by up to ±30 %.

A codec with error cells fails too. Exit status: 0 when every codec passed; 1 when something
regressed (the table says what and by how much); 2 when the gate cannot judge — no baseline or
one of the wrong shape (see :mod:`bench.gate_baseline`), no Kodak, bad options, a codec missing
from the baseline or from the run, decode times from another machine class than the baseline's
(without ``--timing-across-machines``), or any unexpected error (never 1, which means "regressed").
A regression outranks "cannot judge": when both occur the status is 1. ``--update-baseline``
rewrites the baseline from this run, deliberately, and says so.

machine class
    Decode-time ratios are judged only against a baseline recorded on the same machine class
    (CPU model, logical CPU count, architecture; :class:`bench.gate_baseline.MachineClass`).
    On another class the rates are still judged (BD-rate is machine-independent) but the times
    are not, and the gate exits 2 naming both classes. ``--timing-across-machines`` judges them
    anyway: the ratios are normalised by the yardstick, so the comparison is indicative, and the
    printout says it is cross-machine. ``nox -s gate`` (CI) passes it.

The comparison (:func:`summarise`, :func:`compare`) is pure; only :func:`run_benchmark` runs codecs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BenchError, ConfigError, GateError
from bench.analysis.bd import BDError, average_curve, bd
from bench.codecs.base import CodecConfig, RatePoint
from bench.gate_baseline import SCHEMA, MachineClass, read_baseline, validate_baseline  # noqa: F401 (re-exported)
from bench.store import db_path, read_measurements, read_runs

DEFAULT_BASELINE = Path(__file__).resolve().parents[1] / "gate" / "baseline.json"
YARDSTICK = "gate-yardstick"
GATE_DATASET = "kodak"  # the dataset label of the gate cells (also for images from --dataset)
TIME = "dec_cpu_s"  # CPU time of the decode call: other load time-slicing the CPU does not inflate it
REPLICA = "@"  # rate label of a cell in round k: '<label>@k'


@dataclass(frozen=True)
class GateBenchmark:
    """What the gate runs. The baseline file stores it, so later runs repeat exactly this."""

    codecs: tuple[str, ...] = ("jpeg-420", "jpeg-444", "webp", "jpeg2000", "jpegxl", "avif")
    images: tuple[str, ...] = ("kodim04", "kodim15", "kodim23")
    crop: str = "256x256"  # centre crop of every image ('WxH')
    warmup: int = 0  # see the module docstring: one cold call per cell and round
    repeats: int = 1
    rounds: int = 5  # every cell runs once per round, each round in a fresh worker process
    jobs: int = 1  # one worker: a second one on a 2-core machine disturbs the timings

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateBenchmark:
        return cls(codecs=tuple(d["codecs"]), images=tuple(d["images"]), crop=str(d["crop"]),
                   warmup=int(d["warmup"]), repeats=int(d["repeats"]), rounds=int(d.get("rounds", 5)),
                   jobs=int(d.get("jobs", 1)))



# --- the yardstick and the cells -----------------------------------------------------------------

def yardstick_config() -> CodecConfig:
    """WebP q75 (method 0: quick to encode; decoding does not depend on it) through libwebp."""
    rates = (RatePoint("quality=75", {"quality": 75}),)
    return CodecConfig(name=YARDSTICK, adapter="webp", params={"method": 0}, rates=rates,
                       description="gate yardstick: WebP q75 decode of the same crops (libwebp via Pillow)")


def _gate_images(names: tuple[str, ...], folder: Path | None = None) -> list[tuple[str, Path, str]]:
    """The gate images by name: from Kodak, or from ``folder`` (``--dataset``, e.g. the tests' images)."""
    from bench import datasets
    from bench.images import file_sha256

    try:
        found = datasets.resolve(str(folder) if folder else "kodak")
    except FileNotFoundError as exc:
        raise GateError(str(exc) if folder else f"the gate runs on Kodak: {exc} (set BENCH_DATA_DIR)") from None
    by_name = {p.stem: p for p in found.paths}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise GateError(f"images {missing} not found in {found.note}")
    return [(n, by_name[n], file_sha256(by_name[n])) for n in names]


def replicate(label: str, round_index: int) -> str:
    """The rate label of a cell in round ``round_index`` (1-based): ``quality=50@2``."""
    return f"{label}{REPLICA}{round_index}"


def plan_cells(benchmark: GateBenchmark, configs: list, images: list[tuple[str, Path, str]]) -> list[list]:
    """One list of cells per round; each round holds every cell once (replica ``@k`` of each rate
    point): per image, the yardstick, then every codec's rate points."""
    from bench.runner import Cell

    planned = []
    for k in range(1, benchmark.rounds + 1):
        cells = []
        for name, path, sha in images:
            for config in [yardstick_config(), *configs]:
                for rate in config.rates:
                    point = RatePoint(replicate(rate.label, k), rate.params)
                    cells.append(Cell(config, point, GATE_DATASET, name, str(path), sha, benchmark.crop, "cpu"))
        planned.append(cells)
    return planned


def idlest_cpu(candidates: set[int], seconds: float = 0.3) -> int:
    """The candidate CPU with the most idle time over ``seconds`` (Linux ``/proc/stat``; else the
    highest-numbered candidate)."""
    def sample() -> dict[int, tuple[int, int]]:
        out = {}
        with open("/proc/stat", encoding="ascii") as fh:
            for line in fh:
                name, *values = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    ticks = [int(v) for v in values]
                    out[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))  # idle + iowait, total
        return out
    try:
        first = sample()
        time.sleep(seconds)
        second = sample()
    except (OSError, ValueError, IndexError):
        return max(candidates)
    idle = {c: (second[c][0] - first[c][0]) / max(1, second[c][1] - first[c][1])
            for c in candidates if c in first and c in second}
    return max(idle, key=lambda c: (idle[c], c)) if idle else max(candidates)


@contextmanager
def one_cpu() -> Iterator[str]:
    """Pin this process — and so the workers it spawns — to one CPU while the gate runs.

    Decoders that size their thread pools by the CPUs they may use (libavif/dav1d through Pillow)
    then decode on one thread, and no process migrates between CPUs mid-measurement. The CPU
    that was idlest just before is taken. Yields a description for the manifest; a no-op where
    the OS has no ``sched_setaffinity``.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield "not pinned (no sched_setaffinity on this OS)"
        return
    before = os.sched_getaffinity(0)
    cpu = idlest_cpu(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield f"pinned to CPU {cpu} of {sorted(before)}"
    finally:
        os.sched_setaffinity(0, before)


def run_benchmark(benchmark: GateBenchmark, out: Path, codecs_dir: str | Path | None = None,
                  quiet: bool = False, dataset: Path | None = None) -> Path:
    """Run the gate benchmark into the store at ``out`` through the runner; returns ``out``."""
    from bench.cli import PACKAGES, _version, git_commit
    from bench.codecs import registry
    from bench.device import cpu_model
    from bench.measure import Protocol
    from bench.runner import Runner, Settings, now
    from bench.store import Store

    try:
        configs_all = registry.load_configs(codecs_dir)
    except ConfigError as exc:  # no such folder
        raise GateError(str(exc)) from None
    broken = [str(configs_all.broken[c]) for c in benchmark.codecs if c in configs_all.broken]
    if broken:
        raise GateError("gate codec configuration broken: " + "; ".join(broken))
    unknown = [c for c in benchmark.codecs if c not in configs_all]
    if unknown:
        raise GateError(f"gate codecs {unknown} have no configuration in {codecs_dir or registry.default_codecs_dir()}")
    configs = [configs_all[c] for c in benchmark.codecs]
    unavailable = {c.name: r for c in configs if (r := registry.availability(c))}
    if unavailable:
        raise GateError("gate codecs unavailable here: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()))
    cells = plan_cells(benchmark, configs, _gate_images(benchmark.images, dataset))
    settings = Settings(Protocol(benchmark.warmup, benchmark.repeats), threads=1, cross_decode=False, timeout_s=300)
    manifest = {
        "started_at": now(), "command": " ".join([Path(sys.executable).name, "-m", "bench.gate", *sys.argv[1:]]),
        "git_commit": git_commit(), "host": platform.node(), "cpu": f"{cpu_model()} ({os.cpu_count()} logical CPUs)",
        "machine": MachineClass.here().to_dict(), "threads": 1, "jobs": benchmark.jobs,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES}, "gate": asdict(benchmark),
        "protocol": {"warmup": benchmark.warmup, "repeats": benchmark.repeats},
        "codecs": {c.name: {"adapter": c.adapter, "params": c.params, "rates": [(r.label, r.params) for r in c.rates]}
                   for c in [yardstick_config(), *configs]},
    }
    with Store(out) as store, one_cpu() as cpu:
        manifest["gate"]["cpu_affinity"] = cpu
        run_id = store.start_run(manifest)
        t0 = time.perf_counter()
        done = errors = 0
        for round_cells in cells:  # fresh worker processes for each round (see the module docstring)
            result = Runner(store, settings, benchmark.jobs).run(round_cells, run_id)
            done, errors = done + result.done, errors + result.errors
        store.finish_run(run_id, now())
    if not quiet:
        print(f"gate benchmark: {done} cells ({errors} errors) in {time.perf_counter() - t0:.1f} s "
              f"with {benchmark.jobs} worker(s)", file=sys.stderr)
    return out


# --- summarising a run (pure) --------------------------------------------------------------------

@dataclass
class CodecSummary:
    """One codec's gate numbers from one run (decode times only as ratios to the yardstick)."""

    rate_label: list[str]
    bpp: list[float]
    psnr_rgb: list[float]
    dec_time_ratio: float  # median over cells of the per-cell ratio (for the table)
    cell_ratios: dict[str, float]  # "<rate label>|<image>" -> decode time / the image's yardstick time
    cells: int
    version: str = ""
    config_hash: str = ""
    errors: list[str] = field(default_factory=list)
    unmeasured: str = ""  # why the run holds no judgeable cells of this codec (not an error of the codec)


def cell_key(rate_label: str, image: str) -> str:
    return f"{rate_label}|{image}"


def _gate_rows(frame: pd.DataFrame, benchmark: GateBenchmark) -> pd.DataFrame:
    """The gate's cells, with the round split off the rate label (``rate_label``, ``round``)."""
    rows = frame[(frame["dataset"] == GATE_DATASET) & (frame["resolution"] == benchmark.crop)
                 & frame["image"].isin(benchmark.images) & frame["rate_label"].str.contains(REPLICA, regex=False)]
    parts = rows["rate_label"].str.rsplit(REPLICA, n=1, expand=True)
    return rows.assign(rate_label=parts[0], round=pd.to_numeric(parts[1], errors="coerce"))


def yardstick_times(rows: pd.DataFrame) -> pd.Series:
    """Yardstick decode time per (round, image)."""
    yard = rows[(rows["codec"] == YARDSTICK) & (rows["status"] == "ok") & (rows[TIME] > 0)]
    return yard.groupby(["round", "image"])[TIME].min()


def summarise(frame: pd.DataFrame, benchmark: GateBenchmark) -> dict[str, CodecSummary]:
    """Per gate codec: its average RD curve and its decode-time ratios (see the module docstring).

    ``frame`` holds store rows (all statuses). Raises :class:`GateError` when yardstick cells are
    missing — without them no time can be judged.
    """
    rows = _gate_rows(frame, benchmark)
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
        try:
            curve = average_curve(first, "psnr_rgb") if not (ok.empty or errors) else None
        except BDError as exc:
            errors.append(str(exc))
        if errors or curve is None:
            out[codec] = CodecSummary([], [], [], math.nan, {}, len(ok), errors=errors or ["no measurement"])
            continue
        paired = ok.join(yard.rename("yard"), on=["round", "image"], how="inner")
        per_round = paired[TIME] / paired["yard"]  # codec / yardstick, same image, same process
        medians = per_round.groupby([paired["rate_label"], paired["image"]]).median()
        ratios = {cell_key(label, image): float(r) for (label, image), r in medians.items()}
        out[codec] = CodecSummary(
            rate_label=list(curve["rate_label"]), bpp=[float(v) for v in curve["bpp"]],
            psnr_rgb=[float(v) for v in curve["psnr_rgb"]], dec_time_ratio=float(np.median(list(ratios.values()))),
            cell_ratios=ratios, cells=len(ok),
            version="; ".join(sorted(ok["codec_version"].dropna().astype(str).unique())),
            config_hash=str(ok["config_hash"].iloc[0]))
    return out


# --- comparing (pure) ----------------------------------------------------------------------------

@dataclass
class Verdict:
    codec: str
    status: str  # PASS, FAIL or UNJUDGED (see the module docstring: exit 0, 1, 2)
    bd_rate_pct: float = math.nan
    ratio_base: float = math.nan
    ratio_now: float = math.nan
    time_change: float = math.nan  # median over common cells of ratio now / ratio base, minus 1
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def time_change(base_cells: dict[str, float], now_cells: dict[str, float]) -> tuple[float, int]:
    """Median over the cells both runs have of (ratio now / ratio base) − 1, and that cell count."""
    common = sorted(set(base_cells) & set(now_cells))
    if not common:
        return math.nan, 0
    return float(np.median([now_cells[k] / base_cells[k] for k in common])) - 1.0, len(common)


PASS, FAIL, UNJUDGED = "pass", "FAIL", "UNJUDGED"


def exit_status(verdicts: list[Verdict]) -> int:
    """0 when every codec passed, 1 when any regressed, else 2 (something could not be judged)."""
    if any(v.status == FAIL for v in verdicts):
        return 1
    return 0 if verdicts and all(v.status == PASS for v in verdicts) else 2


def compare(baseline: dict[str, Any], current: dict[str, CodecSummary], bd_threshold: float = 0.5,
            time_threshold: float = 0.25, judge_time: bool = True) -> list[Verdict]:
    """Judge every codec of the baseline, and mark codecs of the run that it lacks UNJUDGED. Pure: no I/O.

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
        if v.bd_rate_pct > bd_threshold:
            v.status = FAIL
            v.reasons.append(f"BD-rate {v.bd_rate_pct:+.2f} % vs baseline (threshold +{bd_threshold:.2f} %)")
        elif v.bd_rate_pct < -bd_threshold:
            v.notes.append(f"RD improved ({v.bd_rate_pct:+.2f} %): update the baseline to keep the gain")
        v.time_change, n = time_change(base.get("cell_ratios", {}), now.cell_ratios)
        if n == 0:  # the rate points changed: fall back to the median ratios
            v.time_change = v.ratio_now / v.ratio_base - 1.0 if v.ratio_base > 0 else math.nan
            v.notes.append("no cell in common with the baseline (rate points changed): compared median ratios")
        if not judge_time:
            if v.status == PASS:
                v.status = UNJUDGED
            v.reasons.append("decode time not judged: the run is from another machine class than the baseline")
        elif not math.isfinite(v.time_change):
            v.status = FAIL
            v.reasons.append("decode-time ratio cannot be computed")
        elif v.time_change > time_threshold:
            v.status = FAIL
            v.reasons.append(f"decode {v.time_change:+.0%} slower relative to the yardstick (median over {n or 'all'} "
                             f"cells; threshold +{time_threshold:.0%})")
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
    header = ("codec", "result", "BD-rate vs base", "dec ratio base", "dec ratio now", "dec change", "why / notes")
    rows = []
    for v in verdicts:
        rows.append((v.codec, v.status, "" if math.isnan(v.bd_rate_pct) else f"{v.bd_rate_pct:+.2f} %",
                     "" if math.isnan(v.ratio_base) else f"{v.ratio_base:.3f}",
                     "" if math.isnan(v.ratio_now) else f"{v.ratio_now:.3f}",
                     "" if not math.isfinite(v.time_change) else f"{v.time_change:+.1%}",
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
    yard = yardstick_times(_gate_rows(frame, benchmark))
    machine = MachineClass.of(manifest)
    return {
        "schema": SCHEMA,
        "note": "Written by `python -m bench.gate --update-baseline`. Decode times are ratios to the yardstick "
                "timed in the same process (per cell: '<rate label>|<image>', median over the rounds), never "
                "absolute seconds; yardstick.dec_time_s (seconds, per image) is for information only.",
        "created_at": manifest.get("started_at"), "git_commit": manifest.get("git_commit"),
        "cpu": manifest.get("cpu"), "machine": machine.to_dict() if machine.known() else None,
        "packages": manifest.get("packages"),
        "benchmark": asdict(benchmark),
        "yardstick": {"codec": YARDSTICK, "definition": yardstick_config().description,
                      "dec_time_s": {k: round(float(v), 7) for k, v in yard.groupby(level="image").median().items()}},
        "codecs": {c: {"version": s.version, "config_hash": s.config_hash, "rate_label": s.rate_label,
                       "bpp": s.bpp, "psnr_rgb": s.psnr_rgb, "dec_time_ratio": round(s.dec_time_ratio, 6),
                       "cell_ratios": {k: round(v, 6) for k, v in sorted(s.cell_ratios.items())}}
                   for c, s in summary.items()},
    }


def _latest_manifest(results: Path) -> dict[str, Any]:
    runs = read_runs(results)
    if runs.empty:
        return {}
    return json.loads(runs.sort_values("run_id").iloc[-1]["manifest"] or "{}")


# --- command line --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE,
                   help=f"baseline JSON (default {DEFAULT_BASELINE})")
    p.add_argument("--results", type=Path, default=None,
                   help="compare this gate store instead of running the benchmark (e.g. one kept with --keep)")
    p.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from this run (deliberately)")
    p.add_argument("--bd-threshold", type=float, default=0.5,
                   help="fail above this BD-rate worsening, in percentage points")
    p.add_argument("--time-threshold", type=float, default=0.25,
                   help="fail when the decode-time ratio grows by more than this fraction (0.25 = 25 %%)")
    p.add_argument("--codecs-dir", default=None, help="codec configurations to run (default codecs/)")
    p.add_argument("--dataset", type=Path, default=None,
                   help="take the gate images from this folder instead of Kodak (trials and tests)")
    p.add_argument("--keep", type=Path, default=None, help="write the gate's store here instead of a temporary folder")
    p.add_argument("--json", type=Path, default=None, help="also write the verdicts to this JSON file")
    p.add_argument("--timing-across-machines", action="store_true",
                   help="judge decode times even when the run's machine class (CPU model, logical CPUs, "
                        "architecture) differs from the baseline's: indicative only, the ratios are "
                        "yardstick-normalised (rates are always judged)")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes, all on the one pinned CPU (default: the baseline's, 1)")
    bench_opts = p.add_argument_group("benchmark definition (only with --update-baseline; else the baseline's)")
    bench_opts.add_argument("--codecs", default=None, help="comma-separated codec names")
    bench_opts.add_argument("--images", default=None, help="comma-separated Kodak image names, e.g. kodim04,kodim23")
    bench_opts.add_argument("--crop", default=None, help="centre crop WxH of every image")
    bench_opts.add_argument("--warmup", type=int, default=None, help="untimed calls per cell before the timed ones")
    bench_opts.add_argument("--repeats", type=int, default=None, help="timed calls per cell")
    bench_opts.add_argument("--rounds", type=int, default=None, help="rounds (each cell once per round)")
    return p


def _benchmark_from(args: argparse.Namespace, baseline: dict[str, Any] | None) -> GateBenchmark:
    given = {k: v for k, v in (("codecs", args.codecs), ("images", args.images), ("crop", args.crop),
                               ("warmup", args.warmup), ("repeats", args.repeats), ("rounds", args.rounds))
             if v is not None}
    if given and not args.update_baseline:
        raise GateError(f"{sorted(given)}: the baseline defines the benchmark; pass --update-baseline to change it")
    base = GateBenchmark.from_dict(baseline["benchmark"]) if baseline else GateBenchmark()
    updates: dict[str, Any] = {}
    if "codecs" in given:
        updates["codecs"] = tuple(c.strip() for c in given["codecs"].split(",") if c.strip())
    if "images" in given:
        updates["images"] = tuple(c.strip() for c in given["images"].split(",") if c.strip())
    if "crop" in given:
        from bench.datasets import parse_size

        w, h = parse_size(given["crop"])
        updates["crop"] = f"{w}x{h}"
    for key, least in (("warmup", 0), ("repeats", 1), ("rounds", 1)):
        if key in given:
            if given[key] < least:
                raise GateError(f"--{key} must be ≥ {least}")
            updates[key] = given[key]
    if args.jobs is not None:
        if args.jobs < 1:
            raise GateError("--jobs must be ≥ 1")
        updates["jobs"] = args.jobs
    return GateBenchmark(**{**asdict(base), **updates})


def _machine_check(baseline: dict[str, Any], results: Path, across: bool) -> tuple[bool, str]:
    """Whether decode times may be judged, and a line saying how they were (or why not)."""
    base, run = MachineClass.of(baseline), MachineClass.of(_latest_manifest(results))
    if base.matches(run):
        return True, ""
    which = f"baseline: {base}; this run: {run}"
    if across:
        return True, (f"decode times compared ACROSS MACHINE CLASSES ({which}): the ratios are normalised by the "
                      "yardstick, so this comparison is indicative only")
    return False, (f"decode times NOT judged: the machine class differs ({which}); timings compare only within "
                   "a machine class — pass --timing-across-machines to compare them anyway (indicative only)")


def _update_baseline(args: argparse.Namespace, benchmark: GateBenchmark, summary: dict[str, CodecSummary],
                     frame: pd.DataFrame, results: Path) -> None:
    from bench.export import write_atomically

    text = json.dumps(baseline_document(benchmark, summary, frame, _latest_manifest(results)), indent=1) + "\n"
    doc = validate_baseline(json.loads(text), args.baseline)  # never write a baseline the gate would refuse
    write_atomically(args.baseline, lambda fh: fh.write(text), force=True)
    print(f"BASELINE REWRITTEN (deliberately, --update-baseline): {args.baseline} — {len(summary)} codecs, "
          f"{benchmark.crop} crops of {', '.join(benchmark.images)}, machine class {MachineClass.of(doc)}; "
          "commit it with the change that justifies it")
    for codec, s in summary.items():
        print(f"  {codec}: {len(s.bpp)} rate points, median decode-time ratio {s.dec_time_ratio:.3f}")


def _judge(args: argparse.Namespace, t0: float) -> int:
    baseline = read_baseline(args.baseline) if (args.baseline.is_file() or not args.update_baseline) else None
    benchmark = _benchmark_from(args, baseline)
    if args.results is not None:
        if not db_path(args.results).is_file():
            raise GateError(f"no results store at {db_path(args.results)}")
        results = args.results
    else:
        target = args.keep or Path(tempfile.mkdtemp(prefix="bench-gate-"))
        if args.keep and db_path(args.keep).is_file():
            raise GateError(f"{args.keep} already holds a store; --keep needs a new folder")
        results = run_benchmark(benchmark, target, args.codecs_dir, dataset=args.dataset)
    frame = read_measurements(results, status=None)
    summary = summarise(frame, benchmark)
    if args.update_baseline:
        _update_baseline(args, benchmark, summary, frame, results)
        return 0
    judge_time, machine_note = _machine_check(baseline, results, args.timing_across_machines)
    verdicts = compare(baseline, summary, args.bd_threshold, args.time_threshold, judge_time)
    status = exit_status(verdicts)
    if args.json:
        args.json.write_text(json.dumps([asdict(v) for v in verdicts], indent=1, default=str) + "\n", encoding="utf-8")
    print(format_table(verdicts))
    if machine_note:
        print(f"\n{machine_note}", file=sys.stdout if judge_time else sys.stderr)
    failed = [v.codec for v in verdicts if v.status == FAIL]
    unjudged = [v.codec for v in verdicts if v.status == UNJUDGED]
    verdict = {0: "passed", 1: f"FAILED — {', '.join(failed)} regressed",
               2: f"CANNOT JUDGE {', '.join(unjudged)} (see the table)"}[status]
    if status == 1 and unjudged:
        verdict += f"; cannot judge {', '.join(unjudged)}"
    print(f"\ngate: {verdict} (BD-rate threshold +{args.bd_threshold:.2f} %, decode-time threshold "
          f"+{args.time_threshold:.0%}; baseline {args.baseline}; {time.perf_counter() - t0:.0f} s)")
    return status


def main(argv: list[str] | None = None) -> int:
    """The gate's command line; returns 0 (passed), 1 (regressed) or 2 (cannot judge)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        return _judge(args, t0)
    except (BenchError, OSError) as exc:  # GateError, StoreError, a path that cannot be written ...
        print(f"gate error: {exc}", file=sys.stderr)
    except Exception:  # noqa: BLE001 — a bug must never read as "regressed" (exit 1)
        traceback.print_exc()
        print("gate error: unexpected failure (above); exit status 2, cannot judge", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
