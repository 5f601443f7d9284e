"""Build MSP models: from a checkpoint, or untrained (fixed seed, calibrated for realistic symbols)."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.models.entropy import restore_likelihood_bounds
from bench.models.msp.model import MSPModel
from bench.models.msp.profiles import MSPProfile
from bench.models.untrained import calibrate_latent_scale, init_gaussian_head, last_conv, probe_image
from bench.models.weights import load_weights_file


def init_untrained(model: MSPModel) -> MSPModel:
    """Scale g_a's last conv and the context heads so random weights code ~half non-zero symbols."""
    calibrate_latent_scale(model.analysis, last_conv(model.g_a), probe_image())
    for net in model.context.values():
        n = net.out_channels
        init_gaussian_head(net.head, sigma=slice(n, 2 * n), mu=slice(0, n))
    return model


def load_state(path: str | Path) -> dict:
    """A state dict from ``path`` (a bare state dict or one under "state_dict"/"model")."""
    obj = load_weights_file(path, "MSP checkpoint")
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
    return obj


def create_model(
    profile: MSPProfile, checkpoint: str | Path | None = None, seed: int = 0, device: str = "cpu"
) -> MSPModel:
    """An MSP model ready to code: weights from ``checkpoint`` or seeded untrained ones."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MSPModel(profile)
        if checkpoint is None:
            init_untrained(model)
    if checkpoint is not None:
        model.load_state_dict(load_state(checkpoint))
        restore_likelihood_bounds(model)  # a float16 file holds them as 0
    model.update(force=True)
    return model.eval().to(device)
