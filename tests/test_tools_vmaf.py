"""``python -m bench.tools.vmaf build``: checksum, safe unpack, the "already built" fast path, and
(slow, with ``$BENCH_SHARED_DIR``) a real build of libvmaf 3.2.0 whose CLI scores a pair."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bench.tools.vmaf import KNOWN_SHA256, TARBALL
from tests.conftest import python_module


def vmaf_tool(*args: str, **env: str) -> subprocess.CompletedProcess:
    return python_module("bench.tools.vmaf", *args, env=env, unset=("BENCH_SHARED_DIR",), timeout=900)


def test_a_tarball_with_the_wrong_checksum_is_one_line_exit_2(tmp_path: Path) -> None:
    fake = tmp_path / TARBALL
    fake.write_bytes(b"not the release")
    done = vmaf_tool("build", "--source", str(fake), "--prefix", str(tmp_path / "install"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"but the known hash of {TARBALL} says {KNOWN_SHA256}" in done.stderr
    assert not (tmp_path / "install").exists()


def test_no_source_is_one_line_exit_2(tmp_path: Path) -> None:
    done = vmaf_tool("build", "--prefix", str(tmp_path / "install"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "$BENCH_SHARED_DIR is not set" in done.stderr and TARBALL in done.stderr


def test_a_member_leaving_the_folder_is_refused_before_any_build(tmp_path: Path) -> None:
    source = tmp_path / "evil.tar.gz"
    with tarfile.open(source, "w:gz") as tar:
        for name in ("libvmaf/meson.build", "../outside"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"x\n\n"))
    done = vmaf_tool("build", "--source", str(source), "--prefix", str(tmp_path / "cache" / "install"))
    assert done.returncode == 2 and "member '../outside' leaves the folder" in done.stderr, done.stderr
    assert not (tmp_path / "cache" / "outside").exists() and not (tmp_path / "cache" / "install").exists()


def test_an_install_of_the_same_source_is_reused_without_building(tmp_path: Path) -> None:
    source = tmp_path / "own-libvmaf.tar.gz"  # not the release's name, no SHA256SUMS: built as given
    source.write_bytes(b"any bytes")
    digest = hashlib.sha256(b"any bytes").hexdigest()
    prefix = tmp_path / "install"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "vmaf").write_text("#!/bin/sh\n")
    (prefix / "BUILD.json").write_text(json.dumps({"source_sha256": digest}))
    done = vmaf_tool("build", "--source", str(source), "--prefix", str(prefix), PATH="/nonexistent")
    assert done.returncode == 0, done.stderr  # no toolchain needed: nothing is built
    assert f"already built: {prefix} (source sha256 {digest})" in done.stdout


@pytest.mark.slow
def test_real_build_installs_a_vmaf_that_scores_like_the_metric(shared_dir: Path, tmp_path: Path,
                                                                monkeypatch) -> None:
    """The release tarball builds (C only, no nasm) and its CLI gives the registry's VMAF."""
    if shutil.which("xxd") is None or shutil.which("cc") is None:
        pytest.skip("xxd and a C compiler are needed to build libvmaf")
    prefix = tmp_path / "libvmaf"
    done = vmaf_tool("build", "--source", str(shared_dir / "third_party" / TARBALL), "--prefix", str(prefix))
    assert done.returncode == 0, done.stderr
    record = json.loads((prefix / "BUILD.json").read_text())
    assert record["source_sha256"] == KNOWN_SHA256 and "-Denable_asm=false" in record["meson_options"]
    assert record["self_check"].startswith("64x64 identical images, model vmaf_v0.6.1: VMAF 97.4")
    again = vmaf_tool("build", "--source", str(shared_dir / "third_party" / TARBALL), "--prefix", str(prefix))
    assert again.returncode == 0 and "already built" in again.stdout

    from bench.metrics.vmaf import vmaf
    from tests.conftest import photo_like

    original = photo_like(96, 128, 7)
    noisy = np.clip(original.astype(int) + np.random.default_rng(0).integers(-20, 21, original.shape), 0, 255)
    monkeypatch.setenv("BENCH_VMAF", str(prefix / "bin" / "vmaf"))
    assert 0 <= vmaf(original, noisy.astype(np.uint8)) < vmaf(original, original) < 100
