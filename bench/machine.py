"""The machine a measurement ran on: what each row records, and the *machine class* timings belong to.

Timings compare only within a machine class: the CPU model string, the number of logical CPUs
and the architecture (``platform.machine()``). One definition, :class:`MachineClass`, serves the
gate (baseline vs run, and the rows of one run) and the report (timing grouped per class).
Every row records its machine (:func:`machine_info`, called in the worker that measured it,
which may be another computer than the one that planned the run). Old records may lack parts:
an unknown part is ``None``; a run manifest written before the class was recorded carries only
``cpu`` (``"<model> (<n> logical CPUs)"``), read as a class whose architecture is unknown.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass
from typing import Any

#: the row columns that describe the machine (filled by :func:`machine_info`)
MACHINE_COLUMNS = ("host", "cpu_model", "logical_cpus", "arch", "gpu_model")
_OLD_CPU = re.compile(r"^(?P<model>.*) \((?P<n>\d+) logical CPUs\)$")


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """This machine, as row columns: host name, CPU model, logical CPUs, architecture, and the
    model of the GPU ``device`` names (``None`` for a CPU device: the cell did not run on a GPU)."""
    from bench.device import cpu_model, gpu_name

    return {"host": platform.node() or None, "cpu_model": cpu_model(), "logical_cpus": os.cpu_count(),
            "arch": platform.machine() or None, "gpu_model": gpu_name(device)}


@dataclass(frozen=True)
class MachineClass:
    """The kind of machine a run's timings belong to; ``None`` parts are unknown (old records)."""

    cpu_model: str | None
    logical_cpus: int | None
    arch: str | None

    @classmethod
    def here(cls) -> MachineClass:
        info = machine_info()
        return cls(info["cpu_model"], info["logical_cpus"], info["arch"])

    @classmethod
    def of(cls, record: dict[str, Any]) -> MachineClass:
        """From a baseline or a run manifest: its ``machine`` entry, else its old ``cpu`` string."""
        machine = record.get("machine")
        if isinstance(machine, dict):
            return cls(machine.get("cpu_model"), machine.get("logical_cpus"), machine.get("arch"))
        cpu = record.get("cpu")
        if isinstance(cpu, str) and (m := _OLD_CPU.match(cpu)):
            return cls(m["model"], int(m["n"]), None)
        return cls(cpu if isinstance(cpu, str) else None, None, None)

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> MachineClass:
        """From a measurement row (its ``cpu_model``, ``logical_cpus``, ``arch`` columns; missing
        or NULL in rows written before they existed)."""
        def known(value: Any) -> Any:
            return None if value is None or value != value else value  # NaN from a DataFrame: unknown

        cpus = known(row.get("logical_cpus"))
        return cls(known(row.get("cpu_model")), int(cpus) if cpus is not None else None, known(row.get("arch")))

    def known(self) -> bool:
        """Model and CPU count are known (the architecture may not be)."""
        return self.cpu_model is not None and self.logical_cpus is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def matches(self, other: MachineClass) -> bool:
        """Same class: model and CPU count known and equal; the architecture equal where both know it."""
        if not (self.known() and other.known()):
            return False
        return (self.cpu_model, self.logical_cpus) == (other.cpu_model, other.logical_cpus) and (
            self.arch is None or other.arch is None or self.arch == other.arch)

    def __str__(self) -> str:
        return (f"{self.cpu_model or 'unknown CPU'}, "
                f"{self.logical_cpus if self.logical_cpus is not None else '?'} logical CPUs, "
                f"{self.arch or 'arch not recorded'}")


def row_classes(rows: Any) -> list[MachineClass]:
    """The distinct known machine classes of some rows (a DataFrame or dicts), in first-seen order.
    Rows without machine columns (written before they existed) are left out: they are unknown, not
    another class."""
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    return list(dict.fromkeys(c for c in map(MachineClass.of_row, records) if c.known()))


#: the machine-class label of rows that do not record their machine (written before the columns existed)
UNRECORDED = "machine not recorded"


def class_label(row: dict[str, Any]) -> str:
    """The machine class of a row as text (the report's grouping key), or :data:`UNRECORDED`."""
    machine = MachineClass.of_row(row)
    return str(machine) if machine.known() else UNRECORDED
