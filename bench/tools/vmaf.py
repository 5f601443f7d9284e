"""Build Netflix's libvmaf and its ``vmaf`` CLI in one command (the VMAF metric runs that CLI).

    python -m bench.tools.vmaf build [--source TARBALL] [--prefix DIR] [--jobs N]

``build`` checks the tarball's sha256 (``SHA256SUMS`` beside it, else the known hash), unpacks it
safely (no member may leave the folder), configures with meson (``--buildtype release
-Denable_asm=false``: nasm is not needed; libvmaf's x86 assembly only speeds up the same
integer feature computations, its tests check the SIMD paths against the C ones bit for bit) and
builds ``tools/vmaf`` with ninja, the built-in models (``vmaf_v0.6.1`` among them) compiled in
from ``model/*.json`` with xxd. The binary is installed atomically into :func:`default_prefix`
``/bin/vmaf`` with ``BUILD.json`` (source sha256, versions, build seconds, self-check). A second
call with the same source says "already built" and returns at once.

Only the standard library is imported at module level: CI calls this with any ``python3``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import BenchError, BuildError, UsageError
from bench.hashing import file_sha256
from bench.third_party import LIBVMAF
from bench.tools.vtm import _extract, _first_line, expected_sha256

# the release this command builds (bench.third_party.LIBVMAF), in the words of its messages
VERSION, TARBALL, KNOWN_SHA256, UPSTREAM, TAG = (LIBVMAF.version, LIBVMAF.tarball, LIBVMAF.sha256, LIBVMAF.upstream,
                                                 LIBVMAF.tag)
MESON_OPTIONS = ("--buildtype", "release", "-Denable_asm=false", "-Ddefault_library=static",
                 "-Denable_tests=false", "-Denable_docs=false", "-Dbuilt_in_models=true")


def default_prefix() -> Path:
    """``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/lic-bench/libvmaf-<VERSION>``: where the CLI is installed and found."""
    return LIBVMAF.prefix()


def find_source(given: Path | None) -> Path:
    """The tarball to build: ``given``, else ``$BENCH_SHARED_DIR/third_party/<TARBALL>``."""
    shared = os.environ.get("BENCH_SHARED_DIR")
    source = given or (Path(shared) / "third_party" / TARBALL if shared else None)
    if source is None or not source.is_file():
        where = f"{source} does not exist" if source else "$BENCH_SHARED_DIR is not set"
        raise UsageError(f"no libvmaf source ({where}): pass --source {TARBALL} (git archive of tag {TAG} "
                         f"of {UPSTREAM})")
    return source


def checked_sha256(tarball: Path) -> str:
    """The tarball's sha256; a UsageError when it differs from its ``SHA256SUMS`` line or, for the
    release's file name, from the known hash."""
    actual = file_sha256(tarball)
    listed = expected_sha256(tarball)  # its line in SHA256SUMS beside it
    if listed is None and tarball.name != TARBALL:
        return actual  # another source of the user's: built as given, its hash recorded in BUILD.json
    expected, where = listed or (KNOWN_SHA256, f"the known hash of {TARBALL}")
    if expected != actual:
        raise UsageError(f"{tarball}: sha256 is {actual}, but {where} says {expected}; the file is corrupt or not "
                         f"libvmaf {VERSION}: get it again ({UPSTREAM}, tag {TAG})")
    return actual


def tools() -> dict[str, str]:
    """meson (next to this Python first: the nox env installs it from PyPI; then pip's user scripts folder,
    where ``pip install --user meson`` puts it even when that folder is not on PATH), ninja and xxd;
    UsageError if missing."""
    places = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts", f"{os.name}_user"))]
    found = {}
    for name, hint in (("meson", "pip install meson"), ("ninja", "pip install ninja, or apt-get install ninja-build"),
                       ("xxd", "apt-get install xxd (or vim-common)"), ("cc", "apt-get install build-essential")):
        path = next((str(p / name) for p in places if (p / name).is_file()), None) or shutil.which(name)
        if not path:
            raise UsageError(f"{name} not found (next to {sys.executable} or on PATH): {hint}")
        found[name] = str(path)
    return found


def installed(prefix: Path) -> dict | None:
    """The ``BUILD.json`` of a complete install at ``prefix``, else None."""
    try:
        record = json.loads((prefix / "BUILD.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if (prefix / "bin" / "vmaf").is_file() else None


def self_check(vmaf: Path) -> str:
    """VMAF of a 64×64 4:4:4 gradient against itself must be the model's top score (> 97)."""
    with tempfile.TemporaryDirectory(prefix="vmaf-check-") as tmp:
        frame = bytes((x * 4 + y) % 256 for y in range(64) for x in range(64)) + bytes([128]) * (2 * 64 * 64)
        y4m = Path(tmp) / "a.y4m"
        y4m.write_bytes(b"YUV4MPEG2 W64 H64 F1:1 Ip A1:1 C444\nFRAME\n" + frame)
        out = Path(tmp) / "out.json"
        cmd = [str(vmaf), "-r", str(y4m), "-d", str(y4m), "--model", "version=vmaf_v0.6.1", "--json", "-o", str(out), "-q"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BuildError(f"the built vmaf does not run: exit {done.returncode}: {done.stderr.strip()[-300:]}")
        score = json.loads(out.read_text())["pooled_metrics"]["vmaf"]["mean"]
    if not score > 97:
        raise BuildError(f"the built vmaf scores identical images {score}, expected the model's top (> 97)")
    return f"64x64 identical images, model vmaf_v0.6.1: VMAF {score:.3f}"


def build(source: Path | None, prefix: Path, jobs: int, say=print) -> dict:
    """Build and install the vmaf CLI at ``prefix`` (see the module docstring); its BUILD.json record."""
    source = find_source(source)
    digest = checked_sha256(source)
    current = installed(prefix)
    if current and current.get("source_sha256") == digest:
        say(f"already built: {prefix} (source sha256 {digest})")
        return current
    found = tools()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.tmp-", dir=prefix.parent))
    try:
        src = _extract(source, work / "src", marker="libvmaf") / "libvmaf"
        log_path = work / "bench-build.log"
        say(f"building libvmaf {VERSION} from {source} with {jobs} jobs (log {log_path}) ...")
        start = time.monotonic()
        env = dict(os.environ, PATH=f"{Path(found['ninja']).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        steps = [[found["meson"], "setup", "build", *MESON_OPTIONS],
                 [found["ninja"], "-C", "build", "-j", str(jobs), "tools/vmaf"]]
        with open(log_path, "ab") as log:
            for cmd in steps:
                log.write(("$ " + " ".join(cmd) + "\n").encode())
                log.flush()
                rc = subprocess.run(cmd, cwd=src, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
                if rc != 0:
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                    raise BuildError(f"{Path(cmd[0]).name} failed (exit {rc}): {' '.join(tail)}; full log {log_path}")
        seconds = time.monotonic() - start
        stage = work / "install"
        (stage / "bin").mkdir(parents=True)
        shutil.copy2(src / "build" / "tools" / "vmaf", stage / "bin" / "vmaf")
        record = {
            "libvmaf_version": VERSION, "source": str(source.resolve()), "source_sha256": digest,
            "version_banner": _first_line([str(stage / "bin" / "vmaf"), "--version"]),
            "meson": _first_line([found["meson"], "--version"]), "ninja": _first_line([found["ninja"], "--version"]),
            "compiler": _first_line([found["cc"], "--version"]), "meson_options": list(MESON_OPTIONS),
            "jobs": jobs, "build_seconds": round(seconds, 1),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "platform": platform.platform(),
        }
        record["self_check"] = self_check(stage / "bin" / "vmaf")
        (stage / "BUILD.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        if prefix.exists():
            prefix.rename(work / "old")
        stage.rename(prefix)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"installed vmaf {VERSION} in {prefix} ({seconds:.0f} s); {record['self_check']}")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.tools.vmaf build``; bad input: one line, exit 2; build failures: exit 1."""
    parser = argparse.ArgumentParser(prog="python -m bench.tools.vmaf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help=f"build libvmaf {VERSION}'s vmaf CLI and install it")
    p_build.add_argument("--source", type=Path, default=None,
                         help=f"{TARBALL} (default: $BENCH_SHARED_DIR/third_party/{TARBALL})")
    p_build.add_argument("--prefix", type=Path, default=None, help=f"install folder (default {default_prefix()})")
    p_build.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile jobs (default: all cores)")
    args = parser.parse_args(argv)
    try:
        build(args.source, args.prefix or default_prefix(), max(1, args.jobs))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
