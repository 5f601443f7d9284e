"""Importers of published rate-distortion results into :class:`~bench.anchors.schema.Anchor` records.

:func:`import_compressai_json` (CompressAI's ``results/image/*/*.json``), :func:`import_tfc_text`
(tensorflow-compression's ``results/image_compression/*/*/*.txt``), :func:`import_curve_json`
(the single-curve JSON of the shared anchors folder) and :func:`merge_anchors` (one anchor from
several files of the same curve). Each source file's sha256 goes into the provenance and, given a
MANIFEST, is checked against it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import AnchorError
from bench.anchors.schema import POINT_COLUMNS, Anchor
from bench.hashing import file_sha256

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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.+]+", "-", text.lower()).strip("-")


def _file_record(path: Path, repo_path: str | None, manifest: dict[str, dict[str, str]] | None) -> dict[str, str]:
    """Provenance of one source file; checks its sha256 against the manifest when given one."""
    record = {"path": repo_path or path.name, "sha256": file_sha256(path)}
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
    for key, values in results.items():
        if not isinstance(values, list):
            raise AnchorError(f"{path}: results.{key} must be a list (one value per rate point), "
                              f"found {type(values).__name__} {values!r:.40}")
    points = {_COMPRESSAI_COLUMNS[k]: tuple(results[k]) for k in _COMPRESSAI_COLUMNS if k in results}

    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise AnchorError(f"{path}: 'meta' must be an object, found {type(meta).__name__}")
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
    try:
        return Anchor(
            name=name or f"{dataset}/{slug}", label=label, dataset=dataset, codec=codec, provenance=prov,
            conditions=conditions, points=points, notes=notes,
        )
    except AnchorError as exc:
        raise AnchorError(f"{path}: {exc}") from None


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
    file_rec = {"path": src.pop("path", ""), "sha256_of_shared_copy": file_sha256(path)}
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
