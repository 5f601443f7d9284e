"""VTM, the VVC reference software, driven as real subprocesses (all-intra, 4:4:4).

The user installs VTM; ``codecs/vtm.toml`` (``vtm_dir``) or ``$VTM_DIR`` says where. The image
is converted RGB → Y′CbCr BT.709 full range with rounding (:mod:`bench.colour`) at ``bit_depth``
(8 or 10), written as planar 4:4:4 raw video, coded with ``EncoderAppStatic`` and the all-intra
cfg at one QP, decoded with ``DecoderAppStatic`` and converted back with rounding. PSNR is
measured on the RGB result, so the colour conversion's loss is inside the numbers.

Bitstream container: 4 bytes (width, height as big-endian uint16) + the VVC bitstream, all counted
in the rate. The decoder writes a Y4M file, whose header carries the picture size and format VTM
took from the stream's SPS; both are checked against the container header (a sample count alone
would let swapped dimensions decode silently).

By default VTM is looked up in the folder ``python -m bench.tools.vtm build`` installs into
(:meth:`bench.third_party.VTM.prefix <bench.third_party.Release.prefix>`); ``vtm_dir`` or ``$VTM_DIR``
override it.
Each VTM process gets the run's thread pins and is bounded by the run's time limit
(:mod:`bench.procenv`, from the run's ``Settings``; a ``timeout_s`` parameter can only tighten it).
Timing includes process start-up and raw-file I/O. The version recorded is the banner the encoder
prints (e.g. ``VTM Encoder Version 17.0``) plus the SHA-256 of the cfg file.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import procenv
from bench.codecs.base import Codec, CodecConfig, Param, RatePoint
from bench.errors import CodecError
from bench.colour import rgb_to_ycbcr, ycbcr_to_rgb
from bench.third_party import VTM

HEADER = struct.Struct(">HH")


def vtm_paths(config: CodecConfig) -> tuple[Path, Path, Path]:
    """Encoder, decoder and cfg paths from the configuration, ``$VTM_DIR`` or ``PATH``."""
    params = config.params
    given = str(params.get("vtm_dir") or os.environ.get("VTM_DIR", ""))
    root = Path(os.path.expandvars(os.path.expanduser(given))) if given else VTM.prefix()

    def find(name: str) -> Path:
        for candidate in (root / "bin" / name, root / name):
            if str(root) not in ("", ".") and candidate.is_file():
                return candidate
        on_path = shutil.which(name)
        return Path(on_path) if on_path else root / "bin" / name

    encoder = find(str(params.get("encoder", "EncoderAppStatic")))
    decoder = find(str(params.get("decoder", "DecoderAppStatic")))
    cfg = Path(os.path.expanduser(str(params.get("cfg", "cfg/encoder_intra_vtm.cfg"))))
    if not cfg.is_absolute():
        cfg = root / cfg
    return encoder, decoder, cfg


def failure_message(name: str, returncode: int, stdout: str, stderr: str) -> str:
    """One line saying how a VTM tool failed: exit code or signal name, and VTM's own ERROR line.

    VTM writes ``ERROR: ...`` to stderr and its memory/time summary to stdout, so the two are kept
    apart: the ERROR line (else the end of stderr, else the end of stdout) is what is reported.
    """
    if returncode < 0:
        try:
            how = f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"failed with exit code {returncode}"
    errors = [ln.strip() for ln in stderr.splitlines() if "ERROR" in ln]
    detail = errors or [ln.strip() for ln in stderr.splitlines() if ln.strip()][-3:] or \
        [ln.strip() for ln in stdout.splitlines() if ln.strip()][-3:]
    return f"{name} {how}" + (f": {' | '.join(detail)}" if detail else "")


def run_tool(cmd: list[str], timeout: float) -> tuple[str, int]:
    """Run ``cmd``; return its stdout and the child's peak RSS in bytes (``wait4``'s ru_maxrss)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=procenv.child_env())
        except OSError as exc:
            raise CodecError(f"cannot start {cmd[0]}: {exc}") from exc
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise CodecError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s")
            time.sleep(0.005)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise CodecError(failure_message(Path(cmd[0]).name, proc.returncode, stdout, stderr))
    return stdout, usage.ru_maxrss * 1024


def cannot_execute(path: Path) -> str | None:
    """Why ``path`` cannot be run as a program (no exec bit, not a valid executable), else None."""
    if not os.access(path, os.X_OK):
        return f"cannot execute {path}: no execute permission (chmod +x, or rebuild with python -m bench.tools.vtm build)"
    try:
        subprocess.run([str(path), "--help"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"cannot execute {path}: '--help' did not finish within 30 s"
    except OSError as exc:
        return f"cannot execute {path}: {exc.strerror or exc}"
    return None


@functools.lru_cache(maxsize=8)
def _banner(encoder: str) -> str:
    try:
        out = subprocess.run([encoder, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    match = re.search(r"VTM (?:Software|Encoder Version)[^\n\[]*", out.stdout + out.stderr)
    return match.group(0).strip() if match else "unknown (no version banner)"


class VtmCodec(Codec):
    """VTM all-intra at one QP per rate point; ``bit_depth`` 8 or 10 for the YCbCr input."""

    adapter = "vtm"
    subprocess = True
    rate_params = {"qp": Param(int, 0, 63, required=True)}
    fixed_params = {"vtm_dir": Param(str), "cfg": Param(str), "bit_depth": Param(int, choices=(8, 10)),
                    "encoder": Param(str), "decoder": Param(str), "timeout_s": Param(float, 0, low_open=True)}

    def __init__(self, config: CodecConfig, device: str | None = None):
        super().__init__(config, device)
        self.encoder, self.decoder, self.cfg = vtm_paths(config)
        self.bit_depth = int(config.params.get("bit_depth", 10))
        if self.bit_depth not in (8, 10):
            raise ValueError(f"vtm bit_depth must be 8 or 10, got {self.bit_depth}")
        #: seconds per VTM call: the run's per-cell limit (an hour outside a run), or less if the params say so
        self.timeout = min(procenv.timeout_s(3600.0), float(config.params.get("timeout_s", math.inf)))

    @classmethod
    def check_available(cls, config: CodecConfig) -> str | None:
        encoder, decoder, cfg = vtm_paths(config)
        missing = [str(p) for p in (encoder, decoder, cfg) if not p.is_file()]
        if missing:
            return (f"VTM not found ({', '.join(missing)}); build it with python -m bench.tools.vtm build, "
                    "or set vtm_dir in codecs/vtm.toml or $VTM_DIR")
        for binary in (encoder, decoder):
            reason = cannot_execute(binary)
            if reason:
                return reason
        return None

    def library_version(self) -> str:
        cfg_hash = hashlib.sha256(self.cfg.read_bytes()).hexdigest()[:12] if self.cfg.is_file() else "missing"
        return f"{_banner(str(self.encoder))}; cfg {self.cfg.name} sha256:{cfg_hash}"

    def encoder_command(self, raw: Path, stream: Path, width: int, height: int, qp: int) -> list[str]:
        """The exact encoder command line (tested as such)."""
        return [str(self.encoder), "-c", str(self.cfg), "-i", str(raw), "-b", str(stream), "-o", os.devnull,
                "-wdt", str(width), "-hgt", str(height), "-fr", "1", "-f", "1", "-q", str(qp),
                "--InputChromaFormat=444", "--ChromaFormatIDC=444", f"--InputBitDepth={self.bit_depth}",
                f"--OutputBitDepth={self.bit_depth}", f"--InternalBitDepth={self.bit_depth}",
                "--ConformanceWindowMode=1", "--InputColourSpaceConvert=UNCHANGED"]

    def decoder_command(self, stream: Path, out: Path) -> list[str]:
        """The decoder command line; ``out`` ends in ``.y4m`` so VTM writes the size it decoded."""
        return [str(self.decoder), "-b", str(stream), "-o", str(out), "-d", str(self.bit_depth)]

    def _write_raw(self, planes: np.ndarray, path: Path) -> None:
        dtype = np.uint8 if self.bit_depth == 8 else np.dtype("<u2")
        path.write_bytes(planes.astype(dtype).tobytes())

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        height, width = image.shape[:2]
        if max(width, height) > 0xFFFF:
            raise CodecError("image too large for the VTM container header")
        with tempfile.TemporaryDirectory(prefix="bench-vtm-") as tmp:
            raw, stream = Path(tmp, "in.yuv"), Path(tmp, "out.bin")
            self._write_raw(rgb_to_ycbcr(image, self.bit_depth), raw)
            _, self.last_child_peak_rss = run_tool(
                self.encoder_command(raw, stream, width, height, int(rate.params["qp"])), self.timeout)
            if not stream.is_file():
                raise CodecError(f"{self.encoder.name} exited 0 but wrote no bitstream {stream.name}")
            return HEADER.pack(width, height) + stream.read_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        if len(data) <= HEADER.size:
            raise CodecError(f"VTM bitstream of {len(data)} bytes is too short")
        width, height = HEADER.unpack_from(data)
        if width == 0 or height == 0:
            raise CodecError(f"VTM container header gives an empty size {width}×{height}")
        with tempfile.TemporaryDirectory(prefix="bench-vtm-") as tmp:
            stream, out = Path(tmp, "in.bin"), Path(tmp, "out.y4m")
            stream.write_bytes(data[HEADER.size:])
            _, self.last_child_peak_rss = run_tool(self.decoder_command(stream, out), self.timeout)
            y4m = out.read_bytes() if out.is_file() else b""
        planes = self._read_y4m(y4m, width, height)
        return ycbcr_to_rgb(planes, self.bit_depth)

    def _read_y4m(self, y4m: bytes, width: int, height: int) -> np.ndarray:
        """The planes of the decoder's one-frame Y4M file, its size checked against the container's."""
        head, _, rest = y4m.partition(b"\n")
        fields = {f[:1]: f[1:] for f in head.decode("ascii", errors="replace").split()[1:]}
        if not head.startswith(b"YUV4MPEG2 ") or not rest.startswith(b"FRAME\n"):
            raise CodecError(f"VTM decoder wrote no Y4M frame ({len(y4m)} bytes)")
        size = (fields.get("W"), fields.get("H"))
        if size != (str(width), str(height)):
            raise CodecError(f"VTM decoded a {size[0]}×{size[1]} picture but the container header says "
                             f"{width}×{height}: corrupt or mismatched stream")
        fmt = "444" if self.bit_depth == 8 else "444p10"
        if fields.get("C") != fmt:
            raise CodecError(f"VTM decoded format C{fields.get('C')}, expected C{fmt} (4:4:4, {self.bit_depth} bit)")
        dtype = np.uint8 if self.bit_depth == 8 else np.dtype("<u2")
        raw = np.frombuffer(rest[len(b"FRAME\n"):], dtype=dtype)
        expected = 3 * width * height
        if raw.size != expected:
            raise CodecError(f"VTM decoder wrote {raw.size} samples, expected {expected} for {width}×{height} 4:4:4")
        return raw.reshape(3, height, width)
