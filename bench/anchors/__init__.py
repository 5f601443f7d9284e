"""Published rate-distortion curves ("anchors") as data, loadable by name.

Every anchor is one JSON file under ``anchors/`` in ONE schema (documented in
``anchors/README.md``): the curve points (``bpp`` plus quality columns named like the results
store's columns, e.g. ``psnr_rgb``, ``ms_ssim``), the codec and its version, the dataset, the
conditions, and where the numbers come from (repository + commit + file hashes, or paper + table).

    >>> from bench.anchors import list_anchors, load_anchor
    >>> load_anchor("kodak/vtm").curve("psnr_rgb")          # a bench.analysis.bd.Curve

Importers turn the published formats into anchors: :func:`import_compressai_json` (CompressAI's
``results/image/*/*.json``), :func:`import_tfc_text` (tensorflow-compression's
``results/image_compression/*/*/*.txt``) and :func:`import_curve_json` (the single-curve JSON of
the shared anchors folder). ``python -m bench.anchors import`` regenerates ``anchors/`` from
``$BENCH_SHARED_DIR/anchors`` (see :mod:`bench.anchors` ``main``).
"""

from bench.anchors.cli import main
from bench.anchors.importers import import_compressai_json, import_curve_json, import_tfc_text, merge_anchors
from bench.anchors.schema import CODEC_KINDS, POINT_COLUMNS, QUALITY_COLUMNS, SCHEMA, SOURCE_KINDS, Anchor
from bench.anchors.sources import SOURCES, build_anchors, read_manifest
from bench.anchors.store import anchors_dir, list_anchors, load_anchor, measured_anchors, save_anchor
from bench.errors import AnchorError

__all__ = [
    "CODEC_KINDS", "POINT_COLUMNS", "QUALITY_COLUMNS", "SCHEMA", "SOURCES", "SOURCE_KINDS", "Anchor", "AnchorError",
    "anchors_dir", "build_anchors", "import_compressai_json", "import_curve_json", "import_tfc_text",
    "list_anchors", "load_anchor", "main", "measured_anchors", "merge_anchors", "read_manifest", "save_anchor",
]
