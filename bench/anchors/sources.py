"""Regenerating ``anchors/`` from the shared anchors folder: its source repositories and MANIFESTs.

:func:`build_anchors` imports every curve of ``$BENCH_SHARED_DIR/anchors`` (CompressAI,
tensorflow-compression, MLIC, VTM-17.0) with the importers of :mod:`bench.anchors.importers`,
checking each file against its folder's MANIFEST.tsv and each source commit against PROVENANCE.md.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import AnchorError
from bench.anchors.importers import import_compressai_json, import_curve_json, import_tfc_text, merge_anchors
from bench.anchors.schema import Anchor

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
