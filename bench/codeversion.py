"""Which code wrote a result: the git commit of this checkout, recorded in every run's manifest and
in every report. One low module (standard library only) that the run (write side) and the report
(read side) both import, so the two can never describe the code differently.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

#: The checkout this package runs from.
PROJECT = Path(__file__).resolve().parents[1]


def git_commit(where: Path = PROJECT) -> str | None:
    """The commit of the code at ``where`` (``-dirty`` with uncommitted changes to tracked files);
    None outside a git checkout or without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=where, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=where, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
