"""The MLIC++ container: every byte the decoder needs, and nothing it can silently misread.

Layout (integers big-endian)::

    offset   size   field
    0        1      format byte 0xA2 (MLIC++ container, version 2: v1 had no portable flag)
    1        1      model id 0..255 (the adapter's rate-point index; picks the checkpoint)
    2        1      flags: bit 7 = encoded on CUDA; bit 6 = portable (float64 decoder path, decodes
                    alike at any thread count / on any device); bits 0..5 = torch CPU threads of
                    the encoder (1..63; a float32 decoder pins it)
    3        2      H, original image height (1..MAX_SIDE)
    5        2      W, original image width (1..MAX_SIDE)
    7        1..4   n_z = length of the z string, unsigned LEB128
    ...      n_z    z string: EntropyBottleneck rANS stream of ẑ (H/64 × W/64 after padding)
    ...      n_y    y string: one rANS stream of all 20 checkerboard parts (to the CRC)
    end-4    4      CRC-32 (zlib) of all preceding bytes, seeded with the model's stream key
                    (fingerprint of the weights and of the computation layout)

Overhead: 12 bytes (13 once the z string exceeds 127 bytes), against 28 in the official file
format (which has no checksum). The CRC costs 4 bytes (32 bits; 0.08 % of a 5 kB file) and is
needed because CompressAI's rANS decoder reads garbage without noticing, and reads past the end
of a truncated string. Seeding it with a fingerprint of the weights also turns "decoded with the
wrong checkpoint" into a clear error instead of a wrong image.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from bench.errors import CodecError

FORMAT_BYTE = 0xA2
MAX_SIDE = 16384  # a 16k×16k image needs ~60 GB of activations: larger headers are corrupt
MAX_PIXELS = 16384 * 16384
_FIXED = struct.Struct(">BBBHH")
_CRC = 4
MAX_THREADS = 0x3F  # the flags byte's thread field (a float32 stream from more threads cannot be pinned)
MIN_SIZE = _FIXED.size + 1 + _CRC
RANS_MIN_BYTES = 8  # a flushed rANS64 stream holds at least its 64-bit final state


@dataclass(frozen=True)
class Header:
    """The decoded fixed fields of a container."""

    model_id: int
    height: int
    width: int
    threads: int  # torch CPU threads of the encoder (bits of σ, μ depend on it on CPU in float32)
    cuda: bool
    portable: bool = False  # float64 decoder path (bench.models.portable): no pinning needed


def _uleb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_uleb128(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    for i in range(pos, min(end, pos + 4)):
        value |= (data[i] & 0x7F) << shift
        if not data[i] & 0x80:
            return value, i + 1
        shift += 7
    raise CodecError("MLIC++ container: bad z-string length field")


def _check_size(height: int, width: int) -> None:
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE) or height * width > MAX_PIXELS:
        raise CodecError(f"MLIC++ container: image size {height}×{width} out of range (1..{MAX_SIDE} per side)")


def pack(header: Header, z_string: bytes, y_string: bytes, fingerprint: int) -> bytes:
    """Serialise one image's strings; see the module docstring for the layout."""
    _check_size(header.height, header.width)
    if not 0 <= header.model_id <= 255:
        raise ValueError(f"model id must fit in a byte, got {header.model_id}")
    threads = min(max(int(header.threads), 1), MAX_THREADS)
    flags = (0x80 if header.cuda else 0) | (0x40 if header.portable else 0) | threads
    body = (
        _FIXED.pack(FORMAT_BYTE, header.model_id, flags, header.height, header.width)
        + _uleb128(len(z_string))
        + z_string
        + y_string
    )
    return body + struct.pack(">I", zlib.crc32(body, fingerprint & 0xFFFFFFFF))


def peek(data: bytes) -> Header:
    """Read and validate the fixed fields without checking the CRC (to choose a model)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"MLIC++ bitstream must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < MIN_SIZE:
        raise CodecError(f"MLIC++ bitstream truncated: {len(data)} bytes, a container has at least {MIN_SIZE}")
    fmt, model_id, flags, height, width = _FIXED.unpack_from(data)
    if fmt != FORMAT_BYTE:
        raise CodecError(f"not an MLIC++ container (format byte 0x{fmt:02X}, expected 0x{FORMAT_BYTE:02X})")
    _check_size(height, width)
    threads = flags & MAX_THREADS
    if threads == 0:
        raise CodecError("MLIC++ container: encoder thread count is 0")
    return Header(model_id=model_id, height=height, width=width, threads=threads, cuda=bool(flags & 0x80),
                  portable=bool(flags & 0x40))


def unpack(data: bytes, fingerprint: int) -> tuple[Header, bytes, bytes]:
    """Validate the whole container (sizes, CRC with the model fingerprint) → header, z, y."""
    header = peek(data)
    data = bytes(data)
    body, stored = data[:-_CRC], struct.unpack(">I", data[-_CRC:])[0]
    if zlib.crc32(body, fingerprint & 0xFFFFFFFF) != stored:
        raise CodecError(
            "MLIC++ bitstream checksum mismatch: the data is corrupt or truncated, "
            "or it was encoded with different weights (another checkpoint / rate point) "
            "or another computation layout (reference vs fast)"
        )
    n_z, pos = _read_uleb128(body, _FIXED.size, len(body))
    z_string, y_string = body[pos:pos + n_z], body[pos + n_z:]
    if len(z_string) != n_z:
        raise CodecError(f"MLIC++ container: z string needs {n_z} bytes, only {len(z_string)} present")
    for name, s in (("z", z_string), ("y", y_string)):
        if len(s) < RANS_MIN_BYTES or len(s) % 4:
            raise CodecError(f"MLIC++ container: {name} string of {len(s)} bytes is not a rANS64 stream")
    return header, z_string, y_string
