"""MLIC++ (Jiang et al., arXiv 2307.15421), rebuilt from ``spec/mlicpp.md``.

Modules: :mod:`.layers` and :mod:`.transforms` (g_a, g_s, h_a, h_s), :mod:`.checkerboard`,
:mod:`.local_context`, :mod:`.global_context` (channel, linear intra/inter), :mod:`.parameters`
(entropy parameters, LRP), :mod:`.model` (recursion, forward, compress/decompress), :mod:`.coding`
(padding, rANS tables, fingerprint, thread pinning),
:mod:`.bitstream` (the container) and :mod:`.checkpoint` (strict loading, untrained model).
Timing and memory against size are measured by the suite itself (ladder cells, the report's
scaling fits, ``python -m bench.decode_scaling``), decode parts by ``bench.tools.decode_parts``.
"""

from bench.models.mlicpp.checkpoint import CheckpointError, load_checkpoint, untrained_model
from bench.models.mlicpp.coding import CompressResult, parameter_count, pinned_threads
from bench.models.mlicpp.model import MLICPlusPlus

__all__ = [
    "CheckpointError",
    "CompressResult",
    "MLICPlusPlus",
    "load_checkpoint",
    "parameter_count",
    "pinned_threads",
    "untrained_model",
]
