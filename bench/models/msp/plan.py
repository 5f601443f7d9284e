"""The coding order of an MSP profile: one :class:`Step` per sequential entropy-decoding step.

Order (S levels, G channel groups)::

    level S : Y_S group 0 (factorised prior), groups 1..G−1 (Gaussian, from earlier groups)
    level s = S−1 … 0 :
        2-step profiles: D_s, then R_s+B_s jointly
        3-step profiles: D_s, then R_s, then B_s
      each part-set coded group by group (G steps).

Every step is parallel over all spatial positions, so the number of steps, (1 + k·S)·G, does not
depend on the image size — the "O(1) sequential decoding" reading of the paper's claim.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One sequential step: code ``parts`` of pyramid ``level``, channel group ``group``."""

    level: int
    parts: tuple[str, ...]
    group: int
    factorized: bool = False

    @property
    def name(self) -> str:
        return f"L{self.level}_{''.join(self.parts)}_g{self.group}"


def part_sets(steps_per_level: int) -> tuple[tuple[str, ...], ...]:
    """Which parts each step of a level codes, in order."""
    if steps_per_level == 2:
        return (("D",), ("R", "B"))
    if steps_per_level == 3:
        return (("D",), ("R",), ("B",))
    raise ValueError(f"steps_per_level must be 2 or 3, got {steps_per_level}")


def build_plan(levels: int, steps_per_level: int, groups: int) -> list[Step]:
    """All steps of a profile in coding (= decoding) order."""
    plan = [Step(levels, ("Y",), g, factorized=(g == 0)) for g in range(groups)]
    for s in range(levels - 1, -1, -1):
        for parts in part_sets(steps_per_level):
            plan.extend(Step(s, parts, g) for g in range(groups))
    return plan


def group_sizes(channels: int, groups: int) -> list[int]:
    """Split ``channels`` into ``groups`` near-equal consecutive groups."""
    if not 1 <= groups <= channels:
        raise ValueError(f"cannot split {channels} channels into {groups} groups")
    base, extra = divmod(channels, groups)
    return [base + (1 if g < extra else 0) for g in range(groups)]


def group_slices(channels: int, groups: int) -> list[slice]:
    """Channel slices of :func:`group_sizes`."""
    out, start = [], 0
    for n in group_sizes(channels, groups):
        out.append(slice(start, start + n))
        start += n
    return out
