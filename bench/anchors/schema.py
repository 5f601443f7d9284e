"""The anchor record: one schema (``lic-bench/anchor/1``), its point columns and its validation.

An :class:`Anchor` checks itself when made (name, codec, provenance, point columns: finite
numbers, equal lengths, positive bpp) and turns into and from the JSON of ``anchors/*.json``
(``to_dict``/``from_dict``); it yields :class:`bench.analysis.bd.Curve` objects for BD values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.errors import AnchorError
from bench.analysis.bd import Curve
from bench.metrics.registry import METRICS

SCHEMA = "lic-bench/anchor/1"

#: Point columns an anchor may carry (names match the results store's columns): these, and every
#: column of the metric registry (:data:`bench.metrics.registry.METRICS`), so that a measured
#: anchor can carry each metric the suite computes.
_BASE_COLUMNS: dict[str, str] = {
    "bpp": "bits per pixel: compressed bytes x 8 / pixels, mean over the images",
    "psnr_rgb": "PSNR over R'G'B' (dB), mean of per-image values",
    "psnr_y": "PSNR on luma Y' (dB)",
    "ms_ssim": "MS-SSIM on RGB, linear scale [0, 1]",
    "ms_ssim_db": "MS-SSIM on RGB in dB: -10*log10(1 - ms_ssim)",
    "ms_ssim_y": "MS-SSIM on luma Y', linear scale [0, 1]",
    "enc_time_s": "mean encoding time per image (s), on the source's hardware",
    "dec_time_s": "mean decoding time per image (s), on the source's hardware",
}
POINT_COLUMNS: dict[str, str] = {**_BASE_COLUMNS, **{c: f"{m.label} on {m.colour} (column {c}), mean of per-image values"
                                                     for m in METRICS for c in m.columns if c not in _BASE_COLUMNS}}
QUALITY_COLUMNS: tuple[str, ...] = tuple(c for m in METRICS for c in m.columns)
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
        """Where the numbers come from, in a few words: ``repository@commit`` (7 hex digits), the paper,
        or ``measured@commit`` for a curve this suite measured (the suite's commit)."""
        prov = self.provenance or {}
        if prov.get("source") == "measured":
            return f"measured@{str(prov.get('suite_git_commit') or '?')[:7]}"
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
        if not isinstance(d, dict):
            raise AnchorError(f"{where or 'anchor'}: expected a JSON object, found {type(d).__name__}")
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
        for key, kind, what in (("name", str, "a string"), ("label", str, "a string"), ("dataset", str, "a string"),
                                ("notes", str, "a string"), ("codec", dict, "an object"),
                                ("provenance", dict, "an object"), ("conditions", dict, "an object"),
                                ("extra", dict, "an object")):
            if key in d and not isinstance(d[key], kind):
                raise AnchorError(f"{where}: {key!r} must be {what}, found {type(d[key]).__name__}")
        points, per_image = d["points"], d.get("per_image", {})
        if not isinstance(points, dict) or not all(isinstance(v, list) for v in points.values()):
            raise AnchorError(f"{where}: 'points' must be an object of columns (lists of numbers)")
        if not isinstance(per_image, dict) or not all(
                isinstance(c, dict) and all(isinstance(v, list) for v in c.values()) for c in per_image.values()):
            raise AnchorError(f"{where}: 'per_image' must map image ids to objects of columns (lists of numbers)")
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
