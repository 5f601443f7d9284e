"""MSP profiles: the fixed settings that trade compression efficiency for decoding complexity.

The paper (Zhang et al., arXiv 2210.04112) says only that *predefined profiles* give different
balance points; the concrete profiles below are lic-bench's choices (see
``shared/spec/msp_lof.md``). A codec configuration (``codecs/msp-*.toml``) names a profile and
may override its fields; :func:`profile_from_params` merges and validates the two.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

#: MSE trade-offs λ of the rate ladder (loss R + λ·255²·MSE), as in CompressAI's training.
DEFAULT_LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)


@dataclass(frozen=True)
class MSPProfile:
    """Structure of an MSP model and its encoder-side LOF budget.

    ``levels`` is the pyramid depth S; ``steps_per_level`` is 2 (D, then R+B jointly) or 3
    (D, R, B); ``groups`` is the number G of channel groups coded one after another inside every
    step. ``N``/``M`` are the transform width and latent channels, ``context_width`` the width of
    the per-step context nets, ``feature_channels`` the running context feature F.
    """

    name: str
    levels: int = 3
    steps_per_level: int = 3
    groups: int = 1
    N: int = 192
    M: int = 320
    context_width: int = 224
    feature_channels: int = 128
    lof_iterations: int = 0
    lof_lr: float = 1e-3
    lof_eval_every: int = 50
    lof_rounding: str = "ste"
    transform: str = "elic"  # g_a/g_s family: "elic" or "gdn" (bench.models.msp.transforms)

    @property
    def sequential_steps(self) -> int:
        """Sequential entropy-decoding steps: (1 + steps_per_level·S)·G, for any image size."""
        return (1 + self.steps_per_level * self.levels) * self.groups

    def validate(self) -> MSPProfile:
        """Raise ``ValueError`` with the offending field if the profile cannot be built."""
        checks = [
            (1 <= self.levels <= 6, "levels (pyramid depth S) must be 1..6"),
            (self.steps_per_level in (2, 3), "steps_per_level must be 2 (D, RB) or 3 (D, R, B)"),
            (1 <= self.groups <= 8, "groups (channel groups G) must be 1..8"),
            (self.M >= self.groups, "M (latent channels) must be at least the number of groups"),
            (self.N >= 8 and self.M >= 1, "N must be >= 8 and M >= 1"),
            (self.context_width >= 1 and self.feature_channels >= 1, "widths must be positive"),
            (self.lof_iterations >= 0, "lof_iterations must be >= 0"),
            (self.lof_eval_every >= 1, "lof_eval_every must be >= 1"),
            (self.lof_lr > 0, "lof_lr must be > 0"),
            (self.lof_rounding in ("ste", "sga"), "lof_rounding must be 'ste' or 'sga'"),
            (self.transform in ("elic", "gdn"), "transform must be 'elic' or 'gdn'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"MSP profile {self.name!r}: {message}")
        return self

    def fingerprint(self) -> int:
        """32-bit id of the decoder architecture (what a bitstream needs to be decodable)."""
        key = f"msp:{self.levels}:{self.steps_per_level}:{self.groups}:{self.N}:{self.M}:"
        key += f"{self.context_width}:{self.feature_channels}"
        if self.transform != "elic":  # ELIC profiles keep the fingerprint they always had
            key += f":{self.transform}"
        return zlib.crc32(key.encode())


PROFILES: dict[str, MSPProfile] = {
    p.name: p
    for p in (
        MSPProfile("msp-fast", levels=3, steps_per_level=2, groups=1, N=128, M=192,
                   context_width=160, feature_channels=64),
        MSPProfile("msp-base", levels=3, steps_per_level=3, groups=1),
        MSPProfile("msp-base-lof", levels=3, steps_per_level=3, groups=1, lof_iterations=500),
        # compact, trainable on 2 CPU cores: the transforms of the mbt2018-tiny baseline
        MSPProfile("msp-tiny", levels=3, steps_per_level=2, groups=1, N=48, M=48,
                   context_width=48, feature_channels=32, transform="gdn"),
        MSPProfile("msp-best", levels=3, steps_per_level=3, groups=2, lof_iterations=2000,
                   lof_lr=5e-3, lof_rounding="sga"),
    )
}

_FIELDS = {f.name for f in dataclasses.fields(MSPProfile)} - {"name"}
#: Adapter-level parameters that are not profile fields.
_ADAPTER_KEYS = {"profile", "seed", "checkpoints", "require_trained", "lambdas", "portable"}


def get_profile(name: str) -> MSPProfile:
    """The built-in profile ``name``; ``KeyError`` listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown MSP profile {name!r} (known: {', '.join(PROFILES)})") from None


def profile_from_params(params: dict[str, Any]) -> MSPProfile:
    """Build the profile a codec configuration declares: ``profile`` plus field overrides."""
    if "profile" not in params:
        raise ValueError(f"MSP configuration needs params.profile (one of: {', '.join(PROFILES)})")
    unknown = set(params) - _FIELDS - _ADAPTER_KEYS
    if unknown:
        raise ValueError(f"unknown MSP parameter(s) {sorted(unknown)} (profile fields: {sorted(_FIELDS)})")
    base = get_profile(str(params["profile"]))
    overrides = {k: params[k] for k in _FIELDS if k in params}
    return dataclasses.replace(base, **overrides).validate()
