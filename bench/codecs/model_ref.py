"""Find the model class a configuration names: ``model = "mypkg.models:MyNet"``.

The string is checked to be a plain ``module.path:ClassName`` (Python identifiers separated by
dots, one colon, one class name) and imported with :func:`importlib.import_module` — never
evaluated. Importing runs the module's code: that is the user's own model code, named by the
user's own configuration, and is accepted as such (weights files, by contrast, never run code:
:mod:`bench.models.weights`).

Where the module is looked for, first to last:

1. ``models_path`` of the configuration: a folder **inside the configuration file's folder**
   (relative to it; an absolute path, or one that leaves that folder — ``..``, a symbolic link
   pointing out — is refused), so a configuration someone hands you cannot import code from
   elsewhere on your disk;
2. the folders of ``$BENCH_MODELS_PATH`` (``os.pathsep``-separated; ``python -m bench
   --models-path DIR`` sets it for the run and every process it starts): code anywhere, named
   by you on the command line;
3. installed packages (``pip install -e your-repo``) and ``PYTHONPATH``.

Folders are put at the front of ``sys.path``. Two configurations naming the same top-level
package from different folders in one process would collide in ``sys.modules``: that is refused
with both places named.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

#: environment variable of extra model folders (set by ``--models-path``)
MODELS_PATH_ENV = "BENCH_MODELS_PATH"


def parse_model_ref(ref: Any, where: str) -> tuple[str, str]:
    """``"pkg.module:Class"`` → ``("pkg.module", "Class")``; ``ValueError`` naming ``where`` otherwise."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"{where}: model = {ref!r} must be 'package.module:ClassName'")
    module, cls = ref.split(":")
    parts = module.split(".")
    if not cls.isidentifier() or not all(p.isidentifier() for p in parts):
        raise ValueError(f"{where}: model = {ref!r} must be 'package.module:ClassName' "
                         "(Python identifiers joined by dots, one colon, one class name)")
    return module, cls


def config_models_folder(models_path: Any, source: str, where: str) -> Path:
    """The folder ``models_path`` names, relative to the configuration file ``source``'s folder
    (the working folder when there is no file); ``ValueError`` if it leaves that folder."""
    if not isinstance(models_path, str) or not models_path:
        raise ValueError(f"{where}: models_path must be a folder name relative to the configuration file")
    base = (Path(source).parent if source else Path.cwd()).resolve()
    if Path(models_path).is_absolute() or os.path.expanduser(models_path) != models_path:
        raise ValueError(f"{where}: models_path = {models_path!r} must be relative to the configuration's folder "
                         f"{base} (for code elsewhere: install it, or name the folder with --models-path)")
    folder = (base / models_path).resolve()
    if folder != base and base not in folder.parents:
        raise ValueError(f"{where}: models_path = {models_path!r} leaves the configuration's folder {base} "
                         f"(it resolves to {folder}); put the code inside it, install it, or use --models-path")
    if not folder.is_dir():
        raise ValueError(f"{where}: models_path = {models_path!r}: no such folder {folder}")
    return folder


def env_models_folders() -> list[Path]:
    """The folders of ``$BENCH_MODELS_PATH`` (those that exist)."""
    value = os.environ.get(MODELS_PATH_ENV, "")
    return [Path(p).resolve() for p in value.split(os.pathsep) if p and Path(p).is_dir()]


def _provider(top: str, folders: list[Path]) -> Path | None:
    """The first folder holding top-level module or package ``top``."""
    for folder in folders:
        if (folder / top).is_dir() or (folder / f"{top}.py").is_file():
            return folder
    return None


def import_model_class(ref: str, folders: list[Path], where: str) -> type:
    """Import the class ``ref`` names (looking in ``folders`` first); ``ImportError`` with the reason."""
    module_name, cls_name = parse_model_ref(ref, where)
    top = module_name.split(".")[0]
    provider = _provider(top, folders)
    loaded = sys.modules.get(top)
    if provider is not None and loaded is not None:
        origin = Path(getattr(loaded, "__file__", None) or next(iter(getattr(loaded, "__path__", [])), "")).resolve()
        if provider != origin and provider not in origin.parents:
            raise ImportError(f"{where}: module {top!r} is already imported from {origin} in this process, "
                              f"but this configuration takes it from {provider}; rename one of the packages")
    for folder in reversed(folders):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 — the user's module may raise anything while importing
        looked = f" (looked in {', '.join(map(str, folders))} first)" if folders else ""
        raise ImportError(f"{where}: cannot import {module_name}{looked}: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise ImportError(f"{where}: {module_name} has no class {cls_name!r}")
    return cls
