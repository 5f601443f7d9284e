"""The gate's baseline file: its schema, an explicit validator, and the machine class it was recorded on.

A baseline that the gate cannot use — not JSON, the wrong shape, a key missing or of the wrong
type, no codec at all — is refused with :class:`GateError` (exit status 2, "cannot judge") and a
message naming the file and the key, never judged as a pass (an empty ``codecs`` used to pass
vacuously) or as a regression (a crash used to exit 1).

**Machine class.** Decode-time ratios are only comparable between runs on the same kind of
machine (:class:`bench.machine.MachineClass`, the one definition the report uses too). Baselines
written before the class was recorded carry only ``cpu`` (``"<model> (<n> logical CPUs)"``); it
is read as a class whose architecture is unknown.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

from bench.errors import BDError, GateError

SCHEMA = "lic-bench/gate-baseline/1"
DEFAULT_BASELINE = Path(__file__).resolve().parents[2] / "gate" / "baseline.json"  # the project's gate/baseline.json


# --- validation ----------------------------------------------------------------------------------

_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
          float: "a number", type(None): "null"}


def _type_name(value: Any) -> str:
    return _KINDS.get(type(value), f"a {type(value).__name__}")


class _Checker:
    """Raises GateError naming the file and the key of the first problem."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str) -> None:
        raise GateError(f"{self.path}: {key}: {problem}; fix the file or rewrite it with --update-baseline")

    def get(self, parent: dict[str, Any], where: str, key: str, kind: type | tuple[type, ...],
            required: bool = True) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in parent:
            if required:
                self.fail(name, "missing")
            return None
        value = parent[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = " or ".join(_KINDS.get(k, k.__name__) for k in kinds)
            self.fail(name, f"expected {wanted}, found {_type_name(value)}")
        return value

    def integer(self, parent: dict[str, Any], where: str, key: str, least: int, required: bool = True) -> None:
        value = self.get(parent, where, key, int, required)
        if value is not None and value < least:
            self.fail(f"{where}.{key}", f"{value} is below {least}")

    def names(self, parent: dict[str, Any], where: str, key: str) -> list[str]:
        values = self.get(parent, where, key, list)
        if not values:
            self.fail(f"{where}.{key}", "empty: nothing to judge")
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v:
                self.fail(f"{where}.{key}[{i}]", f"expected a non-empty string, found {_type_name(v)}")
        if len(set(values)) != len(values):
            self.fail(f"{where}.{key}", "names repeat")
        return values

    def numbers(self, parent: dict[str, Any], where: str, key: str, positive: bool = False) -> list[float]:
        values = self.get(parent, where, key, list)
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
                self.fail(f"{where}.{key}[{i}]", f"expected a finite {'positive ' if positive else ''}number, "
                                                 f"found {v!r}")
        return values


def validate_baseline(doc: Any, path: Path) -> dict[str, Any]:
    """Check every key the gate reads; returns ``doc`` or raises :class:`GateError` naming the key."""
    from bench.analysis.bd import bd

    c = _Checker(path)
    if not isinstance(doc, dict):
        c.fail("(top level)", f"expected an object, found {_type_name(doc)}")
    if doc.get("schema") != SCHEMA:
        c.fail("schema", f"{doc.get('schema')!r}, expected {SCHEMA!r}")
    bench = c.get(doc, "", "benchmark", dict)
    gated = c.names(bench, "benchmark", "codecs")
    c.names(bench, "benchmark", "images")
    crop = c.get(bench, "benchmark", "crop", str)
    if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", crop):
        c.fail("benchmark.crop", f"{crop!r} is not WxH")
    for key, least, required in (("warmup", 0, True), ("repeats", 1, True), ("rounds", 1, False), ("jobs", 1, False)):
        c.integer(bench, "benchmark", key, least, required)
    codecs = c.get(doc, "", "codecs", dict)
    if not codecs:
        c.fail("codecs", "empty: a baseline without codecs would pass vacuously")
    for missing in [name for name in gated if name not in codecs]:
        c.fail(f"codecs.{missing}", "missing, but benchmark.codecs lists it")
    for name, entry in codecs.items():
        where = f"codecs.{name}"
        if name not in gated:
            c.fail(where, "not in benchmark.codecs")
        if not isinstance(entry, dict):
            c.fail(where, f"expected an object, found {_type_name(entry)}")
        bpp = c.numbers(entry, where, "bpp", positive=True)
        psnr = c.numbers(entry, where, "psnr_rgb")
        if len(bpp) != len(psnr):
            c.fail(f"{where}.psnr_rgb", f"{len(psnr)} values for {len(bpp)} bpp values")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bd(bpp, psnr, bpp, psnr, "rate", "pchip")  # the curve must be comparable at all
        except BDError as exc:
            c.fail(f"{where}.bpp/psnr_rgb", f"not a usable RD curve ({exc})")
        labels = c.get(entry, where, "rate_label", list, required=False)
        if labels is not None and (len(labels) != len(bpp) or not all(isinstance(v, str) for v in labels)):
            c.fail(f"{where}.rate_label", f"expected {len(bpp)} strings")
        ratio = c.get(entry, where, "dec_time_ratio", (int, float))
        if not (math.isfinite(ratio) and ratio > 0):
            c.fail(f"{where}.dec_time_ratio", f"expected a finite positive number, found {ratio!r}")
        for name, required in (("cell_ratios", True), ("cell_wall_ratios", False)):  # wall: since wall time is judged
            cells = c.get(entry, where, name, dict, required=required) or {}
            for key, value in cells.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if not (number and math.isfinite(value) and value > 0):
                    c.fail(f"{where}.{name}.{key}", f"expected a finite positive number, found {value!r}")
        wall = c.get(entry, where, "dec_wall_ratio", (int, float), required=False)
        if wall is not None and not (math.isfinite(wall) and wall > 0):
            c.fail(f"{where}.dec_wall_ratio", f"expected a finite positive number, found {wall!r}")
        timer = c.get(entry, where, "timer", str, required=False)
        if timer not in (None, "wall", "CUDA events"):
            c.fail(f"{where}.timer", f"{timer!r} is neither 'wall' nor 'CUDA events'")
        for key in ("version", "config_hash"):
            c.get(entry, where, key, str, required=False)
    machine = c.get(doc, "", "machine", (dict, type(None)), required=False)
    if machine is not None:
        c.get(machine, "machine", "cpu_model", str)
        c.integer(machine, "machine", "logical_cpus", 1)
        c.get(machine, "machine", "arch", (str, type(None)), required=False)
    else:
        c.get(doc, "", "cpu", (str, type(None)), required=False)
    return doc


def read_baseline(path: Path) -> dict[str, Any]:
    """The baseline at ``path``, validated (see :func:`validate_baseline`)."""
    if not path.is_file():
        raise GateError(f"no baseline at {path}; create one with --update-baseline")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GateError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise GateError(f"{path}: cannot be read ({exc.strerror})") from None
    except GateError as exc:
        raise GateError(f"{path}: {exc}; fix the file or rewrite it with --update-baseline") from None
    return validate_baseline(doc, path)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: ``json`` would keep the last of two equal keys silently,
    so a baseline edited by hand could judge against a value nobody meant."""
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise GateError(f"key {key!r} appears twice in one object")
        doc[key] = value
    return doc
