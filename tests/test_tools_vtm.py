"""``python -m bench.tools.vtm build``: source checks, toolchain errors, "already built", and an
atomic install, each through the real command in a real subprocess (no VTM compile: a tiny real
CMake project stands in where a build must run)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.tools.vtm import KNOWN_SHA256, TARBALL, _extract, default_prefix, source_sha256
from tests.conftest import python_module


def vtm_tool(*args: str, path: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """``python -m bench.tools.vtm ARGS`` without this machine's VTM settings: only those in ``env``
    (and ``PATH`` = ``path`` when given)."""
    if path is not None:
        env["PATH"] = path
    return python_module("bench.tools.vtm", *args, env=env, unset=("BENCH_SHARED_DIR", "VTM_DIR", "CXX"), timeout=300)


def fake_tree(root: Path, *, programs: bool = False) -> Path:
    """A source tree with the VTM layout; with ``programs``, a real CMake project building two tiny apps."""
    (root / "source").mkdir(parents=True)
    (root / "cfg").mkdir()
    (root / "cfg" / "encoder_intra_vtm.cfg").write_text("# cfg\n")
    (root / "source" / "main.cpp").write_text("int main() { return 0; }\n")
    text = "cmake_minimum_required(VERSION 3.10)\nproject(fakevtm CXX)\n"
    if programs:
        for app in ("EncoderApp", "DecoderApp"):
            text += (f"add_executable({app} source/main.cpp)\nset_target_properties({app} PROPERTIES OUTPUT_NAME "
                     f"{app}Static RUNTIME_OUTPUT_DIRECTORY ${{CMAKE_SOURCE_DIR}}/bin)\n")
    (root / "CMakeLists.txt").write_text(text)
    return root


def bin_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only the named real tools (symlinks to the system's)."""
    folder = tmp_path / "onlybin"
    folder.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        if found:
            (folder / tool).symlink_to(found)
    return str(folder)


def test_default_prefix_follows_xdg_cache_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_prefix() == tmp_path / "lic-bench" / "vtm-23.13"


def test_no_source_says_where_to_get_one(tmp_path) -> None:
    result = vtm_tool("build", "--prefix", str(tmp_path / "vtm"), BENCH_SHARED_DIR=str(tmp_path))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "vcgit.hhi.fraunhofer.de/jvet/VVCSoftware_VTM" in result.stderr and "VTM-23.13" in result.stderr
    assert str(tmp_path / "third_party" / TARBALL) in result.stderr


def test_tarball_sha256_mismatch_is_refused(tmp_path) -> None:
    bad = tmp_path / TARBALL
    bad.write_bytes(b"not the release")
    result = vtm_tool("build", "--source", str(bad), "--prefix", str(tmp_path / "vtm"))
    assert result.returncode == 2 and KNOWN_SHA256[TARBALL] in result.stderr
    assert hashlib.sha256(b"not the release").hexdigest() in result.stderr
    assert not (tmp_path / "vtm").exists()


def test_sha256sums_beside_the_tarball_is_the_reference(tmp_path) -> None:
    other = tmp_path / "vtm-custom.tar.gz"
    other.write_bytes(b"x")
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  vtm-custom.tar.gz\n")
    result = vtm_tool("build", "--source", str(other), "--prefix", str(tmp_path / "vtm"))
    assert result.returncode == 2 and "SHA256SUMS says " + "0" * 64 in result.stderr


def test_missing_cmake_names_the_debian_package(tmp_path) -> None:
    tree = fake_tree(tmp_path / "src")
    result = vtm_tool("build", "--source", str(tree), "--prefix", str(tmp_path / "vtm"), path=bin_with(tmp_path))
    assert result.returncode == 2 and "cmake not found" in result.stderr and "apt-get install cmake" in result.stderr


@pytest.mark.skipif(not shutil.which("cmake"), reason="needs cmake on PATH")
def test_missing_compiler_names_the_debian_package(tmp_path) -> None:
    tree = fake_tree(tmp_path / "src")
    result = vtm_tool("build", "--source", str(tree), "--prefix", str(tmp_path / "vtm"), path=bin_with(tmp_path, "cmake"))
    assert result.returncode == 2 and "no C++ compiler" in result.stderr and "build-essential" in result.stderr


def test_already_built_rebuilds_nothing(tmp_path) -> None:
    tree = fake_tree(tmp_path / "src")
    prefix = tmp_path / "vtm"
    (prefix / "bin").mkdir(parents=True)
    for name in ("EncoderAppStatic", "DecoderAppStatic"):
        (prefix / "bin" / name).write_text("built before")
    (prefix / "BUILD.json").write_text(json.dumps({"source_sha256": source_sha256(tree)}))
    before = {p: p.stat().st_mtime_ns for p in prefix.rglob("*")}
    # An empty PATH: any attempt to configure or compile would fail.
    result = vtm_tool("build", "--source", str(tree), "--prefix", str(prefix), path=bin_with(tmp_path))
    assert result.returncode == 0 and "already built" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in prefix.rglob("*")} == before


@pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("c++")), reason="needs cmake and a C++ compiler")
@pytest.mark.timeout(300)
def test_a_failed_self_check_leaves_the_previous_install_untouched(tmp_path) -> None:
    """A real cmake build of two stand-in apps: layout and copy work, the self-check fails (they
    are not VTM), and neither a half install nor a temporary folder is left behind."""
    tree = fake_tree(tmp_path / "src", programs=True)
    prefix = tmp_path / "cache" / "vtm"
    prefix.mkdir(parents=True)
    (prefix / "BUILD.json").write_text('{"source_sha256": "older"}')
    result = vtm_tool("build", "--source", str(tree), "--prefix", str(prefix), "--jobs", "1")
    assert result.returncode == 1, result.stderr
    assert (tree / "bin" / "EncoderAppStatic").is_file() and (tree / "bin" / "DecoderAppStatic").is_file()
    assert result.stderr.startswith("error: installed VTM round trip failed: EncoderAppStatic exited 0 but wrote no")
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["vtm"]
    assert sorted(p.name for p in prefix.iterdir()) == ["BUILD.json"]
    assert "-DCMAKE_BUILD_TYPE=Release" in (tree / "build" / "bench-build.log").read_text()


def test_the_shipped_tarball_has_the_known_sha256_and_unpacks(shared_dir: Path, tmp_path: Path) -> None:
    tarball = shared_dir / "third_party" / TARBALL
    if not tarball.is_file():
        pytest.skip("BENCH_SHARED_DIR/third_party has no VTM tarball")
    assert source_sha256(tarball) == KNOWN_SHA256[TARBALL]
    top = _extract(tarball, tmp_path)  # it holds a relative symlink in cfg/keystore/ca/
    assert (top / "CMakeLists.txt").is_file() and (top / "cfg" / "encoder_intra_vtm.cfg").is_file()


def _tarball(path: Path, links: dict[str, str]) -> Path:
    """A tiny source tarball: CMakeLists.txt, cfg/a.cfg, and the given symlinks (name → target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("CMakeLists.txt", b"project(x)\n"), ("cfg/a.cfg", b"# cfg\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def test_a_symlink_inside_the_source_is_unpacked(tmp_path: Path) -> None:
    top = _extract(_tarball(tmp_path / "ok.tar.gz", {"cfg/b.cfg": "a.cfg"}), tmp_path / "out")
    assert (top / "cfg" / "b.cfg").read_text() == "# cfg\n"


@pytest.mark.parametrize("name, target", [("cfg/evil", "../../outside"), ("cfg/abs", "/etc/passwd"),
                                          ("../escape", "cfg/a.cfg")])
def test_a_member_leaving_the_folder_is_refused(tmp_path: Path, name: str, target: str) -> None:
    with pytest.raises(UsageError, match="leaves the folder"):
        _extract(_tarball(tmp_path / "bad.tar.gz", {name: target}), tmp_path / "out")
    assert not (tmp_path / "outside").exists()


# ---------------------------------------------------------------------------------------------
# The measured anchor: a real suite run (real VTM) on two tiny crops, converted
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vtm_store(tmp_path_factory, photo) -> Path:
    """A real results store: the suite's ``vtm`` configuration on two 32×48 crops at QP 42 and 47."""
    from PIL import Image

    from bench.codecs import registry

    reason = registry.availability(registry.load_configs()["vtm"])
    if reason:
        if os.environ.get("BENCH_REQUIRE_VTM") == "1":
            pytest.fail(f"BENCH_REQUIRE_VTM=1 but {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("vtm-anchor")
    (root / "tiny").mkdir()
    for i, (y, x) in enumerate(((200, 300), (40, 100))):
        Image.fromarray(photo[y:y + 32, x:x + 48].copy()).save(root / "tiny" / f"crop{i}.png")
    done = python_module("bench", "run", "--codecs", "vtm", "--dataset", str(root / "tiny"), "--rates", "qp=42,qp=47",
                         "--ladder", "none", "--jobs", "1", "--repeats", "1", "--out", str(root / "results"), "--quiet")
    assert done.returncode == 0, done.stderr
    return root / "results"


@pytest.mark.timeout(600)
def test_anchor_from_a_real_store_keeps_every_image_and_the_provenance(tiny_vtm_store, tmp_path) -> None:
    import numpy as np

    from bench.anchors import load_anchor
    from bench.store import read_measurements, read_runs

    result = vtm_tool("anchor", "--from-results", str(tiny_vtm_store), "--dataset", "tiny",
                      "--out", str(tmp_path), **{k: os.environ[k] for k in ("VTM_DIR",) if k in os.environ})
    assert result.returncode == 0, result.stderr
    a = load_anchor("tiny/vtm-23.13", root=tmp_path)
    rows = read_measurements(tiny_vtm_store)
    assert sorted(a.per_image) == ["crop0", "crop1"] and a.conditions["rate_points"] == ["qp=42", "qp=47"]
    for image, cols in a.per_image.items():
        for j, qp in enumerate(("qp=42", "qp=47")):
            row = rows[(rows.image == image) & (rows.rate_label == qp)].iloc[0]
            assert cols["bpp"][j] == row.bpp and cols["psnr_rgb"][j] == row.psnr_rgb
    for col in a.points:
        mean = np.mean([a.per_image[i][col] for i in a.per_image], axis=0)
        assert np.allclose(a.points[col], mean, rtol=1e-12)
    p = a.provenance
    assert p["source"] == "measured" and p["suite_git_commit"] == read_runs(tiny_vtm_store)["git_commit"].iloc[0]
    assert p["encoder_command"][:3] == ["{vtm_dir}/bin/EncoderAppStatic", "-c", "{vtm_dir}/cfg/encoder_intra_vtm.cfg"]
    assert "{qp}" in p["encoder_command"] and "--InputChromaFormat=444" in p["encoder_command"]
    assert len(p["vtm"]["cfg_sha256"]) == 64 and p["vtm_release"]["sha256"] == KNOWN_SHA256[TARBALL]
    assert a.codec["implementation"].startswith("VTM Encoder Version 23.13")


def test_anchor_refuses_an_incomplete_store(tiny_vtm_store, tmp_path) -> None:
    import sqlite3

    copy = tmp_path / "partial"
    shutil.copytree(tiny_vtm_store, copy)
    with sqlite3.connect(copy / "results.sqlite") as conn:
        conn.execute("DELETE FROM measurements WHERE image = 'crop1' AND rate_label = 'qp=47'")
    result = vtm_tool("anchor", "--from-results", str(copy), "--dataset", "tiny", "--out", str(tmp_path / "a"))
    assert result.returncode == 2 and "1 (image, rate) cell(s) missing" in result.stderr and "('crop1', 'qp=47')" in result.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.timeout(900)
def test_anchor_runs_the_suite_as_a_session(tiny_vtm_store, tmp_path) -> None:
    """``vtm anchor`` without --from-results runs the suite in-process through bench.session (no
    ``bench run`` subprocess of its own): one thread, no warm-up, one repeat, an hour's limit, the
    tool's own command in the manifest, and every row saying what thread counts were timed; the
    default and JPEG AI metric sets are computed, every stream is kept, and the anchor carries each
    metric column the run filled for every cell (on these 32×48 crops: those without a minimum size)."""
    from bench.anchors import load_anchor
    from bench.store import read_measurements, read_runs
    from bench.streams import stream_path, streams_dir

    shutil.copytree(tiny_vtm_store.parent / "tiny", tmp_path / "tiny")
    result = python_module("bench.tools.vtm", "anchor", "--results", "results", "--dataset", "tiny", "--jobs", "1",
                           "--out", "anchors", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    anchor = load_anchor("tiny/vtm-23.13", root=tmp_path / "anchors")
    assert len(anchor.per_image) == 2 and {"psnr_rgb", "psnr_y", "psnr_yuv"} <= set(anchor.points)
    assert set(anchor.per_image["crop0"]) == set(anchor.points) and "psnr_yuv" in anchor.conditions["metrics"]
    run = read_runs(tmp_path / "results").iloc[-1]
    manifest = json.loads(run["manifest"])
    assert "-m bench.tools.vtm anchor" in run["command"] and run["threads"] == 1 and manifest["machine"]["cpu_model"]
    assert manifest["protocol"] == {"warmup": 0, "repeats": 1, "timeout_s": 3600.0, "cross_decode": False,
                                    "memory": "size", "keep_streams": True}
    assert {m["metric"] for m in manifest["metrics"]} >= {"psnr-yuv", "vif", "fsim", "nlpd", "iw-ssim", "vmaf"}
    rows = read_measurements(tmp_path / "results")
    assert rows.stream_sha256.notna().all() and rows.psnr_yuv.notna().all()
    assert all(stream_path(streams_dir(tmp_path / "results"), h).is_file() for h in rows.stream_sha256)
    assert len(rows) == 12 and (rows.enc_threads == 1).all() and (rows.dec_threads == 1).all()
