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

Codecs whose strings come nested (CompressAI's ``compress()`` returns lists of lists of bytes
and a shape) store :func:`flatten`'s layout as one more string; :func:`rebuild` restores them.
"""

from __future__ import annotations

import operator
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


# --- nested strings and shapes (CompressAI's compress() output) -----------------------------------
#: node tags of :func:`flatten`'s layout: a string (the next leaf), a list, a tuple, an integer, None
_BYTES, _LIST, _TUPLE, _INT, _NONE = b"B", b"L", b"T", b"I", b"N"
#: Deepest nesting :func:`rebuild` follows (CompressAI nests 2–3 levels).
MAX_DEPTH = 16


def flatten(value: object) -> tuple[bytes, list[bytes]]:
    """A nested value of lists, tuples, bytes, integers and None (``compress()``'s ``strings`` and
    ``shape``) as a layout and its byte strings in order, for :func:`pack`; :func:`rebuild`
    inverts it exactly (a ``torch.Size`` comes back as a tuple). ``TypeError`` for anything else."""
    layout, leaves = bytearray(), []

    def walk(v: object, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise TypeError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, (bytes, bytearray, memoryview)):
            layout.extend(_BYTES)
            leaves.append(bytes(v))
        elif isinstance(v, (list, tuple)):
            if len(v) > 0xFFFF:
                raise TypeError(f"a list of {len(v)} items is too long for the container")
            layout.extend((_LIST if isinstance(v, list) else _TUPLE) + _U16.pack(len(v)))
            for item in v:
                walk(item, depth + 1)
        elif v is None:
            layout.extend(_NONE)
        else:
            try:
                number = operator.index(v)  # int, numpy integers, 0-d integer tensors
            except TypeError:
                raise TypeError(f"cannot store a {type(v).__name__} (only lists, tuples, bytes, integers, None)") from None
            if not -(1 << 63) <= number < (1 << 63):
                raise TypeError(f"integer {number} does not fit 64 bits")
            zigzag = (number << 1) ^ (number >> 63)  # small magnitudes → few bytes (LEB128)
            layout.extend(_INT)
            while True:
                byte, zigzag = zigzag & 0x7F, zigzag >> 7
                layout.append(byte | (0x80 if zigzag else 0))
                if not zigzag:
                    break

    walk(value, 0)
    return bytes(layout), leaves


def rebuild(layout: bytes, leaves: Sequence[bytes], codec: str) -> object:
    """The value :func:`flatten` was given; :class:`CodecError` if the layout is malformed or does
    not use every leaf exactly once."""
    pos, used = 0, 0

    def node(depth: int) -> object:
        nonlocal pos, used
        if depth > MAX_DEPTH:
            raise CodecError(f"{codec}: string layout nested deeper than {MAX_DEPTH} levels")
        if pos >= len(layout):
            raise CodecError(f"{codec}: string layout ends early")
        tag = layout[pos : pos + 1]
        pos += 1
        if tag == _BYTES:
            if used >= len(leaves):
                raise CodecError(f"{codec}: string layout names more strings than the {len(leaves)} stored")
            used += 1
            return leaves[used - 1]
        if tag in (_LIST, _TUPLE):
            if pos + _U16.size > len(layout):
                raise CodecError(f"{codec}: string layout ends early")
            (n,) = _U16.unpack_from(layout, pos)
            pos += _U16.size
            items = [node(depth + 1) for _ in range(n)]
            return items if tag == _LIST else tuple(items)
        if tag == _INT:
            zigzag, shift = 0, 0
            while True:
                if pos >= len(layout) or shift > 63:
                    raise CodecError(f"{codec}: string layout ends early or holds an integer over 64 bits")
                byte = layout[pos]
                pos += 1
                zigzag |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            return (zigzag >> 1) ^ -(zigzag & 1)
        if tag == _NONE:
            return None
        raise CodecError(f"{codec}: unknown tag {tag!r} in the string layout")

    value = node(0)
    if pos != len(layout) or used != len(leaves):
        raise CodecError(f"{codec}: string layout uses {used} of {len(leaves)} strings and {pos} of "
                         f"{len(layout)} layout bytes")
    return value
