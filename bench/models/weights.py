"""Read weights files without ever running code from them — the one loader every model uses.

A ``torch.save`` file is a pickle, and unpickling can call any importable function. Weights files
come from the internet, so they are read with torch's restricted unpickler (``weights_only=True``):
tensors and plain containers (dict, list, tuple, ``OrderedDict``, ``collections.Counter``, numbers,
strings) only. That covers the files the project loads: CompressAI zoo state dicts, MSP state
dicts, and the official MLIC++ ``.pth.tar`` (spec §6.2: ``epoch``, ``state_dict``, ``loss`` (a
tensor), optimizer and ``MultiStepLR`` state dicts). No extra globals are allowed; a file that
needs one is refused with a :class:`CheckpointError` naming it, and nothing in it has run.

**The weights description.** Every learned codec describes the trained weights of a rate point
the same way, as a ``weights`` table of its ``[[rates]]`` entry (in the spirit of timm's
pretrained configurations)::

    weights = { path = "${MLICPP_CHECKPOINT_DIR}/mlicpp_mse_0.0018.pth.tar",   # or url = "https://…"
                sha256 = "…", lambda = 0.0018, metric = "mse",
                licence = "…", source = "https://github.com/…" }

:class:`WeightsSpec` reads it; :func:`resolve` finds the local file (``path`` with ``~`` and
``$VARS`` expanded, or for a ``url`` the file of the same name in :func:`weights_dir`) and checks
its sha256 (a full digest, or a prefix of at least 8 hex digits as torch hub file names carry);
:func:`fetch` downloads a ``url`` there first. A rate point without ``weights`` runs untrained.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.errors import CheckpointError
from bench.hashing import file_sha256

_GLOBAL_IN_MESSAGE = re.compile(r"Unsupported global: GLOBAL (\S+)")
#: A zip checkpoint may declare at most this many times its own size in uncompressed entries
#: (``torch.save`` stores entries uncompressed: about 1×; deflated weights: under 2×) ...
MAX_EXPANSION = 20
#: ... unless it declares no more than this in all (a small file is harmless whatever it declares).
EXPANSION_FLOOR_BYTES = 256 * 2**20


def check_declared_sizes(path: Path, what: str = "weights file") -> None:
    """Refuse a zip checkpoint whose entries declare an absurd uncompressed total (a zip bomb).

    torch's reader allocates each record at its declared size, so a 4 MB file declaring
    gigabytes took a minute and 4.9 GB of memory before failing. The central directory is read
    first (``zipfile.infolist``, no decompression): more than :data:`MAX_EXPANSION` × the file's
    size and more than :data:`EXPANSION_FLOOR_BYTES` in all is refused with :class:`CheckpointError`.
    Legacy (non-zip) files have no directory and are left to torch's restricted unpickler.
    """
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        return  # not a zip archive: nothing declared (torch refuses what it cannot read)
    if declared > EXPANSION_FLOOR_BYTES and declared > MAX_EXPANSION * max(size, 1):
        raise CheckpointError(
            f"{path}: refused: the {what} is a {size:,}-byte archive whose entries declare {declared:,} bytes "
            f"uncompressed (over {MAX_EXPANSION}× its size): a decompression bomb, not weights; nothing was loaded")


def load_weights_file(path: str | os.PathLike, what: str = "weights file") -> Any:
    """The object in a ``torch.save`` file, on CPU, read without running any code from it.

    ``~`` and ``$VARS`` in ``path`` are expanded. Raises ``FileNotFoundError`` if it is not a
    file and :class:`CheckpointError` if it is not a torch file, declares an absurd uncompressed
    size (:func:`check_declared_sizes`) or holds anything but tensors and plain containers (the
    message names the offending globals, e.g. ``builtins.exec``).
    """
    import torch

    path = Path(os.path.expandvars(os.fspath(path))).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    check_declared_sizes(path, what)
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


# --- the weights description ---------------------------------------------------------------------
_KEYS = {"path": str, "url": str, "sha256": str, "lambda": (int, float), "metric": str, "licence": str,
         "source": str}
_HEX = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class WeightsSpec:
    """The trained weights of one rate point: where they are, their sha256, and what they are."""

    path: str | None = None
    url: str | None = None
    sha256: str | None = None  # full hex digest, or a prefix of >= 8 hex digits
    lam: float | None = None  # the λ they were trained for (R + λ·255²·D)
    metric: str | None = None  # the distortion they were trained for ("mse", "ms-ssim")
    licence: str | None = None
    source: str | None = None
    base: str | None = None  # folder a relative ``path`` is read from: the configuration's own

    @classmethod
    def parse(cls, table: Any, where: str, base: str | os.PathLike | None = None) -> WeightsSpec:
        """Read a ``weights`` table; ``ValueError`` naming ``where`` and the key if it is wrong.

        A relative ``path`` is relative to ``base`` (the folder of the configuration file, so
        weights shipped beside ``codecs/*.toml`` are found from any working directory) and may
        not leave it."""
        if not isinstance(table, dict):
            raise ValueError(f"{where}: weights must be a table {{ path|url, sha256, lambda, ... }}, got {table!r}")
        for key, value in table.items():
            kind = _KEYS.get(key)
            if kind is None:
                raise ValueError(f"{where}: unknown weights key {key!r} (known: {', '.join(_KEYS)})")
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"{where}: weights.{key} = {value!r} has the wrong type")
        if ("path" in table) == ("url" in table):
            raise ValueError(f"{where}: weights need exactly one of 'path' (a local file) and 'url'")
        sha = table.get("sha256")
        if sha is not None and not _HEX.fullmatch(sha.lower()):
            raise ValueError(f"{where}: weights.sha256 = {sha!r} is not 8..64 hex digits")
        if "url" in table:
            if urlparse(table["url"]).scheme not in ("http", "https", "file"):
                raise ValueError(f"{where}: weights.url = {table['url']!r} is not an http(s) or file URL")
            if sha is None:
                raise ValueError(f"{where}: weights with a url need a sha256 (downloads are always checked)")
        lam = table.get("lambda")
        if lam is not None and not lam > 0:
            raise ValueError(f"{where}: weights.lambda = {lam!r} must be > 0")
        path = table.get("path")
        if path is not None and base is not None and not _is_absolute(path):
            inside = (Path(base) / path).resolve()
            if not inside.is_relative_to(Path(base).resolve()):
                raise ValueError(f"{where}: weights.path = {path!r} leaves the configuration's folder {base}")
        return cls(path, table.get("url"), sha.lower() if sha else None,
                   float(lam) if lam is not None else None, table.get("metric"), table.get("licence"),
                   table.get("source"), os.fspath(base) if base is not None else None)

    def location(self) -> Path:
        """Where the file is (or, for a ``url``, will be once fetched). ``CheckpointError`` if a
        ``$VARIABLE`` of the path is not set."""
        if self.url is not None:
            return weights_dir() / Path(urlparse(self.url).path).name
        expanded = os.path.expanduser(os.path.expandvars(str(self.path)))
        unset = re.findall(r"\$\{?(\w+)", expanded)
        if unset:
            raise CheckpointError(f"weights path {self.path!r} uses environment variable "
                                  f"{', '.join(unset)}, which is not set")
        if self.base is not None and not Path(expanded).is_absolute():
            return Path(self.base) / expanded
        return Path(expanded)

    def describe(self) -> dict[str, Any]:
        """The description as stored with a run (only the keys that are set)."""
        keys = ("path", "url", "sha256", "lam", "metric", "licence", "source")
        return {("lambda" if k == "lam" else k): getattr(self, k) for k in keys if getattr(self, k) is not None}


def _is_absolute(path: str) -> bool:
    """True for paths that do not depend on a base folder: absolute, ``~``, or ``$VARIABLE`` ones."""
    return path.startswith(("~", "$")) or Path(path).is_absolute()


def weights_dir() -> Path:
    """Folder of downloaded weights: ``$BENCH_WEIGHTS_DIR``, else torch hub's ``checkpoints``
    folder (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``), so weights
    CompressAI or torch hub already downloaded are found."""
    if os.environ.get("BENCH_WEIGHTS_DIR"):
        return Path(os.environ["BENCH_WEIGHTS_DIR"]).expanduser()
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def check_sha256(path: Path, spec: WeightsSpec) -> str:
    """The file's sha256; :class:`CheckpointError` with both hashes if it is not the declared one."""
    actual = file_sha256(path)
    if spec.sha256 is not None and not actual.startswith(spec.sha256):
        raise CheckpointError(
            f"{path}: sha256 {actual} does not match the configuration's {spec.sha256}: these are not "
            "the weights the configuration describes (a different or damaged file); fetch them again "
            "or correct the path"
        )
    return actual


def resolve(spec: WeightsSpec) -> tuple[Path, str]:
    """The local weights file and its (checked) sha256. ``FileNotFoundError`` saying what to do
    if it is absent; :class:`CheckpointError` if its sha256 differs from the description's."""
    path = spec.location()
    if not path.is_file():
        hint = (f"download it from {spec.url} (the weights command of the codec layer does, with the check)"
                if spec.url else "check the path (and the environment variables it uses)")
        raise FileNotFoundError(f"weights file not found: {path}; {hint}")
    return path, check_sha256(path, spec)


def fetch(spec: WeightsSpec, timeout: float = 60.0) -> Path:
    """Make the weights local: download a ``url`` into :func:`weights_dir` (checked before it is
    renamed into place) unless a checked copy is already there. Returns the file."""
    from bench.download import download

    path = spec.location()
    if path.is_file() or spec.url is None:
        return resolve(spec)[0]
    part = download(spec.url, path.parent, timeout)
    try:
        check_sha256(part, spec)
    except CheckpointError as exc:
        part.unlink(missing_ok=True)
        raise CheckpointError(f"{spec.url}: {str(exc).split(': ', 1)[1]}") from None
    part.replace(path)
    return path
