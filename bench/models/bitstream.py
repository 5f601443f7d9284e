"""The one container of every learned codec's bitstream: magic, header fields, CRC, strings.

MLIC++, MSP and the CompressAI zoo all write their rANS strings into this frame, so that
truncation and corruption are detected before any entropy decoding runs (a corrupt rANS string
decodes to garbage, or reads past its end, instead of failing):

    offset  size   field
    0       4      magic (4 ASCII bytes naming the codec family and its format, e.g. b"MSP1")
    4       4      CRC-32 (zlib) of every byte after this field, seeded with the codec's key
    8       2      header length L (uint16, big-endian)
    10      L      header fields (layout owned by the codec; see below)
    10+L    2      number of strings n (uint16)
    12+L    4·n    length of each string (uint32)
    ...            the strings, concatenated in order

Header fields are a fixed ``struct`` layout per codec whose **first field is a version byte**
(:func:`unpack_fields` checks it and the length). A codec that needs a new field (a parameter
precision, a coding mode) appends it and bumps its version; old decoders then refuse the stream
with a clear error instead of misreading it.

The CRC seed (``key``) is 0 unless the codec passes one: MLIC++ seeds it with a fingerprint of
its weights and computation layout, so "decoded with the wrong checkpoint" is a clear error too.
All bytes count toward the rate: the codec returns exactly this buffer.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from bench.errors import CodecError

_PREFIX = struct.Struct(">4sI")
_U16 = struct.Struct(">H")
#: Bytes the frame adds besides the header fields: magic, CRC, header length, string count.
FRAME_BYTES = _PREFIX.size + 2 * _U16.size


def pack(magic: bytes, header: bytes, strings: Sequence[bytes], key: int = 0) -> bytes:
    """Frame ``header`` and ``strings`` behind ``magic`` and a CRC-32 (seeded with ``key``)."""
    if len(magic) != 4:
        raise ValueError(f"magic must be 4 bytes, got {magic!r}")
    if len(header) > 0xFFFF or len(strings) > 0xFFFF:
        raise ValueError("header or string count too large for the container")
    body = bytearray(_U16.pack(len(header)))
    body += header
    body += _U16.pack(len(strings))
    body += struct.pack(f">{len(strings)}I", *(len(s) for s in strings))
    for s in strings:
        body += s
    return _PREFIX.pack(magic, zlib.crc32(body, key & 0xFFFFFFFF)) + bytes(body)


def peek(data: bytes, magic: bytes, codec: str) -> bytes:
    """The header bytes, without checking the CRC (to choose the model whose key checks it)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"{codec}: a bitstream must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < FRAME_BYTES:
        raise CodecError(f"{codec}: bitstream truncated ({len(data)} bytes is shorter than the container frame)")
    found = data[:4]
    if found != magic:
        raise CodecError(f"{codec}: not a {magic.decode(errors='replace')} bitstream (magic {found!r})")
    (header_len,) = _U16.unpack_from(data, _PREFIX.size)
    start = _PREFIX.size + _U16.size
    if start + header_len + _U16.size > len(data):
        raise CodecError(f"{codec}: header length {header_len} runs past the end of the bitstream")
    return data[start : start + header_len]


def unpack(data: bytes, magic: bytes, codec: str, key: int = 0) -> tuple[bytes, list[bytes]]:
    """Return ``(header, strings)``; raise :class:`CodecError` on any inconsistency."""
    peek(data, magic, codec)
    data = bytes(data)
    (crc,) = struct.unpack_from(">I", data, 4)
    body = data[_PREFIX.size :]
    if zlib.crc32(body, key & 0xFFFFFFFF) != crc:
        why = " or made with other weights / another computation layout" if key else ""
        raise CodecError(f"{codec}: bitstream corrupt or truncated (CRC-32 mismatch over {len(body)} bytes){why}")
    (header_len,) = _U16.unpack_from(body, 0)
    pos = _U16.size + header_len
    header = body[_U16.size : pos]
    (count,) = _U16.unpack_from(body, pos)
    pos += _U16.size
    if pos + 4 * count > len(body):
        raise CodecError(f"{codec}: string table ({count} entries) runs past the end of the bitstream")
    lengths = struct.unpack_from(f">{count}I", body, pos)
    pos += 4 * count
    if pos + sum(lengths) != len(body):
        raise CodecError(
            f"{codec}: string lengths add up to {sum(lengths)} bytes but {len(body) - pos} bytes follow"
        )
    strings = []
    for n in lengths:
        strings.append(body[pos : pos + n])
        pos += n
    return header, strings


def unpack_fields(header: bytes, layout: struct.Struct, version: int, codec: str) -> tuple:
    """Header bytes → the fields of ``layout`` (first field: the version), checked."""
    if len(header) != layout.size:
        raise CodecError(f"{codec}: header is {len(header)} bytes, expected {layout.size}")
    fields = layout.unpack(header)
    if fields[0] != version:
        raise CodecError(f"{codec}: bitstream version {fields[0]}, this decoder reads version {version}")
    return fields
