"""The measured VTM anchor: the suite's own ``vtm`` configuration on Kodak, as an anchor file.

``python -m bench.tools.vtm anchor`` runs the suite as a session (:mod:`bench.session`; what
``bench run --codecs vtm --dataset kodak --ladder none --threads 1 --warmup 0 --repeats 1 --timeout
3600`` runs) into a results folder, or takes a finished one (``--from-results``), and writes
``anchors/<dataset>/vtm-<VERSION>.json``: the mean curve over the images in ``points``, every
image's points in ``per_image``, and the provenance (run manifests, store sha256, encoder command,
cfg sha256, VTM build record). Every number comes from the store's rows; nothing is re-measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.anchors import Anchor, anchors_dir, save_anchor
from bench.errors import AnchorError
from bench.hashing import file_sha256
from bench.third_party import VTM
from bench.metrics.registry import columns as metric_columns

if TYPE_CHECKING:
    from bench.session import SessionSpec

#: what an anchor keeps of each cell: the rate, every metric column the run filled for all its cells,
#: the times
COLUMNS = ("bpp", *metric_columns(), "enc_time_s", "dec_time_s")
RUN_FIELDS = ("run_id", "started_at", "finished_at", "command", "git_commit", "host", "cpu", "threads", "jobs")
COLOUR = ("RGB -> Y'CbCr BT.709 full range with rounding (bench.colour), 10-bit, 4:4:4 planar; decoded back "
          "with rounding; metrics on the 8-bit RGB result against the original (conversion loss included)")


def suite_spec(results: Path, dataset: str, jobs: int, metrics: str = "jpeg-ai",
               cluster: str | None = None, timeout_s: float = 3600.0, retry_errors: bool = False) -> SessionSpec:
    """The suite run behind the anchor: ``vtm`` on ``dataset`` at native size, no ladder, into ``results``.

    One single-threaded encode per cell (VTM is deterministic; its time is not the point of an
    anchor) and an hour's time limit by default (``timeout_s``): a 768×512 image at QP 22 takes
    minutes on a loaded core, a high-resolution one may need more. ``retry_errors`` re-runs cells
    stored as errors (e.g. timed out) when the run resumes.
    ``metrics`` (default: the default set and the JPEG AI set) are computed per cell and every
    bitstream is kept beside the store (``bench score`` adds metrics later without re-encoding);
    ``cluster`` (e.g. ``local:2``) runs the cells on a Dask cluster instead of local workers."""
    from bench.plan import PlanSpec
    from bench.session import SessionSpec, command_line

    return SessionSpec(out=results, command=command_line("bench.tools.vtm", sys.argv[1:]), codecs="vtm",
                       plan=PlanSpec(dataset=dataset, ladder="none"), strict=True, jobs=jobs, threads=1,
                       warmup=0, repeats=1, timeout_s=timeout_s, metrics=metrics, keep_streams=True,
                       executor="dask" if cluster else "local", cluster=cluster, retry_errors=retry_errors)


def run_suite(results: Path, dataset: str, jobs: int, metrics: str = "jpeg-ai", cluster: str | None = None,
              timeout_s: float = 3600.0, retry_errors: bool = False) -> None:
    """Run :func:`suite_spec` as a session (resumes a finished or interrupted one)."""
    from bench.session import run_session

    from bench.session import say_on_stderr as say

    run_session(suite_spec(results, dataset, jobs, metrics, cluster, timeout_s, retry_errors), say)  # failed cells: anchor_from_results names them


def _encoder_command(params: dict[str, Any]) -> list[str]:
    """The adapter's exact encoder command line with placeholders for paths, size and QP."""
    from bench.codecs.base import CodecConfig
    from bench.codecs.vtm import VtmCodec

    codec = VtmCodec(CodecConfig("vtm", "vtm", dict(params)))
    cfg = str(params.get("cfg", "cfg/encoder_intra_vtm.cfg"))
    cmd = codec.encoder_command(Path("{input.yuv}"), Path("{stream.bin}"), 0, 0, 0)
    cmd[0], cmd[cmd.index(str(codec.cfg))] = "{vtm_dir}/bin/EncoderAppStatic", cfg if cfg.startswith("/") else "{vtm_dir}/" + cfg
    for flag, placeholder in (("-wdt", "{width}"), ("-hgt", "{height}"), ("-q", "{qp}")):
        cmd[cmd.index(flag) + 1] = placeholder
    return cmd


def _vtm_build(params: dict[str, Any], versions: list[str]) -> dict[str, Any]:
    """The VTM install the configuration finds now: its BUILD.json and full cfg sha256, checked
    against the version string the store recorded (so the install has not changed since the run)."""
    from bench.codecs.base import CodecConfig
    from bench.codecs.vtm import vtm_paths

    encoder, _, cfg = vtm_paths(CodecConfig("vtm", "vtm", dict(params)))
    record: dict[str, Any] = {"vtm_dir": str(encoder.parent.parent)}
    if cfg.is_file():
        record["cfg_sha256"] = file_sha256(cfg)
        if not all(f"sha256:{record['cfg_sha256'][:12]}" in v for v in versions):
            raise AnchorError(f"the cfg {cfg} (sha256 {record['cfg_sha256'][:12]}…) is not the one the store's rows "
                              f"record ({'; '.join(versions)}): point VTM_DIR at the VTM the run used")
    build = encoder.parent.parent / "BUILD.json"
    record["build"] = json.loads(build.read_text(encoding="utf-8")) if build.is_file() else \
        f"unrecorded: no BUILD.json beside {encoder} (not installed by python -m bench.tools.vtm build)"
    return record


def anchor_from_results(results: Path, dataset: str = "kodak", codec: str = "vtm") -> Anchor:
    """The measured anchor ``<dataset>/vtm-<VERSION>`` from the ``codec`` rows of a results store."""
    from bench.store import db_path, read_measurements, read_runs

    if not db_path(results).is_file():
        raise AnchorError(f"no results store at {db_path(results)}; run the suite first (drop --from-results)")
    rows = read_measurements(results, status=None)
    rows = rows[(rows["codec"] == codec) & (rows["dataset"] == dataset) & (rows["resolution"] == "native")]
    if rows.empty:
        raise AnchorError(f"{results}: no native-resolution {codec!r} rows on {dataset!r}")
    failed = rows[rows["status"] != "ok"]
    if len(failed):
        raise AnchorError(f"{results}: {len(failed)} {codec} cell(s) failed (e.g. {failed['image'].iloc[0]} "
                          f"{failed['rate_label'].iloc[0]}: {failed['error'].iloc[0]}); rerun with --retry-errors")
    runs = read_runs(results)
    runs = runs[runs["run_id"].isin(rows["run_id"].unique())].sort_values("run_id")
    manifest = json.loads(runs["manifest"].iloc[-1])
    params = manifest["codecs"][codec]["params"]
    order = [label for label, _ in manifest["codecs"][codec]["rates"] if label in set(rows["rate_label"])]
    images = sorted(rows["image"].unique())
    missing = [(i, r) for i in images for r in order if not ((rows["image"] == i) & (rows["rate_label"] == r)).any()]
    if missing:
        raise AnchorError(f"{results}: {len(missing)} (image, rate) cell(s) missing, e.g. {missing[:3]}; "
                          "finish the run (the same command resumes)")
    columns = [c for c in COLUMNS if c in rows and rows[c].notna().all()]
    grid = rows.set_index(["image", "rate_label"])
    per_image = {img: {c: tuple(float(grid.loc[(img, r), c]) for r in order) for c in columns} for img in images}
    points = {c: tuple(float(grid.xs(r, level="rate_label")[c].mean()) for r in order) for c in columns}
    versions = sorted(rows["codec_version"].astype(str).unique())
    commits = sorted({str(c) for c in runs["git_commit"]})
    provenance: dict[str, Any] = {
        "source": "measured", "format": "lic-bench results store (bench.tools.vtm_anchor)",
        "store": {"path": str(db_path(results)), "sha256": file_sha256(db_path(results)), "rows": len(rows)},
        "runs": [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                 for r in runs[list(RUN_FIELDS)].to_dict("records")],
        "suite_git_commit": commits[0] if len(commits) == 1 else commits,
        "codec_config": {"name": codec, "params": params, "rates": dict(manifest["codecs"][codec]["rates"]),
                         "source": manifest["codecs"][codec].get("source", "")},
        "encoder_command": _encoder_command(params),
        "vtm": _vtm_build(params, versions),
        "vtm_release": {"tarball": VTM.tarball, "sha256": VTM.sha256, "upstream": VTM.upstream, "tag": VTM.tag},
        "regenerate": "python -m bench.tools.vtm anchor",
    }
    conditions = {
        "averaging": "points: mean over the images at each QP of the per-image values (bpp, each metric column, "
                     "times); per_image: every image's own points",
        "metrics": [c for c in columns if c not in ("bpp", "enc_time_s", "dec_time_s")],
        "metric_space": "RGB", "colour_conversion": COLOUR, "chroma_format": "4:4:4",
        "bit_depth": int(params.get("bit_depth", 10)), "cfg": str(params.get("cfg", "cfg/encoder_intra_vtm.cfg")),
        "rate_points": order, "images": len(images),
        "container": "4-byte size header + VVC bitstream, all counted in bpp",
        "timing_hardware": "; ".join(sorted(set(runs["cpu"].astype(str)))),
        "metric_reference": "PSNR against the original RGB image (colour conversion loss included)",
    }
    return Anchor(
        name=f"{dataset}/vtm-{VTM.version}", label=f"VTM {VTM.version} (measured, all-intra 4:4:4)", dataset=dataset,
        codec={"name": "VTM", "version": VTM.version, "kind": "classical", "configuration": "all-intra, 4:4:4, 10-bit",
               "implementation": "; ".join(versions)},
        provenance=provenance, conditions=conditions, points=points, per_image=per_image,
        notes=(f"measured by this suite over {len(images)} images × {len(order)} QPs. enc_time_s / dec_time_s are "
               "the wall time of single calls (warm-up 0, 1 repeat) on the machine named in timing_hardware, "
               "alongside whatever else ran there: for orientation only, not a speed measurement"),
    )


def make_anchor(results: Path, run_suite_first: bool, out: Path | None, jobs: int, dataset: str = "kodak",
                metrics: str = "jpeg-ai", cluster: str | None = None, timeout_s: float = 3600.0,
                retry_errors: bool = False) -> Path:
    """Run the suite (unless converting a finished store) and write the anchor file; its path."""
    if run_suite_first:
        run_suite(results, dataset, jobs, metrics, cluster, timeout_s, retry_errors)
    anchor = anchor_from_results(results, dataset)
    path = save_anchor(anchor, out or anchors_dir())
    print(f"wrote {path}: {anchor.name}, {len(anchor.per_image)} images × {len(anchor.points['bpp'])} points",
          file=sys.stderr)
    return path
