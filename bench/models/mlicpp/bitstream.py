"""MLIC++'s header fields in the shared learned-codec container (:mod:`bench.models.bitstream`).

Magic ``b"MLIC"``; header fields (big-endian)::

    version u8 (2) | model id u8 | mode u8 | flags u8 | H u16 | W u16

* model id 0..255: the adapter's rate-point index (picks the checkpoint);
* mode: the encoder's computation mode (0 = fast float32 with direct convolutions, 1 =
  reference, 2 = portable: the float64 decoder path of :mod:`bench.models.portable`, which
  decodes to the same image at any thread count, 3 = fast float32 with Winograd convolutions
  (:mod:`bench.models.winograd`); further values are free for new numerics);
* flags: bit 7 = encoded on CUDA; bits 0..6 = torch CPU threads of the encoder (1..127; a
  float32 decoder pins it, a portable one ignores it);
* H, W: the original image size (1..MAX_SIDE).

Strings: the z string (EntropyBottleneck rANS stream of ẑ, H/64 × W/64 after padding), then the
y string (one rANS stream of all 20 checkerboard parts). The CRC-32 is seeded with the model's
stream key (fingerprint of the weights and of the computation layout), so a stream decoded with
other weights or another layout is refused instead of decoding to garbage. The frame costs 28
bytes (the official file format also spends 28, without a checksum).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bench.errors import CodecError
from bench.models import bitstream

MAGIC = b"MLIC"
VERSION = 2
MODE_FAST, MODE_REFERENCE, MODE_PORTABLE, MODE_FAST_WINOGRAD = 0, 1, 2, 3
MODE_NAMES = {MODE_FAST: "fast float32 (direct convolutions)", MODE_REFERENCE: "reference",
              MODE_PORTABLE: "portable (float64)", MODE_FAST_WINOGRAD: "fast float32 (Winograd)"}
#: CRC seed per computation mode (XORed with the weights' fingerprint): streams never mix modes
MODE_KEYS = {MODE_FAST: 0, MODE_REFERENCE: 0x5EF0_0001, MODE_PORTABLE: 0x5EF0_0002, MODE_FAST_WINOGRAD: 0x5EF0_0003}
MAX_SIDE = 16384  # a 16k×16k image needs ~60 GB of activations: larger headers are corrupt
MAX_PIXELS = 16384 * 16384
_FIELDS = struct.Struct(">BBBBHH")
RANS_MIN_BYTES = 8  # a flushed rANS64 stream holds at least its 64-bit final state
#: Bytes a stream spends besides its two rANS strings.
OVERHEAD = bitstream.FRAME_BYTES + _FIELDS.size + 2 * 4
_NAME = "MLIC++"


@dataclass(frozen=True)
class Header:
    """The decoded header fields of an MLIC++ stream."""

    model_id: int
    height: int
    width: int
    threads: int  # torch CPU threads of the encoder (bits of σ, μ depend on it on CPU in float32)
    cuda: bool
    mode: int = 0  # MODE_FAST, MODE_REFERENCE, MODE_PORTABLE or MODE_FAST_WINOGRAD

    @property
    def portable(self) -> bool:
        """Coded on the float64 decoder path (bench.models.portable): decodes alike anywhere, no pinning."""
        return self.mode == MODE_PORTABLE


def _check_size(height: int, width: int) -> None:
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE) or height * width > MAX_PIXELS:
        raise CodecError(f"MLIC++ container: image size {height}×{width} out of range (1..{MAX_SIDE} per side)")


def pack(header: Header, z_string: bytes, y_string: bytes, fingerprint: int) -> bytes:
    """Serialise one image's strings; see the module docstring for the fields."""
    _check_size(header.height, header.width)
    if not 0 <= header.model_id <= 255 or not 0 <= header.mode <= 255:
        raise ValueError(f"model id and mode must fit in a byte, got {header.model_id}, {header.mode}")
    threads = min(max(int(header.threads), 1), 127)
    flags = (0x80 if header.cuda else 0) | threads
    fields = _FIELDS.pack(VERSION, header.model_id, header.mode, flags, header.height, header.width)
    return bitstream.pack(MAGIC, fields, [z_string, y_string], fingerprint)


def _header(raw: bytes) -> Header:
    _, model_id, mode, flags, height, width = bitstream.unpack_fields(raw, _FIELDS, VERSION, _NAME)
    _check_size(height, width)
    if flags & 0x7F == 0:
        raise CodecError("MLIC++ container: encoder thread count is 0")
    return Header(model_id, height, width, flags & 0x7F, bool(flags & 0x80), mode)


def peek(data: bytes) -> Header:
    """Read and validate the header fields without checking the CRC (to choose a model)."""
    return _header(bitstream.peek(data, MAGIC, _NAME))


def unpack(data: bytes, fingerprint: int) -> tuple[Header, bytes, bytes]:
    """Validate the whole stream (frame, CRC with the model's key, strings) → header, z, y."""
    peek(data)
    raw, strings = bitstream.unpack(data, MAGIC, _NAME, fingerprint)
    header = _header(raw)
    if len(strings) != 2:
        raise CodecError(f"MLIC++ container: {len(strings)} strings, expected 2 (z, y)")
    for name, s in zip("zy", strings):
        if len(s) < RANS_MIN_BYTES or len(s) % 4:
            raise CodecError(f"MLIC++ container: {name} string of {len(s)} bytes is not a rANS64 stream")
    return header, strings[0], strings[1]
