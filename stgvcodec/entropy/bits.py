"""Bit-level coding inside a symbol stream: fixed-width packing and Exp-Golomb codes.

All bit strings are MSB-first: bit t of a string is bit (7 - t % 8) of byte t // 8, and every
field is written most significant bit first. The last byte is padded with zero bits.
"""

from __future__ import annotations

import numpy as np

from stgvcodec.bitstream.errors import BitstreamError

MAX_FIXED_WIDTH = 32
"""Widest fixed-width field: the span of int32 symbols fits in 32 bits."""

MAX_EXP_GOLOMB_ZEROS = 40
"""Most leading zeros an Exp-Golomb code may have; longer prefixes mean a corrupt stream."""

_BLOCK_BYTES = 4096
"""Bytes a BitReader expands to text at a time, so memory stays bounded for any stream length."""


def fixed_width_bytes(count: int, width: int) -> int:
    """Bytes taken by `count` fields of `width` bits, padded to a whole byte."""
    return (count * width + 7) // 8


def pack_fixed(values: np.ndarray, width: int) -> bytes:
    """Packs non-negative integers into `width`-bit fields, MSB-first.

    Args:
        values: [N] integers in [0, 2**width), any integer dtype.
        width: Bits per field, 0..MAX_FIXED_WIDTH (0 gives no bytes).

    Returns:
        fixed_width_bytes(N, width) bytes.
    """
    if width == 0:
        return b""
    # Each value as 32 big-endian bits, of which the low `width` are kept: one byte per bit.
    words = values.astype(">u4").view(np.uint8).reshape(-1, 4)
    bits = np.unpackbits(words, axis=1)[:, MAX_FIXED_WIDTH - width :]  # [N, width]
    return np.packbits(bits.ravel()).tobytes()


def unpack_fixed(data: memoryview, offset: int, count: int, width: int) -> np.ndarray:
    """Inverse of pack_fixed(); the caller has checked that the bytes are in `data`.

    Returns:
        [count] int64 values.

    Raises:
        BitstreamError: If the padding bits of the last byte are not zero.
    """
    if width == 0:
        return np.zeros(count, dtype=np.int64)
    size = fixed_width_bytes(count, width)
    packed = np.frombuffer(data, dtype=np.uint8, count=size, offset=offset)
    bits = np.unpackbits(packed)
    if bits[count * width :].any():
        raise BitstreamError(f"non-zero padding bits in the byte at {offset + size - 1}")
    fields = bits[: count * width].reshape(count, width)
    padded = np.zeros((count, MAX_FIXED_WIDTH), dtype=np.uint8)
    padded[:, MAX_FIXED_WIDTH - width :] = fields
    return np.packbits(padded, axis=1).view(">u4").ravel().astype(np.int64)


class BitWriter:
    """Collects Exp-Golomb codes into an MSB-first bit string."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def exp_golomb(self, value: int, order: int) -> None:
        """Appends the Exp-Golomb code of order `order` for `value` >= 0.

        With q = (value >> order) + 1 of n bits: n - 1 zero bits, q in n bits, then the low
        `order` bits of value.
        """
        prefix = (value >> order) + 1
        self._parts.append("0" * (prefix.bit_length() - 1) + format(prefix, "b"))
        if order:
            self._parts.append(format(value & ((1 << order) - 1), f"0{order}b"))

    def to_bytes(self) -> bytes:
        """The bit string, zero-padded to a whole byte."""
        text = "".join(self._parts)
        text += "0" * (-len(text) % 8)
        return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


class BitReader:
    """Reads Exp-Golomb codes from bytes [offset, end) of a buffer the caller has bounds-checked."""

    def __init__(self, data: memoryview, offset: int, end: int) -> None:
        self._data = data
        self._start = offset
        self._end = end
        self._next = offset  # first byte not yet expanded into self._text
        self._text = ""  # bits as '0'/'1' characters, from bit self._base on
        self._base = 0  # bit index (from offset) of self._text[0]
        self._pos = 0  # bit index (from offset) of the next bit to read

    def _available(self, bits: int) -> bool:
        """Expands bytes until `bits` bits are available past the read position, if the data has them."""
        while self._base + len(self._text) - self._pos < bits and self._next < self._end:
            stop = min(self._next + _BLOCK_BYTES, self._end)
            block = np.unpackbits(np.frombuffer(self._data[self._next : stop], dtype=np.uint8))
            consumed = self._pos - self._base
            self._text = self._text[consumed:] + (block + ord("0")).tobytes().decode("ascii")
            self._base = self._pos
            self._next = stop
        return self._base + len(self._text) - self._pos >= bits

    def _bits(self, count: int, what: str) -> int:
        """Reads `count` bits as an unsigned integer."""
        if count == 0:
            return 0
        if not self._available(count):
            raise BitstreamError(f"{what}: bit data ends at byte {self._end}")
        start = self._pos - self._base
        self._pos += count
        return int(self._text[start : start + count], 2)

    def exp_golomb(self, order: int, what: str) -> int:
        """Reads one Exp-Golomb code of order `order` (see BitWriter.exp_golomb)."""
        self._available(MAX_EXP_GOLOMB_ZEROS + 1)
        start = self._pos - self._base
        one = self._text.find("1", start, start + MAX_EXP_GOLOMB_ZEROS + 1)
        if one < 0:
            byte = self._start + self._pos // 8
            raise BitstreamError(f"{what}: bad Exp-Golomb code (no 1 bit in reach) at byte {byte}")
        zeros = one - start
        self._pos += zeros
        prefix = self._bits(zeros + 1, what)
        return ((prefix - 1) << order) | self._bits(order, what)

    def finish(self, what: str) -> None:
        """Checks that the codes used every byte and that the padding bits are zero."""
        used = (self._pos + 7) // 8
        if self._start + used != self._end:
            raise BitstreamError(f"{what}: {self._end - self._start - used} unused bytes at byte {self._start + used}")
        if self._pos % 8 and self._bits(-self._pos % 8, what):
            raise BitstreamError(f"{what}: non-zero padding bits in the byte at {self._end - 1}")
