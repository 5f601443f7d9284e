"""MLIC++ (Jiang et al., arXiv 2307.15421), rebuilt from ``spec/mlicpp.md``.

Modules: :mod:`.layers` and :mod:`.transforms` (g_a, g_s, h_a, h_s), :mod:`.checkerboard`,
:mod:`.local_context`, :mod:`.global_context` (channel, linear intra/inter), :mod:`.parameters`
(entropy parameters, LRP), :mod:`.model` (recursion, forward, compress/decompress),
:mod:`.bitstream` (the container), :mod:`.checkpoint` (strict loading, untrained model) and
:mod:`.profile` (timing and memory scaling, ``python -m bench.models.mlicpp.profile``).
"""

from bench.models.mlicpp.checkpoint import CheckpointError, load_checkpoint, untrained_model
from bench.models.mlicpp.model import CompressResult, MLICPlusPlus, parameter_count, pinned_threads

__all__ = [
    "CheckpointError",
    "CompressResult",
    "MLICPlusPlus",
    "load_checkpoint",
    "parameter_count",
    "pinned_threads",
    "untrained_model",
]
