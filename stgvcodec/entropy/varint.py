"""LEB128 varints and zigzag mapping: the byte-level integers of a coded symbol stream.

A varint stores 7 bits per byte, least significant group first; the high bit of a byte says
another byte follows. Small numbers (counts, lengths) then cost one or two bytes instead of four.
"""

from __future__ import annotations

from stgvcodec.bitstream.errors import BitstreamError

MAX_VARINT_BYTES = 10
"""Longest varint a reader accepts (enough for any value below 2**64)."""


def write_uvarint(value: int) -> bytes:
    """Encodes a non-negative integer below 2**64 as a LEB128 varint.

    Raises:
        ValueError: If `value` is negative or too large.
    """
    if not 0 <= value < 1 << 64:
        raise ValueError(f"varint value out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_uvarint(data: memoryview, offset: int, what: str) -> tuple[int, int]:
    """Reads one LEB128 varint.

    Args:
        data: The buffer.
        offset: Byte offset of the varint in `data`.
        what: Name of the field, for error messages.

    Returns:
        The value and the offset just after the varint.

    Raises:
        BitstreamError: If the buffer ends inside the varint, or the varint is longer than
            MAX_VARINT_BYTES or not in its shortest form (a final 0x00 byte after the first).
    """
    value = 0
    for index in range(MAX_VARINT_BYTES):
        position = offset + index
        if position >= len(data):
            raise BitstreamError(f"{what}: data ends inside a varint at byte {offset}")
        byte = data[position]
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            # A trailing zero group would give the same value a second spelling; one spelling
            # per value keeps streams canonical, so that equal content means equal bytes.
            if byte == 0 and index > 0:
                raise BitstreamError(f"{what}: varint not in shortest form at byte {offset}")
            return value, position + 1
    raise BitstreamError(f"{what}: varint longer than {MAX_VARINT_BYTES} bytes at byte {offset}")


def zigzag(value: int) -> int:
    """Maps a signed int32 to a non-negative integer: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    return 2 * value if value >= 0 else -2 * value - 1


def unzigzag(value: int) -> int:
    """Inverse of zigzag()."""
    return value >> 1 if value % 2 == 0 else -((value + 1) >> 1)
