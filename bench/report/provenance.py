"""Where the report's numbers come from: run manifests, codec versions, metric definitions.

The metric and timing definitions are quoted from the project README's section "What is
measured, exactly" (the single place they are written down), so the report cannot drift from it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

README = Path(__file__).resolve().parents[2] / "README.md"
DEFINITIONS_SECTION = "## What is measured, exactly"
#: README table rows the report uses (matched against the row's first cell).
USED_COLUMNS = ("bpp", "psnr_rgb", "ms_ssim", "enc_time_s", "enc_mem_growth_bytes", "enc_mem_peak_bytes", "model_bytes",
                "mem_method", "enc_gpu_peak_bytes", "trained")


@dataclass(frozen=True)
class Definition:
    column: str  # as written in the README, Markdown kept (e.g. "`bytes`, `bpp`")
    meaning: str


def readme_definitions(readme: Path = README) -> tuple[list[Definition], str]:
    """The README's definition rows the report relies on, and where they were read from.

    Returns ``([], reason)`` when the README or its section is missing (an installed package
    without the source tree); the report then says so instead of inventing definitions.
    """
    if not readme.is_file():
        return [], f"{readme} not found: see the project README, section 'What is measured, exactly'"
    lines = readme.read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(DEFINITIONS_SECTION)
    except ValueError:
        return [], f"{readme} has no section {DEFINITIONS_SECTION!r}"
    out = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] != "column" and any(f"`{c}`" in cells[0] for c in USED_COLUMNS):
            out.append(Definition(cells[0], " | ".join(cells[1:])))
    return out, f"README.md, section “{DEFINITIONS_SECTION.lstrip('# ')}”"


def git_commit(where: Path = README.parent) -> str | None:
    """The commit of the code that wrote the report (``-dirty`` with uncommitted changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=where, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=where, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def runs_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run manifest: when, which code, which machine, which protocol, which command."""
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
