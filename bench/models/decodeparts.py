"""A learned decoder split into parts, and the timer that measures them.

A codec says which of its modules and calls form which part of its decode through its public
``decode_parts(rate)`` (:class:`DecodeParts`); the per-part decode benchmark
(``python -m bench.tools.decode_parts``) times them with :class:`PartTimer` and knows no codec.
The parts, the same names for every codec:

- ``g_s``: the synthesis transform (forward hooks on the modules the codec names);
- ``h_s``: the hyper-synthesis (none for MSP, which has no hyperprior);
- ``context``: the probability model's networks (MSP: the per-step context nets and the feature
  fusion of the pyramid; MLIC++: its context, LRP and entropy-parameter nets; mbt2018: the
  entropy-parameter net of every position);
- ``entropy_coding``: rANS decoding, the scale → CDF-index search, dequantisation (timed wrappers
  around the calls the codec names);
- ``rest``: the decode's time outside all of these (tensor glue between steps, Python loops,
  cropping, the output conversion), so the parts sum to the whole decode exactly.

Time is attributed exclusively: a timed call inside another part's module (nested) is taken out of
the outer part. Counted multiply-adds (:mod:`bench.models.macs`) map onto the parts by
:data:`COUNTED`; the counter's ``other`` lands in ``rest`` and entropy coding is never counted.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: decode parts in table order
PARTS = ("g_s", "h_s", "context", "entropy_coding", "rest")
#: decode part → the parts of :mod:`bench.models.macs` whose counted multiply-adds it runs
COUNTED: dict[str, tuple[str, ...]] = {"g_s": ("synthesis",), "h_s": ("hyper_synthesis",), "context": ("context",),
                                       "entropy_coding": (), "rest": ("other",)}
_MISSING = object()


@dataclass
class DecodeParts:
    """What a codec's decoder is made of: ``modules`` (part → the modules whose forward is that
    part; a ModuleList/ModuleDict stands for its members), ``coding`` ((owner, attribute) of every
    callable that is entropy coding: instance methods, or a class's, e.g. ``RansDecoder``), and
    ``dtype``, the decoder path's floating type (which matmul rate is its yardstick)."""

    modules: dict[str, list[Any]] = field(default_factory=dict)
    coding: list[tuple[Any, str]] = field(default_factory=list)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        unknown = set(self.modules) - set(PARTS) | ({"entropy_coding", "rest"} & set(self.modules))
        if unknown:
            raise ValueError(f"decode parts {sorted(unknown)} cannot be named by modules "
                             f"(parts: {', '.join(PARTS[:3])})")


def _called(module: Any) -> list[Any]:
    """The modules whose forward runs: a container's members (recursively), else the module."""
    from torch import nn

    if isinstance(module, (nn.ModuleList, nn.ModuleDict, nn.ParameterList)):
        items = module.values() if isinstance(module, nn.ModuleDict) else module
        return [m for item in items if item is not None for m in _called(item)]
    return [module]


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class PartTimer:
    """Wall and process-CPU seconds per part of the decodes run inside :meth:`attached`."""

    def __init__(self, parts: DecodeParts):
        self.parts = parts
        self.seconds: dict[str, float] = defaultdict(float)  # "<part>" wall, "<part>:cpu" CPU
        self._stack: list[list[Any]] = []  # [part, wall0, cpu0] of the open parts, innermost last

    def _enter(self, part: str) -> None:
        now = _now()
        if self._stack:  # pause the enclosing part
            self._charge(self._stack[-1], now)
        self._stack.append([part, *now])

    def _exit(self) -> None:
        now = _now()
        self._charge(self._stack.pop(), now)
        if self._stack:
            self._stack[-1][1:] = now

    def _charge(self, entry: list[Any], now: tuple[float, float]) -> None:
        part, wall0, cpu0 = entry
        self.seconds[part] += now[0] - wall0
        self.seconds[part + ":cpu"] += now[1] - cpu0

    def _wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._enter("entropy_coding")
            try:
                return fn(*args, **kwargs)
            finally:
                self._exit()
        return timed

    @contextlib.contextmanager
    def attached(self) -> Iterator[PartTimer]:
        """Within: the codec's modules are hooked and its coding calls wrapped; all undone after."""
        handles, patched = [], []
        try:
            for part, modules in self.parts.modules.items():
                for module in (m for top in modules for m in _called(top)):
                    handles.append(module.register_forward_pre_hook(lambda *_, p=part: self._enter(p)))
                    handles.append(module.register_forward_hook(lambda *_: self._exit()))
            for owner, name in self.parts.coding:
                own = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
                patched.append((owner, name, own))
                setattr(owner, name, self._wrap(getattr(owner, name)))
            yield self
        finally:
            for handle in handles:
                handle.remove()
            for owner, name, own in reversed(patched):
                if own is _MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, own)
            self._stack.clear()

    def split(self, wall: float, cpu: float) -> dict[str, dict[str, float]]:
        """Part → {"seconds", "cpu_seconds"} of a decode that took ``wall`` / ``cpu``; ``rest`` is
        what no part holds, so the parts sum to the whole."""
        out = {p: {"seconds": self.seconds.get(p, 0.0), "cpu_seconds": self.seconds.get(p + ":cpu", 0.0)}
               for p in PARTS if p != "rest"}
        out["rest"] = {"seconds": wall - sum(v["seconds"] for v in out.values()),
                       "cpu_seconds": cpu - sum(v["cpu_seconds"] for v in out.values())}
        return out

    def clear(self) -> None:
        self.seconds.clear()
