"""Folders made for an output, removed again when the output fails.

A command that is refused or fails after creating its output folder (``bench run --out``,
``python -m bench.datasets fetch``) must not leave an empty folder behind, which would look like
a result: :func:`missing_folders` says which folders a ``mkdir(parents=True)`` will make, and
:func:`remove_empty` takes them away again, stopping at the first one something else was put in.
"""

from __future__ import annotations

from pathlib import Path


def missing_folders(folder: Path) -> list[Path]:
    """The folders of ``folder``'s path that do not exist yet, innermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (innermost first) while they are empty; best effort, never raises."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
