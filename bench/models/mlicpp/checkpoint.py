"""Load official MLIC++ checkpoints strictly, or build the seeded ``untrained`` model.

Official files (spec §6.2) are ``torch.save`` dicts with a ``state_dict`` (keys possibly prefixed
``module.`` by DDP) written with CompressAI 1.2.0, whose EntropyBottleneck parameters are named
``_matrix{i}``, ``_bias{i}``, ``_factor{i}``; CompressAI 1.2.8 (installed) names them
``matrices.{i}``, ``biases.{i}``, ``factors.{i}``. Both spellings are accepted. A state dict that
does not fit raises :class:`CheckpointError` naming the first missing, unexpected and mis-shaped
keys; the older 2023-09 weights (``...Old`` classes, spec §6.4) are recognised and named.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import torch
from compressai.models.utils import remap_old_keys
from torch import Tensor

from bench.errors import CheckpointError
from bench.models.entropy import restore_likelihood_bounds
from bench.models.mlicpp.model import MLICPlusPlus
from bench.models.weights import load_weights_file

#: keys that only the 2023-09 architecture has (4-conv LRP, RB(320→192) with skip in g_s)
OLD_LAYOUT_KEYS = ("lrp_anchor.0.lrp_transform.6.weight", "g_s.synthesis_transform.0.skip.weight")

#: entropy-coder tables: their sizes come from the checkpoint (row counts must agree)
CODER_TABLES = {
    "entropy_bottleneck": ("_quantized_cdf", "_offset", "_cdf_length"),
    "gaussian_conditional": ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"),
}
RESIZABLE = {f"{m}.{n}" for m, names in CODER_TABLES.items() for n in names}

#: output gains of the untrained model (see :func:`untrained_model`)
UNTRAINED_GAINS = {"g_a": 6.0, "h_a": 100.0, "entropy_parameters": 6.0}
UNTRAINED_SEED = 1



def _listing(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" … ({len(keys)} in all)" if len(keys) > limit else "")


def normalize_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip a DDP ``module.`` prefix and rename CompressAI 1.2.0 EntropyBottleneck keys."""
    sd = dict(state_dict)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return dict(remap_old_keys("entropy_bottleneck", sd))


def check_state_dict(model: MLICPlusPlus, state_dict: Mapping[str, Tensor]) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` (normalised) fits ``model`` exactly."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, Tensor)}
    not_tensors = sorted(k for k, v in state_dict.items() if not isinstance(v, Tensor))
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    misshaped = [
        f"{k} {list(given[k])} (expected {list(expected[k])})"
        for k in sorted(set(expected) & set(given)) if k not in RESIZABLE and given[k] != expected[k]
    ]
    misshaped += _table_problems(given, channels=model.N)
    if not (missing or unexpected or misshaped or not_tensors):
        return
    problems = []
    if any(k in given for k in OLD_LAYOUT_KEYS):
        problems.append(
            "this looks like an older MLIC++ checkpoint (2023-09 weights: 4-conv LRP / "
            "synthesis block 0 with a skip conv, the '...Old' classes), which this 2024-04 "
            "architecture cannot load; use the 2024-04 (fixed) weights"
        )
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {_listing(misshaped)}")
    if not_tensors:
        problems.append(f"entries that are not tensors: {_listing(not_tensors)}")
    raise CheckpointError(
        f"state dict does not fit MLIC++ ({len(expected)} entries expected, {len(given)} given): "
        + "; ".join(problems)
    )


def _table_problems(shapes: Mapping[str, tuple[int, ...]], channels: int) -> list[str]:
    """Coder tables: one CDF row (and one offset, length, scale) per EB channel / GC scale."""
    problems = []
    for module, names in CODER_TABLES.items():
        present = {n: shapes[f"{module}.{n}"] for n in names if f"{module}.{n}" in shapes}
        rows = channels if module == "entropy_bottleneck" else present.get("_offset", (None,))[0]
        for name, shape in present.items():
            if shape == (0,):  # not filled yet (update() never ran before saving)
                continue
            want_dims = 2 if name == "_quantized_cdf" else 1
            if len(shape) != want_dims or (shape[0] != rows and shape[0] != 0):
                problems.append(f"{module}.{name} {list(shape)} (expected {want_dims} dims, {rows} rows)")
    return problems


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a ``.pth.tar`` (dict with ``state_dict``) or a bare state dict, on CPU, running no code
    from the file (:func:`bench.models.weights.load_weights_file`)."""
    obj = load_weights_file(path, "MLIC++ checkpoint")
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> MLICPlusPlus:
    """Build MLIC++ and load ``path`` strictly (see module docstring), in eval mode on ``device``.

    The entropy-coder tables come from the file: ``update()`` is *not* called (it would recompute
    the z tables from the learned density and change the z stream), unless the file has none.
    """
    model = MLICPlusPlus()
    # never hold two copies of the 334 MB of weights: replace the random ones by storage-free
    # views of the right shape, then adopt the loaded tensors (CompressAI's GDN cannot be built
    # on the meta device)
    for tensor in model.parameters():
        tensor.data = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)
    state_dict = normalize_state_dict(load_state_dict_file(path))
    try:
        check_state_dict(model, state_dict)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    model.load_state_dict(state_dict, strict=True, assign=True)
    del state_dict
    restore_likelihood_bounds(model)  # a float16 file holds them as 0
    model.configure(reference=model.reference, portable=model.portable, winograd=model.winograd)  # re-lay the adopted weights (channels-last)
    if model.gaussian_conditional._offset.numel() == 0 or model.entropy_bottleneck._offset.numel() == 0:
        warnings.warn(f"{path}: no entropy-coder tables in the checkpoint; computing them with update()")
        model.update(force=True)
    return model.eval().to(device)


def untrained_model(seed: int = UNTRAINED_SEED, gains: Mapping[str, float] | None = None) -> MLICPlusPlus:
    """Seeded random MLIC++ with realistic symbol statistics — valid for complexity only.

    With PyTorch's default init every σ sits at the 0.11 floor and almost every symbol is zero,
    which makes entropy coding unrealistically cheap. The last layers of g_a, h_a and every
    entropy-parameter network are therefore scaled (weights and bias) by ``gains``: with the
    defaults (6, 100, 6) about half of the y symbols are non-zero on Kodak and a few percent
    are escape-coded; (30, 100, 30), the setting of the spec's equivalence check, gives ~90 %
    non-zero symbols and ~17 bpp. CDF tables come from update().
    """
    gains = {**UNTRAINED_GAINS, **(gains or {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLICPlusPlus()
    with torch.no_grad():
        layers = [(model.g_a.analysis_transform[6], gains["g_a"]), (model.h_a.reduction[8], gains["h_a"])]
        for net in (*model.entropy_parameters_anchor, *model.entropy_parameters_nonanchor):
            layers.append((net.fusion[6], gains["entropy_parameters"]))
        for conv, gain in layers:
            conv.weight.mul_(gain)
            conv.bias.mul_(gain)
    model.update(force=True)
    return model.eval()
