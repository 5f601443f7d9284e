"""Context networks of the MSP probability model.

* :class:`ContextNet` — per step: conv3×3 → ReLU → conv3×3 → ReLU → conv1×1 to (μ, σ) of the
  channels the step codes. It runs on the coarse grid of its level, whose 3×3 neighbourhood holds
  every already-decoded polyphase neighbour of a D/R/B position.
* :class:`FeatureFuse` — the running context feature F_s = ReLU(conv3×3([Ŷ_s, up₂(F_{s+1})])),
  with pixel-shuffle up-sampling; F_S = ReLU(conv3×3(Ŷ_S)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.models.msp.plan import Step


class ContextNet(nn.Module):
    """(μ, σ) for the ``out_channels`` latent channels one step codes, from its context."""

    def __init__(self, in_channels: int, out_channels: int, width: int):
        super().__init__()
        self.out_channels = out_channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        # Output layout: [μ (out_channels), σ (out_channels)].
        self.head = nn.Conv2d(width, 2 * out_channels, 1)

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        mu, sigma = self.head(self.body(context)).chunk(2, dim=1)
        return mu, sigma


class FeatureFuse(nn.Module):
    """F_s from Ŷ_s and the coarser feature F_{s+1} (None at the coarsest level)."""

    def __init__(self, latent_channels: int, feature_channels: int, has_coarser: bool):
        super().__init__()
        self.up = (
            nn.Sequential(nn.Conv2d(feature_channels, 4 * feature_channels, 1), nn.PixelShuffle(2))
            if has_coarser
            else None
        )
        in_ch = latent_channels + (feature_channels if has_coarser else 0)
        self.fuse = nn.Sequential(nn.Conv2d(in_ch, feature_channels, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, y_hat: Tensor, coarser: Tensor | None) -> Tensor:
        if self.up is None:
            return self.fuse(y_hat)
        up = self.up(coarser)[..., : y_hat.shape[-2], : y_hat.shape[-1]]
        return self.fuse(torch.cat([y_hat, up], dim=1))


def context_in_channels(step: Step, plan: list[Step], M: int, Fc: int, group_sizes: list[int]) -> int:
    """Input channels of ``step``'s context net (see ``MSPModel._context`` for the layout)."""
    before = sum(group_sizes[: step.group])
    if step.level == max(s.level for s in plan):  # coarsest level: earlier groups of Y_S only
        return before
    earlier_parts = {p for s in plan if s.level == step.level and _before(s, step, plan) for p in s.parts}
    earlier_parts -= set(step.parts)
    return M + Fc + M * len(earlier_parts) + before * len(step.parts)


def _before(a: Step, b: Step, plan: list[Step]) -> bool:
    return plan.index(a) < plan.index(b)
