"""``python -m bench score``: fill the metric columns a stored run lacks, from its kept bitstreams.

A run made with ``--keep-streams`` keeps every cell's bitstream (:mod:`bench.streams`). Scoring
decodes each kept stream with the cell's own codec configuration (rebuilt from the run's manifest,
else a current TOML with the same configuration hash; the rebuilt cell must have the row's
``cell_key``), loads the original image (its file sha256 must be the row's) and computes the asked
metrics with the registry (:mod:`bench.metrics`, the same code a run uses). Only metric columns
and the row's ``extras`` are written — never bytes, bpp, times or memory — so a scored row is the
row a run with those metrics would have stored, timings included.

Resumable like a run: each row is committed the moment it is scored, and a metric is asked of a
row only while its column is NULL and the row's ``extras["scored"]`` does not name it (a metric
that gave NULL, e.g. one that failed on that image, is recorded there with the reason in
``extras["metrics_null"]`` and not tried again). Rows whose stream is missing (never kept, file
gone, sha256 mismatch) or whose image cannot be found make the command refuse before anything is
written, naming the cells; ``skip_missing`` scores the others and lists those instead. The scored
runs' manifests record the score (command, time, metric implementations) under ``scores`` and
the added metrics under ``metrics``, so the report names their implementation.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cells import Cell, Settings, config_hash, now
from bench.errors import StreamError, UsageError
from bench.metrics.registry import BY_NAME
from bench.store import Store
from bench.streams import read_stream, streams_dir

#: cells named in a refusal before "… and N more"
SHOWN = 8


@dataclass(frozen=True)
class Selection:
    """Which stored rows to score (None: all): codec names, dataset, rate labels, run id."""

    codecs: tuple[str, ...] | None = None
    dataset: str | None = None
    rates: tuple[str, ...] | None = None
    run_id: int | None = None

    def wants(self, row: dict[str, Any]) -> bool:
        dataset = Path(self.dataset).name if self.dataset and Path(self.dataset).is_dir() else self.dataset
        return ((self.codecs is None or row["codec"] in self.codecs)
                and (dataset is None or row["dataset"] == dataset)
                and (self.rates is None or row["rate_label"] in self.rates)
                and (self.run_id is None or row["run_id"] == self.run_id))


@dataclass
class Job:
    """One row to score: its rebuilt cell, its kept stream and the metrics it lacks."""

    row: dict[str, Any]
    cell: Cell
    stream_sha256: str
    metrics: tuple[str, ...]


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    done: int = 0  # rows of the selection that already have every asked metric
    problems: dict[str, str] = field(default_factory=dict)  # cell_key → why it cannot be scored


def _extras(row: dict[str, Any]) -> dict[str, Any]:
    try:
        extras = json.loads(row.get("extras") or "{}")
    except json.JSONDecodeError:
        return {}
    return extras if isinstance(extras, dict) else {}


def lacking(row: dict[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics of ``names`` that ``row`` still lacks: column NULL, not yet scored, image large enough."""
    scored = _extras(row).get("scored") or {}
    side = min(row.get("width") or 0, row.get("height") or 0)
    return tuple(n for n in names if row.get(BY_NAME[n].columns[0]) is None and n not in scored
                 and side >= BY_NAME[n].min_side)


def _manifests(store: Store) -> dict[int, dict[str, Any]]:
    out = {}
    for run in store.rows("runs"):
        try:
            out[int(run["run_id"])] = json.loads(run["manifest"] or "{}")
        except (json.JSONDecodeError, TypeError):
            out[int(run["run_id"])] = {}
    return out


class _Configs:
    """The codec configuration behind a row: the one its run's manifest recorded, else a current TOML of
    the same configuration hash (cached)."""

    def __init__(self, manifests: dict[int, dict[str, Any]], codecs_dir: str | None):
        self.manifests, self.codecs_dir, self._current = manifests, codecs_dir, None

    def find(self, row: dict[str, Any]):
        from bench.codecs.base import CodecConfig, RatePoint

        entry = (self.manifests.get(row["run_id"]) or {}).get("codecs", {}).get(row["codec"])
        if entry:
            config = CodecConfig(row["codec"], entry["adapter"], dict(entry.get("params") or {}),
                                 tuple(RatePoint(label, dict(params or {})) for label, params in entry.get("rates", [])),
                                 entry.get("description", ""), row["device"], source=entry.get("source", ""))
            if config_hash(config) == row["config_hash"]:
                return config
        if self._current is None:
            from bench.codecs import registry

            self._current = registry.load_configs(self.codecs_dir)
        config = self._current.get(row["codec"])
        return config if config is not None and config_hash(config) == row["config_hash"] else None


def _image_folders(row: dict[str, Any], manifest: dict[str, Any], extra: list[Path]) -> list[Path]:
    """Where the row's image may be: the given folders, then the dataset's folder under
    ``$BENCH_DATA_DIR`` and under the data folder the run recorded."""
    from bench import datasets

    dataset = str(row["dataset"]).removeprefix("ladder:")
    roots = [datasets.data_dir(), *([Path(manifest["data_dir"])] if manifest.get("data_dir") else [])]
    subs = [dataset] + (list(datasets.HIGHRES_FOLDERS) if dataset == "highres" else [])
    return [*extra, *(root / sub for root in roots for sub in subs)]


class _Images:
    """Finds an image file by its id (file stem) and file sha256 (cached)."""

    def __init__(self) -> None:
        self._sha: dict[Path, str] = {}
        self._samples: list[Path] | None = None

    def find(self, name: str, sha256: str, dataset: str, folders: list[Path]) -> Path | None:
        from bench import datasets
        from bench.hashing import file_sha256

        candidates = [p for folder in dict.fromkeys(folders) if folder.is_dir()
                      for p in sorted(folder.glob(f"{name}.*")) if p.suffix.lower() in datasets.IMAGE_SUFFIXES]
        if dataset == "samples":
            if self._samples is None:
                self._samples = list(datasets.resolve("samples").paths)
            candidates += [p for p in self._samples if p.stem == name]
        for path in candidates:
            if path not in self._sha:
                try:
                    self._sha[path] = file_sha256(path)
                except OSError:
                    self._sha[path] = ""
            if self._sha[path] == sha256:
                return path
        return None


def plan(store: Store, names: tuple[str, ...], selection: Selection = Selection(),
         image_dirs: list[Path] | None = None, codecs_dir: str | None = None) -> Plan:
    """The rows of ``selection`` that lack some of ``names``, each with its cell and checked stream,
    and why each other such row cannot be scored (no stream, stream missing or corrupt, no image)."""
    from bench.codecs.base import RatePoint

    manifests = _manifests(store)
    configs, images, folder = _Configs(manifests, codecs_dir), _Images(), streams_dir(store.path)
    extra = list(image_dirs or []) + ([Path(selection.dataset)] if selection.dataset and Path(selection.dataset).is_dir() else [])
    result = Plan()
    seen: dict[str, set[Any]] = {"codecs": set(), "rates": set(), "dataset": set(), "run_id": set()}
    for row in store.rows():
        for name, column in (("codecs", "codec"), ("rates", "rate_label"), ("dataset", "dataset"), ("run_id", "run_id")):
            seen[name].add(row[column])
        if row["status"] != "ok" or not selection.wants(row):
            continue
        wanted = lacking(row, names)
        if not wanted:
            result.done += 1
            continue
        key, sha = row["cell_key"], row.get("stream_sha256")
        try:
            if not sha:
                raise StreamError("no kept stream (the run was made without --keep-streams)")
            read_stream(folder, sha, key)
        except StreamError as exc:
            result.problems[key] = str(exc).removeprefix(f"{key}: ")
            continue
        config = configs.find(row)
        if config is None:
            result.problems[key] = (f"codec configuration {row['config_hash']} is neither in the run's manifest nor "
                                    "in the codec folder (--codecs-dir)")
            continue
        manifest = manifests.get(row["run_id"]) or {}
        path = images.find(row["image"], row["image_sha256"], row["dataset"], _image_folders(row, manifest, extra))
        if path is None:
            result.problems[key] = (f"image {row['image']} with sha256 {row['image_sha256']} not found (looked in "
                                    f"$BENCH_DATA_DIR/{row['dataset'].removeprefix('ladder:')}; give --images DIR)")
            continue
        rate_params = json.loads(row["rate_params"]) if row.get("rate_params") else {}
        cell = Cell(config, RatePoint(row["rate_label"], rate_params), row["dataset"], row["image"], str(path),
                    row["image_sha256"], row["resolution"], row["device"], int(row["round"] or 1))
        if cell.key != key:
            result.problems[key] = f"the rebuilt cell's key is {cell.key}, not the row's"
            continue
        result.jobs.append(Job(row, cell, sha, wanted))
    _check_selection(selection, seen)
    return result


def _check_selection(selection: Selection, seen: dict[str, set[Any]]) -> None:
    """Refuse (:class:`UsageError`) a selection naming what the store does not hold (a typo would
    otherwise score nothing and say so quietly), with what it holds."""
    dataset = selection.dataset and (Path(selection.dataset).name if Path(selection.dataset).is_dir() else selection.dataset)
    for option, name, asked in (("--codecs", "codecs", selection.codecs), ("--rates", "rates", selection.rates),
                                ("--dataset", "dataset", (dataset,) if dataset else None),
                                ("--run", "run_id", (selection.run_id,) if selection.run_id is not None else None)):
        unknown = [a for a in asked or () if a not in seen[name]]
        if unknown:
            held = ", ".join(sorted(map(str, seen[name] - {None})))
            raise UsageError(f"{option}: the store holds no {', '.join(map(str, unknown))} (it holds: {held or 'nothing'})")


def refusal(problems: dict[str, str]) -> str:
    """The cells that cannot be scored, in one line."""
    shown = "; ".join(f"{key}: {why}" for key, why in list(problems.items())[:SHOWN])
    more = f"; … and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return f"{len(problems)} cell(s) cannot be scored: {shown}{more}"


# --- in a worker process (or in this one with jobs=1) -----------------------------------------------

_STATE: Any = None


def _start_worker(threads: int, names: tuple[str, ...], parent_pid: int | None) -> None:
    """A scoring worker: dies with its parent, pins threads and warms the metrics, like a run's worker."""
    global _STATE
    from bench.worker import WorkerState, die_with_parent, prepare_worker

    if parent_pid is not None:
        import signal

        die_with_parent(parent_pid)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process stops; scored rows are committed
    settings = Settings(threads=threads, metrics=names)
    prepare_worker(settings)
    _STATE = WorkerState(settings)


def score_one(cell: Cell, data: bytes, names: tuple[str, ...], weights_sha256: str | None,
              psnr_rgb: float | None) -> dict[str, Any]:
    """Decode ``data`` with the cell's codec and compute ``names`` against the cell's image:
    ``{"values", "problems"}``, or ``{"error"}`` when the cell cannot be decoded, or decodes to another
    image than the one measured (its PSNR-RGB is not the stored ``psnr_rgb``: a changed decoder) —
    nothing is stored then."""
    import math

    import numpy as np

    from bench.metrics.basic import psnr_rgb as psnr

    from bench.metrics import compute
    from bench.worker import classify_error

    try:
        original = _STATE.pixels(cell)
        codec = _STATE.codec(cell)
        decoded = codec.decode(bytes(data))
        if weights_sha256 and codec.weights_sha256(cell.rate) != weights_sha256:  # known once the model is loaded
            return {"error": f"weights now have sha256 {codec.weights_sha256(cell.rate)}, the row was measured "
                             f"with {weights_sha256}"}
        if not isinstance(decoded, np.ndarray) or decoded.dtype != np.uint8 or decoded.shape != original.shape:
            got = f"{decoded.dtype} {decoded.shape}" if isinstance(decoded, np.ndarray) else type(decoded).__name__
            return {"error": f"decoder returned {got}, expected uint8 {original.shape}"}
        again = psnr(original, decoded)
        if psnr_rgb is not None and not (again == psnr_rgb or math.isclose(again, psnr_rgb, rel_tol=1e-9)):
            return {"error": f"the stream decodes to another image than the one measured (PSNR-RGB {again:.6f} dB, "
                             f"stored {psnr_rgb:.6f} dB): has the decoder ({codec.library_version()}) changed?"}
        values, problems = compute(original, decoded, names)
    except Exception as exc:  # noqa: BLE001 — one cell's failure is reported, the others go on
        return {"error": classify_error(exc)}
    return {"values": values, "problems": problems}


def _results(jobs: list[Job], names: tuple[str, ...], workers: int, threads: int,
             folder: Path) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Each job with its :func:`score_one` answer, as they finish (at most 2 per worker in flight)."""
    def args(job: Job) -> tuple[Any, ...]:
        return job.cell, read_stream(folder, job.stream_sha256, job.row["cell_key"]), job.metrics, \
            job.row.get("weights_sha256"), job.row.get("psnr_rgb")

    if workers <= 1:
        _start_worker(threads, names, None)
        for job in jobs:
            yield job, score_one(*args(job))
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pending = iter(jobs)
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                               initargs=(threads, names, os.getpid()))
    try:
        running: dict[Any, Job] = {}
        while True:
            for job in pending:
                running[pool.submit(score_one, *args(job))] = job
                if len(running) >= 2 * workers:
                    break
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                yield running.pop(future), future.result()
    except BaseException:  # Ctrl-C, a failed write: stop now; only the cells in flight are lost
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def record_in_manifests(store: Store, jobs: list[Job], names: tuple[str, ...], command: str) -> None:
    """Append this score to the manifest of every run it changes: when, by what command, with which
    metric implementations (so the report names them beside the run's own)."""
    from bench.metrics.run import table as metric_table

    manifests = _manifests(store)
    entry = {"at": now(), "command": command, "host": platform.node(), "metrics": list(names)}
    added = metric_table(names)
    for run_id in sorted({int(job.row["run_id"]) for job in jobs}):
        manifest = manifests.get(run_id, {})
        manifest.setdefault("scores", []).append(entry)
        present = {m.get("metric") for m in manifest.get("metrics") or []}
        manifest["metrics"] = [*(manifest.get("metrics") or []),
                               *({**m, "added_by": f"score {entry['at']}"} for m in added if m["metric"] not in present)]
        store.set_manifest(run_id, manifest)


def run(store: Store, found: Plan, names: tuple[str, ...], workers: int = 1, threads: int = 1,
        command: str = "", on_result: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Score ``found.jobs`` into ``store``, committing each row as it is scored; returns the number of
    cells that could not be decoded (reported through ``on_result`` as error rows, left as they were)."""
    from bench.metrics.registry import implementation_version

    if not found.jobs:
        return 0
    record_in_manifests(store, found.jobs, names, command)
    versions = {n: implementation_version(BY_NAME[n]) for n in names}
    failed = 0
    for job, answer in _results(found.jobs, names, workers, threads, streams_dir(store.path)):
        key = job.row["cell_key"]
        if "error" in answer:
            failed += 1
            if on_result:
                on_result({"cell_key": key, "status": "error", "error": answer["error"]})
            continue
        extras = _extras(job.row)
        at = now()
        extras["scored"] = {**(extras.get("scored") or {}),
                            **{n: {"at": at, "implementation": versions[n]} for n in job.metrics}}
        problems = {n: why for n, why in answer["problems"].items() if n in job.metrics}
        if problems:
            extras["metrics_null"] = {**(extras.get("metrics_null") or {}), **problems}
        columns = [c for n in job.metrics for c in BY_NAME[n].columns]
        store.fill_metrics(key, {c: answer["values"].get(c) for c in columns}, extras)
        if on_result:
            on_result({"cell_key": key, "status": "ok"})
    return failed


def check_metrics(names: tuple[str, ...]) -> None:
    """Refuse (:class:`UsageError`) a metric that cannot run here: scoring with it would store nothing."""
    from bench.metrics.run import unavailable

    missing = {n: unavailable(BY_NAME[n]) for n in names if unavailable(BY_NAME[n])}
    if missing:
        raise UsageError("cannot score " + "; ".join(f"{n}: {why}" for n, why in missing.items()))
