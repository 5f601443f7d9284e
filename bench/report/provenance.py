"""Where the report's numbers come from: run manifests, codec versions, metric definitions.

The quality metrics' definitions come from the metric registry (:mod:`bench.metrics.registry`),
with the implementation and version each run recorded in its manifest; the other columns'
definitions are :data:`COLUMN_DEFINITIONS` (the README's section "What is measured, exactly"
says the same for readers of the manual). Nothing is parsed from the README at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.metrics.registry import METRICS


#: Definitions of the non-metric columns the report uses.
COLUMN_DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("`bytes`, `bpp`", "length of the complete bitstream the decoder receives (headers included); "
                       "bpp = 8·bytes/(H·W) of the coded image"),
    ("`enc_time_s`, `dec_time_s`", "wall time of the `encode`/`decode` call: `--warmup` untimed calls (the first "
                                   "yields the measured bitstream), then `--repeats` timed calls; the median"),
    ("`enc_mem_growth_bytes`, `dec_mem_growth_bytes`", "the call run once more, untimed, in a fresh fork of a clean "
                                                       "process that built the codec but touched no image: its peak "
                                                       "RSS during the call minus its RSS right before it "
                                                       "(shared-library pages the call mapped not counted)"),
    ("`enc_mem_peak_bytes`, `dec_mem_peak_bytes`", "that clean process's whole peak RSS during the call "
                                                   "(interpreter and libraries included); the child's own peak for "
                                                   "subprocess codecs"),
    ("`model_bytes`", "learned codecs: parameter + buffer bytes of the model"),
    ("`mem_method`", "how memory was read: `fork`, `fork+construct` (CUDA), `subprocess`, `off`, `skipped: …` "
                     "(`--memory mid` measures the middle rate point only), `… (reused: …)` (`--memory size`, the default: the "
                     "middle rate point once per image size, the other cells of that size store that reading) or "
                     "`failed: …`"),
    ("`enc_gpu_peak_bytes`, `dec_gpu_peak_bytes`", "CUDA only: `torch.cuda.max_memory_allocated` after a reset"),
    ("`trained`", "0 for learned codecs on random weights: complexity only, excluded from RD plots and BD tables"),
)


@dataclass(frozen=True)
class Definition:
    column: str  # Markdown, e.g. "`bytes`, `bpp`"
    meaning: str


def definitions(runs: list[dict[str, Any]] | None = None, measured: set[str] | None = None) -> list[Definition]:
    """The report's column definitions: the fixed columns, then each metric of the registry (those
    with a value in ``measured`` columns, when given) with its channel, BD column, direction and
    the implementation (version) the runs recorded."""
    used: dict[str, set[str]] = {}
    for m in runs or []:
        for row in m.get("metrics") or []:
            used.setdefault(row.get("metric"), set()).add(str(row.get("implementation")))
    out = [Definition(column, meaning) for column, meaning in COLUMN_DEFINITIONS]
    for metric in METRICS:
        if measured is not None and not set(metric.columns) & measured:
            continue
        versions = "; ".join(sorted(used.get(metric.name, ()))) or f"{metric.implementation} (not in these runs)"
        direction = "higher is better" if metric.higher_is_better else "lower is better"
        out.append(Definition(", ".join(f"`{c}`" for c in metric.columns),
                              f"**{metric.name}** on {metric.colour}: {metric.definition} BD on `{metric.bd_column}`, "
                              f"{direction}; NULL below {metric.min_side} px a side. Implementation: {versions}."))
    return out


#: Hex digits of a commit shown in the page (git's own short form is 7; 12 stays unique in big
#: repositories); the full hash is in ``data/runs.csv`` and the run's manifest.
SHORT_COMMIT = 12


def short_commit(commit: Any) -> str:
    """``commit`` cut to :data:`SHORT_COMMIT` hex digits, keeping a ``-dirty`` mark."""
    text = str(commit or "unknown")
    head, dirty = (text[:-6], "-dirty") if text.endswith("-dirty") else (text, "")
    return head[:SHORT_COMMIT] + dirty if len(head) == 40 else text


def short_time(stamp: Any) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` (the offset dropped: the suite writes UTC)."""
    text = str(stamp or "")
    return text[:19].replace("T", " ") if len(text) >= 19 and text[10] == "T" else text


def runs_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run manifest: when, which code, which machine, which protocol, which command
    (complete values: ``data/runs.csv``; :func:`runs_shown` is the page's narrower form)."""
    rows = []
    for m in runs:
        protocol = m.get("protocol") or {}
        rows.append({
            "run": m.get("run_id"), "started": m.get("started_at"), "finished": m.get("finished_at") or "unfinished",
            "git commit": m.get("git_commit") or "unknown", "host": m.get("host"), "CPU": m.get("cpu"),
            "GPU": m.get("gpu") or "none", "jobs × threads": f"{m.get('jobs')} × {m.get('threads')}",
            "warmup / repeats": f"{protocol.get('warmup')} / {protocol.get('repeats')}",
            "python": m.get("python"), "command": m.get("command"),
        })
    return pd.DataFrame(rows)


def runs_shown(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table as the page shows it: short commits, UTC times without the offset, and no
    command (the page lists the commands below the table, where a long one can wrap)."""
    if table.empty:
        return table
    return table.drop(columns=["command"]).assign(
        **{"started": table["started"].map(short_time),
           "finished": table["finished"].map(lambda v: short_time(v) if v != "unfinished" else v),
           "git commit": table["git commit"].map(short_commit)}).rename(
        columns={"started": "started (UTC)", "finished": "finished (UTC)"})


def package_versions(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Package versions per run (columns = runs), so a version change between runs shows."""
    table: dict[str, dict[str, str]] = {}
    for m in runs:
        for package, version in (m.get("packages") or {}).items():
            table.setdefault(package, {})[f"run {m.get('run_id')}"] = version or "not installed"
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("package").reset_index()


def codecs_table(rows: pd.DataFrame, errors: pd.DataFrame, runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Per codec: adapter, exact library version(s), configuration hash, device, trained, cell counts."""
    described = {}
    for m in runs:
        described.update(m.get("codecs") or {})
    out = []
    for codec, group in rows.groupby("codec", sort=True):
        errs = errors[errors["codec"] == codec] if len(errors) else errors
        trained = sorted({"yes" if t else "no (random weights)" for t in group["trained"].dropna()})
        out.append({
            "codec": codec, "adapter": group["adapter"].iloc[0],
            "version": "; ".join(sorted(group["codec_version"].dropna().astype(str).unique())),
            "config": group["config_hash"].iloc[0], "device": ", ".join(sorted(group["device"].unique())),
            "trained": ", ".join(trained), "ok cells": len(group), "error cells": len(errs),
            "description": (described.get(codec) or {}).get("description", ""),
        })
    for codec in sorted(set(errors["codec"]) - set(rows["codec"])) if len(errors) else []:
        errs = errors[errors["codec"] == codec]
        out.append({"codec": codec, "adapter": errs["adapter"].iloc[0], "version": "",
                    "config": errs["config_hash"].iloc[0], "device": ", ".join(sorted(errs["device"].unique())),
                    "trained": "", "ok cells": 0, "error cells": len(errs),
                    "description": (described.get(codec) or {}).get("description", "")})
    return pd.DataFrame(out)


def error_summary(errors: pd.DataFrame) -> pd.DataFrame:
    """Error cells per codec with their most frequent message."""
    if errors.empty:
        return pd.DataFrame(columns=["codec", "cells", "most frequent error"])
    rows = []
    for codec, group in errors.groupby("codec", sort=True):
        counts = group["error"].fillna("unknown").value_counts()
        rows.append({"codec": codec, "cells": len(group),
                     "most frequent error": f"{counts.index[0]} (×{counts.iloc[0]})"})
    return pd.DataFrame(rows)
