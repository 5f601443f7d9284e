"""Build VTM (the VVC reference software) in one command, and make the measured VTM anchor.

    python -m bench.tools.vtm build [--source TARBALL_OR_DIR] [--prefix DIR] [--jobs N]
    python -m bench.tools.vtm anchor [--from-results DIR | --results DIR] [--out anchors/]

``build`` checks the source tarball's sha256 (``SHA256SUMS`` beside it, else the known hash of the
release), builds only ``EncoderApp`` and ``DecoderApp`` in Release with every core, copies
``bin/`` and ``cfg/`` into the install folder atomically (a temporary folder renamed into place),
writes ``BUILD.json`` (source sha256, version banner, cmake and compiler versions, build
seconds) and checks the result with a tiny real encode/decode. The release and the default install
folder, :func:`default_prefix`, are :data:`bench.third_party.VTM`: where the VTM codec looks for VTM.
A directory source is built in place (``DIR/build``), so an already compiled tree is reused.

Only the standard library is imported at module level: CI calls this with any ``python3``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import AnchorError, BenchError, BuildError, UsageError
from bench.hashing import file_sha256
from bench.third_party import VTM

# the release this command builds (bench.third_party.VTM), in the words of its messages
VERSION, TARBALL, UPSTREAM, TAG = VTM.version, VTM.tarball, VTM.upstream, VTM.tag
KNOWN_SHA256 = {TARBALL: VTM.sha256}
BINARIES = ("EncoderAppStatic", "DecoderAppStatic")
TARGETS = ("EncoderApp", "DecoderApp")
SOURCE_PARTS = ("CMakeLists.txt", "cmake", "source", "cfg")  # what a directory source's hash covers


def default_prefix() -> Path:
    """``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/lic-bench/vtm-<VERSION>``: where VTM is installed and found."""
    return VTM.prefix()


def find_source(given: Path | None) -> Path:
    """The source to build: ``given``, else ``$BENCH_SHARED_DIR/third_party/<TARBALL>``."""
    if given is not None:
        if not given.exists():
            raise UsageError(f"VTM source {given} does not exist; pass the {TARBALL} tarball or an extracted tree")
        return given
    shared = os.environ.get("BENCH_SHARED_DIR")
    candidate = Path(shared) / "third_party" / TARBALL if shared else None
    if candidate is not None and candidate.is_file():
        return candidate
    where = f" (not at {candidate})" if candidate else " ($BENCH_SHARED_DIR is not set)"
    raise UsageError(f"no VTM source given{where}: get tag {TAG} from {UPSTREAM} (git clone --branch {TAG} --depth 1, "
                     "or its source archive) and pass --source TARBALL_OR_DIR")


def expected_sha256(tarball: Path) -> tuple[str, str] | None:
    """(sha256, where it comes from) for ``tarball``: its line in ``SHA256SUMS`` beside it, else the known hash."""
    sums = tarball.parent / "SHA256SUMS"
    if sums.is_file():
        for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == tarball.name:
                return parts[0].lower(), str(sums)
    if tarball.name in KNOWN_SHA256:
        return KNOWN_SHA256[tarball.name], f"the known hash of {tarball.name}"
    return None


def source_sha256(source: Path) -> str:
    """The tarball's sha256 (checked against the expected one), or ``tree:<sha256>`` of a directory's sources."""
    if source.is_file():
        actual = file_sha256(source)
        expected = expected_sha256(source)
        if expected and expected[0] != actual:
            raise UsageError(f"{source}: sha256 is {actual}, but {expected[1]} says {expected[0]}; the file is "
                             f"corrupt or not the VTM {VERSION} release: download it again ({UPSTREAM}, tag {TAG})")
        return actual
    if not (source / "CMakeLists.txt").is_file():
        raise UsageError(f"{source} has no CMakeLists.txt; pass the VTM source tree (source/ cfg/ cmake/ CMakeLists.txt)")
    digest = hashlib.sha256()
    for part in SOURCE_PARTS:
        root = source / part
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            digest.update(f"{path.relative_to(source).as_posix()}\0{file_sha256(path)}\n".encode())
    return "tree:" + digest.hexdigest()


def _first_line(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return next((ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()), "unknown")


def check_toolchain() -> dict[str, str]:
    """cmake and C++ compiler versions; a missing one is a UsageError naming the Debian package."""
    cmake = shutil.which("cmake")
    if not cmake:
        raise UsageError("cmake not found on PATH: install it (Debian/Ubuntu: apt-get install cmake)")
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    cxx = next((found for n in names if (found := shutil.which(n))), None)
    if not cxx:
        raise UsageError(f"no C++ compiler found ({', '.join(names)}): install one "
                         "(Debian/Ubuntu: apt-get install g++, or build-essential)")
    return {"cmake": _first_line([cmake, "--version"]), "compiler": f"{cxx}: {_first_line([cxx, '--version'])}"}


def installed(prefix: Path) -> dict | None:
    """The ``BUILD.json`` of a complete install at ``prefix``, else None."""
    record = prefix / "BUILD.json"
    if not record.is_file() or not all((prefix / "bin" / b).is_file() for b in BINARIES):
        return None
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _extract(tarball: Path, dest: Path, marker: str = "CMakeLists.txt") -> Path:
    """Unpack ``tarball`` into ``dest`` (no member may leave it); the folder holding ``marker``."""
    root = dest.resolve()

    def inside(path: Path) -> bool:
        resolved = path.resolve()
        return resolved == root or root in resolved.parents

    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            # links are allowed when they stay inside (VTM's cfg/keystore holds one relative symlink)
            link = None
            if member.issym():
                link = dest / Path(member.name).parent / member.linkname
            elif member.islnk():
                link = dest / member.linkname
            if not inside(dest / member.name) or (link is not None and (Path(member.linkname).is_absolute()
                                                                         or not inside(link))):
                raise UsageError(f"{tarball}: member {member.name!r} leaves the folder; refusing it")
        # the 'data' filter (Python ≥ 3.11.4 / 3.10.12) enforces the same rules once more while extracting
        tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    tops = [dest] + [p for p in dest.iterdir() if p.is_dir()]
    top = next((p for p in tops if (p / marker).exists()), None)
    if top is None:
        raise UsageError(f"{tarball} holds no {marker} at its top; is it the right source archive?")
    return top


def _compile(src: Path, jobs: int, log_path: Path) -> None:
    """Configure (Release) and build the two app targets in ``src/build``; the output goes to ``log_path``."""
    build_dir = src / "build"
    build_dir.mkdir(exist_ok=True)
    steps = [["cmake", "-S", str(src), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"],
             ["cmake", "--build", str(build_dir), "--target", *TARGETS, "-j", str(jobs)]]
    with open(log_path, "ab") as log:
        for cmd in steps:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
            if rc != 0:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise BuildError(f"{' '.join(cmd[:2])} failed (exit {rc}): {' '.join(tail)}; full log {log_path}")


def smoke_check(prefix: Path) -> str:
    """A 16×16 4:4:4 encode/decode through the adapter with the VTM at ``prefix``; what it gave."""
    try:
        import numpy as np

        from bench.codecs.base import CodecConfig, RatePoint
        from bench.codecs.vtm import VtmCodec
        from bench.metrics import psnr_rgb
    except ImportError as exc:  # a bare python3 without numpy: the binaries must at least run
        from_help = _first_line([str(prefix / "bin" / BINARIES[0]), "--help"])
        return f"banner only ({from_help}); adapter not importable here: {exc}"
    rate = RatePoint("qp=37", {"qp": 37})
    config = CodecConfig("vtm", "vtm", {"vtm_dir": str(prefix), "bit_depth": 10}, (rate,))
    reason = VtmCodec.check_available(config)
    if reason:
        raise BuildError(f"installed VTM does not work: {reason}")
    ramp = np.arange(16, dtype=np.uint8) * 16
    image = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 255 - ramp[:, None]), -1).astype(np.uint8)
    codec = VtmCodec(config)
    try:
        data = codec.encode(image, rate)
        decoded = codec.decode(data)
    except BenchError as exc:
        raise BuildError(f"installed VTM round trip failed: {exc}") from None
    quality = psnr_rgb(image, decoded)
    if decoded.shape != image.shape or quality < 25:
        raise BuildError(f"installed VTM round trip is wrong: shape {decoded.shape}, PSNR {quality:.1f} dB")
    return f"16x16 4:4:4 10-bit round trip at QP 37 through the adapter: {len(data)} bytes, PSNR-RGB {quality:.1f} dB"


def build(source: Path | None, prefix: Path, jobs: int, say=print) -> dict:
    """Build and install VTM at ``prefix`` (see the module docstring); its BUILD.json record."""
    source = find_source(source)
    digest = source_sha256(source)
    current = installed(prefix)
    if current and current.get("source_sha256") == digest:
        say(f"already built: {prefix} (source sha256 {digest})")
        return current
    tools = check_toolchain()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.tmp-", dir=prefix.parent))
    try:
        stage = work / "install"
        log_path = (source / "build" if source.is_dir() else work) / "bench-build.log"
        log_path.parent.mkdir(exist_ok=True)
        src = _extract(source, work / "src") if source.is_file() else source
        say(f"building VTM {VERSION} from {source} with {jobs} jobs (log {log_path}) ...")
        start = time.monotonic()
        _compile(src, jobs, log_path)
        seconds = time.monotonic() - start
        (stage / "bin").mkdir(parents=True)
        for name in BINARIES:
            built = src / "bin" / name
            if not built.is_file():
                raise BuildError(f"the build finished but {built} is missing; see {log_path}")
            shutil.copy2(built, stage / "bin" / name)
        shutil.copytree(src / "cfg", stage / "cfg")
        record = {
            "vtm_version": VERSION, "source": str(source.resolve()), "source_sha256": digest,
            "banner": _first_line([str(stage / "bin" / BINARIES[0]), "--help"]),
            **tools, "cmake_build_type": "Release", "targets": list(TARGETS), "jobs": jobs,
            "build_seconds": round(seconds, 1), "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "platform": platform.platform(),
        }
        record["self_check"] = smoke_check(stage)
        (stage / "BUILD.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        old = work / "old"
        if prefix.exists():
            prefix.rename(old)
        stage.rename(prefix)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"installed VTM {VERSION} in {prefix} ({seconds:.0f} s); {record['self_check']}")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.tools.vtm build|anchor``; bad input: one line, exit 2; build or run failures: exit 1."""
    parser = argparse.ArgumentParser(prog="python -m bench.tools.vtm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help=f"build VTM {VERSION} and install bin/ and cfg/")
    p_build.add_argument("--source", type=Path, default=None,
                         help=f"{TARBALL} or an extracted tree (default: $BENCH_SHARED_DIR/third_party/{TARBALL})")
    p_build.add_argument("--prefix", type=Path, default=None, help=f"install folder (default {default_prefix()})")
    p_build.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile jobs (default: all cores)")
    p_anchor = sub.add_parser("anchor", help="measure VTM on Kodak with the suite and write the anchor file")
    src = p_anchor.add_mutually_exclusive_group()
    src.add_argument("--from-results", type=Path, default=None, help="convert this finished results folder; run nothing")
    src.add_argument("--results", type=Path, default=Path("results/vtm-anchor"),
                     help="results folder the suite runs into (default results/vtm-anchor; resumes)")
    p_anchor.add_argument("--out", type=Path, default=None, help="anchors folder (default: the project's anchors/)")
    p_anchor.add_argument("--jobs", type=int, default=2, help="suite worker processes (default 2)")
    p_anchor.add_argument("--dataset", default="kodak", help="dataset of the anchor (default kodak)")
    p_anchor.add_argument("--metrics", default="jpeg-ai",
                          help="metrics per cell, as bench run --metrics (default jpeg-ai: the default and JPEG AI sets)")
    p_anchor.add_argument("--cluster", default=None,
                          help="run the cells on a Dask cluster, e.g. local:2 (a LocalCluster); default: local workers")
    p_anchor.add_argument("--timeout", type=float, default=3600.0,
                          help="seconds before a cell is killed and stored as an error (default 3600)")
    p_anchor.add_argument("--retry-errors", action="store_true", help="re-run cells stored as errors (e.g. timed out)")
    args = parser.parse_args(argv)
    try:
        if args.command == "anchor" and not args.timeout > 0:
            raise UsageError(f"--timeout must be > 0 seconds, got {args.timeout}")
        if args.command == "build":
            build(args.source, args.prefix or default_prefix(), max(1, args.jobs))
        else:
            from bench.tools.vtm_anchor import make_anchor

            make_anchor(results=args.from_results or args.results, run_suite_first=args.from_results is None,
                        out=args.out, jobs=args.jobs, dataset=args.dataset, metrics=args.metrics,
                        cluster=args.cluster, timeout_s=args.timeout, retry_errors=args.retry_errors)
    except (UsageError, AnchorError) as exc:  # bad input: a missing source, an incomplete store
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
