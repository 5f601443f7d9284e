"""A small checked container for learned-codec bitstreams: header + entropy-coded strings.

Every learned codec here writes its rANS strings into the same frame, so that truncation and
corruption are detected before any entropy decoding runs (a corrupt rANS string decodes to
garbage, or worse, instead of failing):

    offset  size   field
    0       4      magic (4 ASCII bytes naming the codec family, e.g. b"MSP1")
    4       4      CRC-32 (zlib) of every byte after this field
    8       2      header length L (uint16, big-endian)
    10      L      codec header (layout owned by the codec, see its module)
    10+L    2      number of strings n (uint16)
    12+L    4·n    length of each string (uint32)
    ...            the strings, concatenated in order

All bytes count toward the rate: the codec returns exactly this buffer.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from bench.errors import CodecError

_PREFIX = struct.Struct(">4sI")
_U16 = struct.Struct(">H")


def pack(magic: bytes, header: bytes, strings: Sequence[bytes]) -> bytes:
    """Frame ``header`` and ``strings`` behind ``magic`` and a CRC-32 of the rest."""
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
    return _PREFIX.pack(magic, zlib.crc32(body)) + bytes(body)


def unpack(data: bytes, magic: bytes, codec: str) -> tuple[bytes, list[bytes]]:
    """Return ``(header, strings)``; raise :class:`CodecError` on any inconsistency."""
    data = bytes(data)
    if len(data) < _PREFIX.size + 2 * _U16.size:
        raise CodecError(f"{codec}: bitstream truncated ({len(data)} bytes is shorter than the container frame)")
    found, crc = _PREFIX.unpack_from(data, 0)
    if found != magic:
        raise CodecError(f"{codec}: not a {magic.decode(errors='replace')} bitstream (magic {found!r})")
    body = data[_PREFIX.size :]
    if zlib.crc32(body) != crc:
        raise CodecError(f"{codec}: bitstream corrupt or truncated (CRC-32 mismatch over {len(body)} bytes)")
    (header_len,) = _U16.unpack_from(body, 0)
    pos = _U16.size + header_len
    if pos + _U16.size > len(body):
        raise CodecError(f"{codec}: header length {header_len} runs past the end of the bitstream")
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
