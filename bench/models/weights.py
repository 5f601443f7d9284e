"""Read weights files without ever running code from them — the one loader every model uses.

A ``torch.save`` file is a pickle, and unpickling can call any importable function. Weights files
come from the internet, so they are read with torch's restricted unpickler (``weights_only=True``):
tensors and plain containers (dict, list, tuple, ``OrderedDict``, ``collections.Counter``, numbers,
strings) only. That covers the files the project loads: CompressAI zoo state dicts, MSP state
dicts, and the official MLIC++ ``.pth.tar`` (spec §6.2: ``epoch``, ``state_dict``, ``loss`` (a
tensor), optimizer and ``MultiStepLR`` state dicts). No extra globals are allowed; a file that
needs one is refused with a :class:`CheckpointError` naming it, and nothing in it has run.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

from bench.errors import CheckpointError

_GLOBAL_IN_MESSAGE = re.compile(r"Unsupported global: GLOBAL (\S+)")


def load_weights_file(path: str | os.PathLike, what: str = "weights file") -> Any:
    """The object in a ``torch.save`` file, on CPU, read without running any code from it.

    ``~`` and ``$VARS`` in ``path`` are expanded. Raises ``FileNotFoundError`` if it is not a
    file and :class:`CheckpointError` if it is not a torch file or holds anything but tensors and
    plain containers (the message names the offending globals, e.g. ``builtins.exec``).
    """
    import torch

    path = Path(os.path.expandvars(os.fspath(path))).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        names = _unsafe_globals(path, str(exc))
        if not names:
            raise CheckpointError(f"{path}: cannot be read as a torch {what}: {_reason(str(exc))}") from None
        raise CheckpointError(
            f"{path}: refused: the {what} holds Python objects that loading would have to run "
            f"({', '.join(names)}); only tensors and plain containers are read. Re-save just the "
            f"state dict (torch.save(model.state_dict(), ...)) from a source you trust"
        ) from None
    except Exception as exc:  # noqa: BLE001 — truncated, not a torch file, legacy .tar format…
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else f"{type(exc).__name__} (empty or truncated file)"
        raise CheckpointError(f"{path}: cannot be read as a torch {what}: {detail}") from exc


def _unsafe_globals(path: Path, message: str) -> list[str]:
    """Every global the restricted unpickler refuses (zip files), else the one torch's message names."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 — legacy (non-zip) files cannot be scanned; use the message
        names = []
    return names or _GLOBAL_IN_MESSAGE.findall(message)


def _reason(message: str) -> str:
    """The unpickler's own words out of torch's long "Weights only load failed" text."""
    if "WeightsUnpickler error:" not in message:
        return message.strip().splitlines()[0] if message.strip() else "not a torch.save file"
    tail = message.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    return " ".join(tail.split()) or "not a torch.save file"
