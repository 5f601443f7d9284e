"""The anchors on disk: where they live, listing, loading by name, and saving.

Anchors are files ``<root>/<dataset>/<curve>.json``; the root is ``$BENCH_ANCHORS_DIR`` or the
project's ``anchors/`` folder. Loading validates the file (see :mod:`bench.anchors.schema`) and
suggests close names for unknown ones.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

from bench.errors import AnchorError
from bench.anchors.schema import _NAME_RE, Anchor


def anchors_dir() -> Path:
    """``$BENCH_ANCHORS_DIR`` if set, else the project's ``anchors/`` folder."""
    env = os.environ.get("BENCH_ANCHORS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "anchors"


def list_anchors(dataset: str | None = None, root: Path | str | None = None) -> list[str]:
    """Names of all anchors (optionally of one dataset), sorted."""
    base = Path(root) if root is not None else anchors_dir()
    if not base.is_dir():
        raise AnchorError(f"anchors folder {base} does not exist (set BENCH_ANCHORS_DIR?)")
    names = sorted(p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.json"))
    return [n for n in names if dataset is None or n.startswith(dataset + "/")]


def anchor_datasets(root: Path | str | None = None) -> list[str]:
    """The datasets that have anchors (the first part of their names), sorted."""
    return sorted({name.split("/", 1)[0] for name in list_anchors(root=root) if "/" in name})


def load_anchor(name: str, root: Path | str | None = None) -> Anchor:
    """The anchor called ``name`` (e.g. ``"kodak/vtm"``); unknown names get close suggestions."""
    base = Path(root) if root is not None else anchors_dir()
    if not _NAME_RE.match(name):
        raise AnchorError(f"bad anchor name {name!r}: use '<dataset>/<curve>', e.g. 'kodak/vtm'")
    path = base / f"{name}.json"
    if not path.is_file():
        close = difflib.get_close_matches(name, list_anchors(root=base), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see list_anchors()"
        raise AnchorError(f"no anchor named {name!r} in {base}{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnchorError(f"{path}: not valid JSON ({exc})") from None
    anchor = Anchor.from_dict(data, where=str(path))
    if anchor.name != name:
        raise AnchorError(f"{path}: file holds anchor {anchor.name!r}, expected {name!r}")
    return anchor


def measured_anchors(root: Path | str | None = None) -> list[str]:
    """Names of the anchors measured by this suite (``provenance.source == "measured"``): they are
    not imported from the shared sources, so ``import`` keeps them and its equality check skips them."""
    base = Path(root) if root is not None else anchors_dir()
    return [n for n in list_anchors(root=base) if load_anchor(n, root=base).provenance.get("source") == "measured"]


def save_anchor(anchor: Anchor, root: Path | str) -> Path:
    """Write ``anchor`` to ``root/<name>.json`` (compact number lists, one column per line)."""
    path = Path(root) / f"{anchor.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(anchor.to_dict(), indent=1, ensure_ascii=False)
    # Put each list of numbers on one line: the files stay small and diff well per column.
    text = re.sub(r"\[\s+([-0-9.eE+,\s]+?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    path.write_text(text + "\n", encoding="utf-8")
    return path
