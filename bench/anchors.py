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

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import AnchorError, BenchError, describe
from bench.analysis.bd import Curve

SCHEMA = "lic-bench/anchor/1"

#: Point columns an anchor may carry (names match the results store's columns).
POINT_COLUMNS: dict[str, str] = {
    "bpp": "bits per pixel: compressed bytes x 8 / pixels, mean over the images",
    "psnr_rgb": "PSNR over R'G'B' (dB), mean of per-image values",
    "psnr_y": "PSNR on luma Y' (dB)",
    "ms_ssim": "MS-SSIM on RGB, linear scale [0, 1]",
    "ms_ssim_db": "MS-SSIM on RGB in dB: -10*log10(1 - ms_ssim)",
    "ms_ssim_y": "MS-SSIM on luma Y', linear scale [0, 1]",
    "enc_time_s": "mean encoding time per image (s), on the source's hardware",
    "dec_time_s": "mean decoding time per image (s), on the source's hardware",
}
QUALITY_COLUMNS: tuple[str, ...] = ("psnr_rgb", "psnr_y", "ms_ssim", "ms_ssim_db", "ms_ssim_y")
CODEC_KINDS = ("classical", "learned")
SOURCE_KINDS = ("repository", "paper", "file", "measured")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.+_-]*(/[a-z0-9][a-z0-9.+_-]*)+$")



# --------------------------------------------------------------------------------------------
# The anchor record
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """One published curve with its provenance. See ``anchors/README.md`` for each field."""

    name: str
    label: str
    dataset: str
    codec: dict[str, Any]
    provenance: dict[str, Any]
    conditions: dict[str, Any]
    points: dict[str, tuple[float, ...]]
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: Optional per-image points (image id -> columns like ``points``), e.g. of a measured anchor,
    #: so per-image BD values and their spread can be computed.
    per_image: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def qualities(self) -> list[str]:
        """Quality columns available, including ones derivable (MS-SSIM <-> MS-SSIM dB)."""
        have = [q for q in QUALITY_COLUMNS if q in self.points]
        if "ms_ssim" in self.points and "ms_ssim_db" not in have:
            have.append("ms_ssim_db")
        if "ms_ssim_db" in self.points and "ms_ssim" not in have:
            have.append("ms_ssim")
        return have

    def values(self, column: str) -> np.ndarray:
        """One point column; ``ms_ssim_db``/``ms_ssim`` are derived from each other if needed."""
        if column in self.points:
            return np.asarray(self.points[column], dtype=float)
        if column == "ms_ssim_db" and "ms_ssim" in self.points:
            return -10.0 * np.log10(1.0 - np.asarray(self.points["ms_ssim"], dtype=float))
        if column == "ms_ssim" and "ms_ssim_db" in self.points:
            return 1.0 - 10.0 ** (-np.asarray(self.points["ms_ssim_db"], dtype=float) / 10.0)
        raise AnchorError(f"anchor {self.name!r} has no {column!r}; it has {sorted(self.points)}")

    def source(self) -> str:
        """Where the numbers come from, in a few words: ``repository@commit`` (7 hex digits) or the paper."""
        prov = self.provenance or {}
        if prov.get("repository"):
            repo = str(prov["repository"]).rstrip("/").split("/")[-1]
            commit = str(prov.get("commit", ""))[:7]
            return f"{repo}@{commit}" if commit else repo
        if prov.get("paper"):
            return str(prov["paper"]).split(" ")[0]
        return ""

    def curve(self, quality: str = "psnr_rgb") -> Curve:
        """The (bpp, quality) curve for BD computations."""
        return Curve(self.values("bpp"), self.values(quality), self.name)

    def image_curve(self, image: str, quality: str = "psnr_rgb") -> Curve:
        """The (bpp, quality) curve of one image of ``per_image``."""
        if image not in self.per_image:
            raise AnchorError(f"anchor {self.name!r} has no per-image points for {image!r}")
        cols = self.per_image[image]
        if quality not in cols:
            raise AnchorError(f"anchor {self.name!r}: image {image!r} has no {quality!r}; it has {sorted(cols)}")
        return Curve(cols["bpp"], cols[quality], f"{self.name}:{image}")

    def frame(self) -> Any:
        """Points as a pandas DataFrame (one row per rate point)."""
        import pandas as pd

        return pd.DataFrame({k: list(v) for k, v in self.points.items()})

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "name": self.name,
            "label": self.label,
            "dataset": self.dataset,
            "codec": self.codec,
            "provenance": self.provenance,
            "conditions": self.conditions,
            "points": {k: list(v) for k, v in self.points.items()},
        }
        if self.notes:
            d["notes"] = self.notes
        if self.extra:
            d["extra"] = self.extra
        if self.per_image:
            d["per_image"] = {img: {k: list(v) for k, v in cols.items()} for img, cols in self.per_image.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "") -> Anchor:
        where = where or str(d.get("name", "anchor"))
        if d.get("schema") != SCHEMA:
            raise AnchorError(f"{where}: schema is {d.get('schema')!r}, expected {SCHEMA!r}")
        known = {"schema", "name", "label", "dataset", "codec", "provenance", "conditions", "points", "notes", "extra",
                 "per_image"}
        unknown = set(d) - known
        if unknown:
            raise AnchorError(f"{where}: unknown top-level field(s) {sorted(unknown)}")
        missing = {"name", "label", "dataset", "codec", "provenance", "conditions", "points"} - set(d)
        if missing:
            raise AnchorError(f"{where}: missing field(s) {sorted(missing)}")
        points, per_image = d["points"], d.get("per_image", {})
        if not isinstance(points, dict):
            raise AnchorError(f"{where}: 'points' must be an object of columns")
        if not isinstance(per_image, dict) or not all(isinstance(c, dict) for c in per_image.values()):
            raise AnchorError(f"{where}: 'per_image' must map image ids to objects of columns")
        try:
            return cls(
                name=d["name"], label=d["label"], dataset=d["dataset"], codec=d["codec"],
                provenance=d["provenance"], conditions=d["conditions"],
                points={k: tuple(v) for k, v in points.items()}, notes=d.get("notes", ""),
                extra=d.get("extra", {}),
                per_image={img: {k: tuple(v) for k, v in cols.items()} for img, cols in per_image.items()},
            )
        except AnchorError as exc:
            raise AnchorError(f"{where}: {exc}") from None


def _validate(a: Anchor) -> None:
    if not _NAME_RE.match(a.name):
        raise AnchorError(f"bad anchor name {a.name!r}: use '<dataset>/<curve>', lower case, e.g. 'kodak/vtm'")
    if not a.name.startswith(a.dataset + "/"):
        raise AnchorError(f"anchor name {a.name!r} must start with its dataset {a.dataset!r} + '/'")
    for key in ("name", "version", "kind"):
        if not a.codec.get(key):
            raise AnchorError(f"anchor {a.name!r}: codec.{key} is required (use 'unrecorded' for an unknown version)")
    if a.codec["kind"] not in CODEC_KINDS:
        raise AnchorError(f"anchor {a.name!r}: codec.kind must be one of {CODEC_KINDS}")
    src = a.provenance.get("source")
    if src not in SOURCE_KINDS:
        raise AnchorError(f"anchor {a.name!r}: provenance.source must be one of {SOURCE_KINDS}")
    need = {"repository": ("repository", "commit", "files"), "paper": ("paper", "table"), "file": ("files",),
            "measured": ("runs", "store")}[src]
    for key in need:
        if not a.provenance.get(key):
            raise AnchorError(f"anchor {a.name!r}: provenance.{key} is required for a {src} source")
    _validate_points(a.name, a.points, "")
    n = len(a.points["bpp"])
    for image, cols in a.per_image.items():
        _validate_points(a.name, cols, f"per_image[{image!r}].")
        if len(cols["bpp"]) != n:
            raise AnchorError(f"anchor {a.name!r}: per_image[{image!r}] has {len(cols['bpp'])} points, 'points' has {n}")


def _validate_points(name: str, points: dict[str, tuple[float, ...]], where: str) -> None:
    unknown = set(points) - set(POINT_COLUMNS)
    if unknown:
        raise AnchorError(f"anchor {name!r}: unknown {where}point column(s) {sorted(unknown)}; known: {sorted(POINT_COLUMNS)}")
    if "bpp" not in points or not any(q in points for q in QUALITY_COLUMNS):
        raise AnchorError(f"anchor {name!r}: {where}points need 'bpp' and at least one quality column")
    n = len(points["bpp"])
    for col, values in points.items():
        if len(values) != n:
            raise AnchorError(f"anchor {name!r}: {where}column {col!r} has {len(values)} values, 'bpp' has {n}")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise AnchorError(f"anchor {name!r}: {where}{col}[{i}] = {v!r} is not a finite number")
    if any(v <= 0 for v in points["bpp"]):
        raise AnchorError(f"anchor {name!r}: {where}bpp values must be > 0")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def anchors_dir() -> Path:
    """``$BENCH_ANCHORS_DIR`` if set, else the project's ``anchors/`` folder."""
    env = os.environ.get("BENCH_ANCHORS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "anchors"


def list_anchors(dataset: str | None = None, root: Path | str | None = None) -> list[str]:
    """Names of all anchors (optionally of one dataset), sorted."""
    base = Path(root) if root is not None else anchors_dir()
    if not base.is_dir():
        raise AnchorError(f"anchors folder {base} does not exist (set BENCH_ANCHORS_DIR?)")
    names = sorted(p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.json"))
    return [n for n in names if dataset is None or n.startswith(dataset + "/")]


def load_anchor(name: str, root: Path | str | None = None) -> Anchor:
    """The anchor called ``name`` (e.g. ``"kodak/vtm"``); unknown names get close suggestions."""
    base = Path(root) if root is not None else anchors_dir()
    if not _NAME_RE.match(name):
        raise AnchorError(f"bad anchor name {name!r}: use '<dataset>/<curve>', e.g. 'kodak/vtm'")
    path = base / f"{name}.json"
    if not path.is_file():
        close = difflib.get_close_matches(name, list_anchors(root=base), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see list_anchors()"
        raise AnchorError(f"no anchor named {name!r} in {base}{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AnchorError(f"{path}: not valid JSON ({exc})") from None
    anchor = Anchor.from_dict(data, where=str(path))
    if anchor.name != name:
        raise AnchorError(f"{path}: file holds anchor {anchor.name!r}, expected {name!r}")
    return anchor


def measured_anchors(root: Path | str | None = None) -> list[str]:
    """Names of the anchors measured by this suite (``provenance.source == "measured"``): they are
    not imported from the shared sources, so ``import`` keeps them and its equality check skips them."""
    base = Path(root) if root is not None else anchors_dir()
    return [n for n in list_anchors(root=base) if load_anchor(n, root=base).provenance.get("source") == "measured"]


def save_anchor(anchor: Anchor, root: Path | str) -> Path:
    """Write ``anchor`` to ``root/<name>.json`` (compact number lists, one column per line)."""
    path = Path(root) / f"{anchor.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(anchor.to_dict(), indent=1, ensure_ascii=False)
    # Put each list of numbers on one line: the files stay small and diff well per column.
    text = re.sub(r"\[\s+([-0-9.eE+,\s]+?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    path.write_text(text + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Importers
# --------------------------------------------------------------------------------------------

_COMPRESSAI_COLUMNS = {
    "bpp": "bpp",
    "psnr-rgb": "psnr_rgb",
    "ms-ssim-rgb": "ms_ssim",
    "ms-ssim-db-rgb": "ms_ssim_db",
    "encoding_time": "enc_time_s",
    "decoding_time": "dec_time_s",
}
_COMPRESSAI_HARDWARE = "Nvidia Quadro RTX 8000 GPU, Intel Xeon Gold 5218R CPU (per CompressAI results/Readme.md)"
_COMPRESSAI_VERSION_NOTES = {  # from the shared folder's PROVENANCE.md
    "vtm": "not recorded in the results; likely VTM 9.1 with encoder_intra_vtm.cfg (CompressAI's benchmark "
           "script switched to it the day before these curves were added) — an inference, unconfirmed",
    "hm": "not recorded in the results; likely HM-16.20+SCM-8.8 (same inference as for VTM), unconfirmed",
}
_COMPRESSAI_CLASSICAL = {
    "vtm": ("VTM", "vtm"),
    "hm": ("HM", "hm"),
    "av1": ("AV1", "av1"),
    "bpg_444_x265_ycbcr": ("BPG (4:4:4, x265, YCbCr)", "bpg444"),
    "jpeg": ("JPEG", "jpeg"),
    "jpeg2000": ("JPEG 2000", "jpeg2000"),
    "webp": ("WebP", "webp"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.+]+", "-", text.lower()).strip("-")


def _file_record(path: Path, repo_path: str | None, manifest: dict[str, dict[str, str]] | None) -> dict[str, str]:
    """Provenance of one source file; checks its sha256 against the manifest when given one."""
    record = {"path": repo_path or path.name, "sha256": _sha256(path)}
    if manifest is not None:
        entry = manifest.get(record["path"])
        if entry is None:
            raise AnchorError(f"{path}: {record['path']!r} is not in the source MANIFEST")
        if entry["sha256"] != record["sha256"]:
            raise AnchorError(
                f"{path}: sha256 {record['sha256']} differs from the MANIFEST's {entry['sha256']} — "
                "the file changed since it was recorded"
            )
        record.update({k: v for k, v in entry.items() if k != "sha256" and v})
    return record


def _base_provenance(provenance: dict[str, Any] | None, fmt: str) -> dict[str, Any]:
    """``repository`` source when a repository is given, else ``file`` (a local file and its hash)."""
    given = dict(provenance or {})
    prov: dict[str, Any] = {"source": "repository" if given.get("repository") else "file", "format": fmt}
    prov.update(given)
    return prov


def _version_from_description(description: str) -> str:
    m = re.search(r"(Pillow|ffmpeg|BPG) version b?'?([0-9][0-9A-Za-z.+~-]*)", description)
    return f"{m.group(1)} {m.group(2)}" if m else "unrecorded"


def _compressai_codec(
    path: Path, data: dict[str, Any], meta: dict[str, Any], points: dict[str, tuple[float, ...]]
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """Slug, label, codec record and extra conditions of one CompressAI results file."""
    stem, description = path.stem, str(data.get("description", ""))
    eight_bit = "8bit-decoded" in path.parts
    if stem in _COMPRESSAI_CLASSICAL:
        label, slug = _COMPRESSAI_CLASSICAL[stem]
        codec = {"name": label, "version": _version_from_description(description), "kind": "classical"}
        if stem in _COMPRESSAI_VERSION_NOTES:
            codec["version_note"] = _COMPRESSAI_VERSION_NOTES[stem]
        reference = ("PSNR against the colour-converted input (conversion loss excluded)"
                     if stem in ("vtm", "hm") else "decoded 8-bit image vs original")
        return slug, label, codec, {"metric_reference": reference}
    m = re.match(r"^compressai-(.+?)_(mse|ms-ssim)(?:_ans)?_(cpu|cuda)$", stem)
    if m:
        model, opt, device = m.groups()
        slug = f"{model}-{opt}" + ("-8bit" if eight_bit else "" if device == "cuda" else "-cpu")
        label = f"{model} ({opt}, CompressAI{', 8-bit decoded' if eight_bit else ''}{', CPU' if device == 'cpu' else ''})"
        codec = {"name": model, "version": "CompressAI (library version unrecorded)", "kind": "learned",
                 "optimized_for": opt, "implementation": "CompressAI"}
        extra = {"device": device, "entropy_coder": "ans",
                 "reconstruction": "rounded to 8 bit" if eight_bit else "floating point (not rounded to 8 bit)"}
        if "enc_time_s" in points:
            extra["timing_hardware"] = _COMPRESSAI_HARDWARE
        return slug, label, codec, extra
    if stem.startswith("paper-"):
        opt = str(meta.get("opt_metric") or ("ms-ssim" if stem.endswith("ms-ssim") else "mse")).removesuffix("-rgb")
        name = str(data.get("name", stem)).replace("official ", "")
        codec = {"name": name, "version": "authors' results", "kind": "learned", "optimized_for": opt}
        extra = {"train_dataset": meta["train_dataset"]} if meta.get("train_dataset") else {}
        return _slug(stem), f"{name} (paper, {opt})", codec, extra
    if stem.endswith("-vbr-ans"):
        model = stem.removesuffix("-vbr-ans")
        codec = {"name": f"{model}-vbr", "version": "CompressAI (library version unrecorded)", "kind": "learned",
                 "optimized_for": "mse", "implementation": "CompressAI"}
        return f"{model}-vbr", f"{model} variable-rate (CompressAI, mse)", codec, {"entropy_coder": "ans"}
    # any other results file, e.g. one written by compressai.utils.eval_model for your own model
    label = str(data.get("name", stem))
    return _slug(stem), label, {"name": label, "version": "unrecorded", "kind": "learned"}, {}


def import_compressai_json(
    path: str | Path,
    *,
    dataset: str | None = None,
    name: str | None = None,
    provenance: dict[str, Any] | None = None,
    manifest: dict[str, dict[str, str]] | None = None,
    repo_path: str | None = None,
) -> Anchor:
    """An :class:`Anchor` from a CompressAI results JSON (``name``, ``description``, ``results``).

    ``results`` holds equal-length lists (``bpp``, ``psnr-rgb``, ``ms-ssim-rgb``,
    ``ms-ssim-db-rgb``, ``encoding_time``, ``decoding_time``); an unknown key is an error rather
    than silently dropped. The dataset defaults to the parent folder's name (``kodak``,
    ``clic2020-mobile``, ...), the anchor name to ``<dataset>/<slug of the file name>``.
    ``provenance`` (repository, commit, ...) is merged into the record; ``manifest`` maps
    repository paths to hashes, checked against the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AnchorError(f"{path}: cannot read CompressAI JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise AnchorError(f"{path}: not a CompressAI results file (no 'results' object)")
    results = data["results"]
    unknown = set(results) - set(_COMPRESSAI_COLUMNS)
    if unknown:
        raise AnchorError(f"{path}: unknown result key(s) {sorted(unknown)}; known: {sorted(_COMPRESSAI_COLUMNS)}")
    points = {_COMPRESSAI_COLUMNS[k]: tuple(results[k]) for k in _COMPRESSAI_COLUMNS if k in results}

    meta = data.get("meta") or {}
    dataset = dataset or meta.get("dataset") or path.parent.name
    slug, label, codec, extra = _compressai_codec(path, data, meta, points)
    conditions: dict[str, Any] = {
        "averaging": "mean over the dataset's images at each rate point (per-image metrics averaged)",
        "metric_space": "RGB",
        **extra,
    }
    prov = _base_provenance(provenance, "CompressAI results JSON")
    prov["files"] = [_file_record(path, repo_path, manifest)]
    if meta.get("url"):
        prov["paper"] = meta["url"]
    notes = f"source name {data.get('name')!r}, description {data.get('description', '')!r}"
    return Anchor(
        name=name or f"{dataset}/{slug}", label=label, dataset=dataset, codec=codec, provenance=prov,
        conditions=conditions, points=points, notes=notes,
    )


_TFC_METRICS = {
    ("PSNR", "R'G'B'"): "psnr_rgb",
    ("PSNR", "Y'"): "psnr_y",
    ("MS-SSIM", "R'G'B'"): "ms_ssim",
    ("MS-SSIM", "Y'"): "ms_ssim_y",
}
_TFC_CLASSICAL = re.compile(r"^(JPEG|JPEG 2000|WebP|BPG)\b")


def import_tfc_text(
    path: str | Path,
    *,
    name: str | None = None,
    provenance: dict[str, Any] | None = None,
    manifest: dict[str, dict[str, str]] | None = None,
    repo_path: str | None = None,
) -> Anchor:
    """An :class:`Anchor` from one tensorflow-compression results text file.

    Format: ``#`` comment lines, the first ``Aggregate rate-distortion data for "<codec>" on
    <dataset>.``, one saying ``The second column contains <PSNR|MS-SSIM>/sRGB/<R'G'B'|Y'>
    values.``, free notes; then ``bpp, value`` lines. MS-SSIM stays on the linear scale.
    The anchor name defaults to ``<dataset>/tfc-<file stem>``.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AnchorError(f"{path}: cannot read ({exc})") from None
    comments = [ln[1:].strip() for ln in lines if ln.startswith("#")]
    header = " ".join(comments)
    m_title = re.search(r'Aggregate rate-distortion data for "([^"]+)" on ([A-Za-z0-9_-]+)\.', header)
    m_metric = re.search(r"The second column contains ([A-Z-]+)/sRGB/(R'G'B'|Y') values", header)
    if not m_title or not m_metric:
        raise AnchorError(f"{path}: not a tensorflow-compression results file (missing the title or metric line)")
    title, dataset = m_title.group(1), m_title.group(2).lower()
    metric = _TFC_METRICS.get((m_metric.group(1), m_metric.group(2)))
    if metric is None:
        raise AnchorError(f"{path}: unknown metric {m_metric.group(1)}/{m_metric.group(2)}")
    bpp, values = [], []
    for lineno, ln in enumerate(lines, 1):
        if not ln.strip() or ln.startswith("#"):
            continue
        parts = [p.strip() for p in ln.split(",")]
        try:
            if len(parts) != 2:
                raise ValueError
            bpp.append(float(parts[0]))
            values.append(float(parts[1]))
        except ValueError:
            raise AnchorError(f"{path}:{lineno}: expected 'bpp, value', got {ln!r}") from None
    if not bpp:
        raise AnchorError(f"{path}: no data lines")
    notes_text = " ".join(c for c in comments if c and not c.startswith(("Aggregate rate-distortion", "The first column",
                                                                            "The second column", "If you have questions",
                                                                            "David Minnen (")))
    opt = None
    low = (path.stem + " " + notes_text).lower()
    if "opt-msssim" in low or "optimized for rgb ms-ssim" in low:
        opt = "ms-ssim"
    elif "opt-mse" in low or "optimized for rgb mse" in low:
        opt = "mse"
    kind = "classical" if _TFC_CLASSICAL.match(title) else "learned"
    codec: dict[str, Any] = {"name": title, "version": "unrecorded", "kind": kind}
    if opt:
        codec["optimized_for"] = opt
    m_avg = re.search(r"averaging over a constant (QP|lambda) value", notes_text)
    conditions = {
        "averaging": f"mean over the dataset's images at a constant {m_avg.group(1)} value" if m_avg else "unrecorded",
        "metric_space": "sRGB",
    }
    prov = _base_provenance(provenance, "tensorflow-compression results text")
    prov["files"] = [_file_record(path, repo_path, manifest)]
    return Anchor(
        name=name or f"{dataset}/tfc-{_slug(path.stem)}", label=f"{title} (tensorflow-compression)",
        dataset=dataset, codec=codec, provenance=prov, conditions=conditions,
        points={"bpp": tuple(bpp), metric: tuple(values)}, notes=notes_text,
    )


def merge_anchors(anchors: Sequence[Anchor]) -> Anchor:
    """One anchor holding the quality columns of several that share name, dataset and bpp points.

    tensorflow-compression publishes one file per metric for the same rate points; this joins
    them. Different bpp lists are an error (they would be different curves).
    """
    if not anchors:
        raise AnchorError("merge_anchors: nothing to merge")
    first = anchors[0]
    points = dict(first.points)
    files = list(first.provenance.get("files", []))
    notes = [first.notes] if first.notes else []
    for a in anchors[1:]:
        if (a.name, a.dataset) != (first.name, first.dataset):
            raise AnchorError(f"merge_anchors: {a.name!r} is not {first.name!r}")
        if a.points["bpp"] != first.points["bpp"]:
            raise AnchorError(f"merge_anchors: {a.name!r} files list different bpp points; keep them apart")
        clash = (set(a.points) & set(points)) - {"bpp"}
        if clash:
            raise AnchorError(f"merge_anchors: {a.name!r} repeats column(s) {sorted(clash)}")
        points.update(a.points)
        files += a.provenance.get("files", [])
        if a.notes and a.notes not in notes:
            notes.append(a.notes)
    codec = dict(first.codec)
    for a in anchors[1:]:
        for k, v in a.codec.items():
            codec.setdefault(k, v)
    prov = {**first.provenance, "files": files}
    return Anchor(first.name, first.label, first.dataset, codec, prov, first.conditions,
                  {k: points[k] for k in POINT_COLUMNS if k in points}, " / ".join(notes), first.extra)


_SIMPLE_METRICS = {"psnr-rgb": "psnr_rgb", "ms-ssim-rgb": "ms_ssim", "ms-ssim-db-rgb": "ms_ssim_db"}


def import_curve_json(
    path: str | Path,
    *,
    name: str,
    codec: dict[str, Any],
    conditions: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Anchor:
    """An :class:`Anchor` from a single-curve JSON (``name, dataset, metric, bpp, <metric>, source``).

    This is the format of the shared folder's MLIC and VTM-17.0 curves; its ``source`` object
    (repository, commit, path) becomes the provenance.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AnchorError(f"{path}: cannot read curve JSON ({exc})") from None
    for key in ("dataset", "metric", "bpp", "source"):
        if key not in data:
            raise AnchorError(f"{path}: missing {key!r}")
    metric = _SIMPLE_METRICS.get(data["metric"])
    if metric is None or data["metric"] not in data:
        raise AnchorError(f"{path}: metric {data['metric']!r} unknown or without values")
    src = dict(data["source"])
    repository = src.pop("repository", None)
    commit = src.pop("commit", None)
    file_rec = {"path": src.pop("path", ""), "sha256_of_shared_copy": _sha256(path)}
    if "last_commit_touching" in src:
        file_rec["last_commit"] = src.pop("last_commit_touching")
    prov: dict[str, Any] = {"source": "repository", "repository": repository, "commit": commit, "files": [file_rec]}
    if src:
        prov["note"] = " ".join(str(v) for v in src.values())
    prov.update(provenance or {})
    return Anchor(
        name=name, label=str(data.get("name", name)), dataset=data["dataset"], codec=codec, provenance=prov,
        conditions=dict(conditions or {}), points={"bpp": tuple(data["bpp"]), metric: tuple(data[data["metric"]])},
        notes=str(data.get("notes", "")),
    )


# --------------------------------------------------------------------------------------------
# Regenerating anchors/ from the shared source folder
# --------------------------------------------------------------------------------------------

#: Source repositories of the shared anchors folder (must agree with its PROVENANCE.md).
SOURCES: dict[str, dict[str, str]] = {
    "compressai": {"repository": "github.com/InterDigitalInc/CompressAI",
                   "commit": "869a9f5d4126d015b7de8f203fe60ee9e1608193", "licence": "BSD 3-Clause Clear",
                   "repo_prefix": "results/image/"},
    "tensorflow-compression": {"repository": "github.com/tensorflow/compression",
                               "commit": "dda8cb4c4364e657d13491227e886ff8014f7243", "licence": "Apache-2.0",
                               "repo_prefix": "results/image_compression/"},
    "mlic": {"repository": "github.com/JiangWeibeta/MLIC", "commit": "4aa9d2a512eb9db382172058e6c278fb0d376e17",
             "licence": "Apache-2.0"},
    "vtm17-clic": {"repository": "github.com/google-deepmind/c3_neural_compression",
                   "commit": "e63e7519641db3d431cff623127fb2dcb825069f", "licence": "Apache-2.0"},
}
_MLIC_MODELS = {
    "mlic": ("MLIC", "mlic", "https://arxiv.org/abs/2211.07273 (ACM MM 2023)"),
    "mlicplus": ("MLIC+", "mlicp", "https://arxiv.org/abs/2211.07273 (ACM MM 2023)"),
    "mlicplusplus": ("MLIC++", "mlicpp", "https://arxiv.org/abs/2307.15421 (ICML 2023 NCW workshop)"),
}


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """A MANIFEST.tsv (path_in_repo, git_blob, last commit, date, sha256) keyed by repository path."""
    rows = [ln.split("\t") for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    header, out = rows[0], {}
    if header[0] != "path_in_repo" or header[-1] != "sha256":
        raise AnchorError(f"{path}: unexpected MANIFEST header {header}")
    for row in rows[1:]:
        rec = dict(zip(header, row))
        out[rec.pop("path_in_repo")] = {
            "git_blob": rec.get("git_blob", ""), "last_commit": rec.get("last_commit_touching", ""),
            "date": rec.get("last_commit_date") or rec.get("date", ""), "sha256": rec["sha256"],
        }
    return out


def _source_prov(key: str, source_dir: Path) -> dict[str, str]:
    info = SOURCES[key]
    provenance_md = (source_dir / "PROVENANCE.md").read_text(encoding="utf-8")
    if info["commit"] not in provenance_md:
        raise AnchorError(f"{source_dir}/PROVENANCE.md does not list commit {info['commit']} for {key}; update SOURCES")
    return {"repository": info["repository"], "commit": info["commit"], "licence": info["licence"]}


def build_anchors(source_dir: str | Path) -> list[Anchor]:
    """All anchors from the shared anchors folder (CompressAI, tensorflow-compression, MLIC, VTM-17.0)."""
    src = Path(source_dir)
    anchors: list[Anchor] = []

    cai = src / "compressai"
    manifest = read_manifest(cai / "MANIFEST.tsv")
    prov = _source_prov("compressai", src)
    for path in sorted(cai.rglob("*.json")):
        rel = path.relative_to(cai).as_posix()
        a = import_compressai_json(path, dataset=path.parent.name, provenance=prov, manifest=manifest,
                                   repo_path=SOURCES["compressai"]["repo_prefix"] + rel)
        anchors.append(a)

    tfc = src / "tensorflow-compression"
    manifest = read_manifest(tfc / "MANIFEST.tsv")
    prov = _source_prov("tensorflow-compression", src)
    groups: dict[str, list[Anchor]] = {}
    for path in sorted(tfc.rglob("*.txt")):
        rel = path.relative_to(tfc).as_posix()
        a = import_tfc_text(path, provenance=prov, manifest=manifest,
                            repo_path=SOURCES["tensorflow-compression"]["repo_prefix"] + rel)
        groups.setdefault(a.name, []).append(a)
    anchors += [merge_anchors(g) for g in groups.values()]

    prov = _source_prov("mlic", src)
    for path in sorted((src / "mlic").glob("*_mse.json")):
        dataset, model = path.stem.removesuffix("_mse").split("_", 1)
        label, slug, paper = _MLIC_MODELS[model]
        a = import_curve_json(
            path, name=f"{dataset}/{slug}",
            codec={"name": label, "version": "authors' published results", "kind": "learned", "optimized_for": "mse"},
            conditions={"metric_space": "RGB", "lambdas_mse": [0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483],
                        "lambda_mapping": "inferred (points in ascending rate)"},
            provenance={"licence": prov["licence"], "paper": paper},
        )
        anchors.append(a)

    prov = _source_prov("vtm17-clic", src)
    anchors.append(import_curve_json(
        src / "vtm17-clic" / "clic-pro-valid_vtm17.json", name="clic-pro-valid/vtm-17.0",
        codec={"name": "VTM", "version": "17.0", "kind": "classical", "configuration": "Intra (all-intra)"},
        conditions={"metric_space": "RGB",
                    "used_by": "MLIC README BD-rate table (anchor 'VTM-17.0 Intra')"},
        provenance={"licence": prov["licence"]},
    ))
    names = [a.name for a in anchors]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise AnchorError(f"two source files map to the same anchor name(s): {sorted(dup)}")
    return anchors


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.anchors import|list``."""
    parser = argparse.ArgumentParser(prog="python -m bench.anchors", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_imp = sub.add_parser("import", help="regenerate anchors/ from the shared anchors folder")
    p_imp.add_argument("--source", type=Path, default=None,
                       help="shared anchors folder (default: $BENCH_SHARED_DIR/anchors)")
    p_imp.add_argument("--out", type=Path, default=None, help="output folder (default: the project's anchors/)")
    p_list = sub.add_parser("list", help="list anchors: name, dataset, codec version, points, source")
    p_list.add_argument("--dataset", default=None)
    args = parser.parse_args(argv)

    try:
        return _list(args.dataset) if args.command == "list" else _import(args, parser)
    except (BenchError, OSError) as exc:  # a user error, or the disk: one line, no traceback
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2


def _list(dataset: str | None) -> int:
    """One line per anchor: name, dataset, codec and version, points, qualities, source (aligned columns)."""
    rows = [("name", "dataset", "codec", "version", "points", "qualities", "source")]
    for name in list_anchors(dataset):
        a = load_anchor(name)
        rows.append((a.name, a.dataset, str(a.codec.get("name", a.label)), str(a.codec.get("version", "unrecorded")),
                     str(len(a.points["bpp"])), ",".join(q for q in QUALITY_COLUMNS if q in a.points),
                     a.source() or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    source = args.source
    if source is None:
        shared = os.environ.get("BENCH_SHARED_DIR")
        if not shared:
            parser.error("pass --source or set BENCH_SHARED_DIR")
        source = Path(shared) / "anchors"
    out = args.out or anchors_dir()
    anchors = build_anchors(source)
    stale = set(list_anchors(root=out)) - {a.name for a in anchors} - set(measured_anchors(out)) if out.is_dir() else set()
    for a in anchors:
        save_anchor(a, out)
    for n in sorted(stale):
        (out / f"{n}.json").unlink()
    size = sum(p.stat().st_size for p in out.rglob("*.json"))
    print(f"wrote {len(anchors)} anchors to {out} ({size / 1024:.0f} KiB); removed {len(stale)} stale; "
          f"kept {len(measured_anchors(out))} measured", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
