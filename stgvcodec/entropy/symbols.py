"""Coded symbol streams: int32 arrays <-> self-describing bytes (bitstream_spec.md, "Coded symbol stream").

    symbols --+--> histogram over [min, max] --> Categorical(counts) --> ANS words ----+
              +--> counts learned symbol by symbol (adaptive.py) --> 16-bit rANS words -+--> shortest
              +--> (symbol - min) in the fewest bits ---------------------------------+    stream

Every coding is built for every array and the shortest one is kept (raw on a tie, as it is
fastest to decode, then ANS). Both models are built only from integers the stream holds or has
decoded, so the decoder rebuilds exactly the encoder's model on any machine. The adaptive coding
exists from bitstream version 6 on; `adaptive=False` keeps to the codings before it.
"""

from __future__ import annotations

from enum import IntEnum

import constriction
import numpy as np

from stgvcodec.bitstream.errors import BitstreamError
from stgvcodec.entropy.bits import MAX_FIXED_WIDTH, fixed_width_bytes, pack_fixed, unpack_fixed
from stgvcodec.entropy.histogram import decode_histogram, encode_histogram
from stgvcodec.entropy.varint import read_uvarint, unzigzag, write_uvarint, zigzag

MAX_ALPHABET = 1 << 16
"""Largest histogram (max - min + 1) an ANS stream may declare. It covers every 8- and 16-bit
quantity, and bounds the per-bin histogram parse (a Python loop, about 0.1 s at this size) and
the model a decoder builds; wider spans are coded raw. constriction's 24-bit models would allow
up to 2**24 - 2 symbols."""

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class SymbolCoding(IntEnum):
    """Mode byte: the first byte of every coded symbol stream."""

    RAW = 0
    """Fixed-width bit packing of symbol - min."""
    ANS = 1
    """Histogram plus constriction ANS words."""
    ADAPTIVE = 2
    """Adaptive counts plus 16-bit rANS words (bitstream version 6 on)."""


def _as_int32(symbols: np.ndarray) -> np.ndarray:
    """Flattens to int32, refusing values that int32 cannot hold (a silent wrap would corrupt data)."""
    array = np.asarray(symbols).ravel()
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"symbols must be integers, got {array.dtype}")
    if array.size and (array.min() < INT32_MIN or array.max() > INT32_MAX):
        raise ValueError(f"symbols outside int32: [{array.min()}, {array.max()}]")
    return array.astype(np.int32)


def _categorical(counts: np.ndarray) -> constriction.stream.model.Categorical:
    """The ANS model: exact integer counts as float64, quantized by constriction (perfect=False)."""
    return constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False)


def _encode_raw(symbols: np.ndarray, low: int, high: int) -> bytes:
    """RAW stream of a non-empty int32 array with the given min and max."""
    width = (high - low).bit_length()
    offsets = symbols.astype(np.int64) - low
    head = bytes([SymbolCoding.RAW]) + write_uvarint(len(symbols)) + write_uvarint(zigzag(low))
    return head + bytes([width]) + pack_fixed(offsets, width)


def _encode_ans(symbols: np.ndarray, low: int, high: int) -> bytes:
    """ANS stream of an int32 array with at least two distinct values and a span <= MAX_ALPHABET."""
    size = high - low + 1
    indices = (symbols.astype(np.int64) - low).astype(np.int32)
    counts = np.bincount(indices, minlength=size).astype(np.int64)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(indices, _categorical(counts))
    words = coder.get_compressed().astype("<u4")
    histogram = encode_histogram(counts)
    head = bytes([SymbolCoding.ANS]) + write_uvarint(len(symbols)) + write_uvarint(zigzag(low))
    head += write_uvarint(size - 2) + write_uvarint(len(histogram)) + histogram
    return head + write_uvarint(len(words)) + words.tobytes()


def _encode_adaptive(symbols: np.ndarray, low: int, high: int) -> bytes | None:
    """The shortest ADAPTIVE stream over the encoder's increments, or None where the stream's
    alphabet or work would exceed the format's limits."""
    from stgvcodec.entropy import adaptive as adaptive_coder  # numba: imported on first use

    size = high - low + 1
    if size > adaptive_coder.MAX_ALPHABET or len(symbols) * size > adaptive_coder.MAX_WORK:
        return None
    indices = (symbols.astype(np.int64) - low).astype(np.int32)
    shift, words = min(
        ((shift, adaptive_coder.encode_words(indices, size, shift)) for shift in adaptive_coder.ENCODER_SHIFTS),
        key=lambda pair: len(pair[1]),
    )
    head = bytes([SymbolCoding.ADAPTIVE]) + write_uvarint(len(symbols)) + write_uvarint(zigzag(low))
    head += write_uvarint(size - 2) + bytes([shift]) + write_uvarint(len(words))
    return head + words.astype("<u2").tobytes()


def encode_symbols(symbols: np.ndarray, *, adaptive: bool = True) -> bytes:
    """Codes an integer array as a self-describing stream (mode byte first).

    Args:
        symbols: Any integer array with values in int32; it is flattened in C order.
        adaptive: Whether the ADAPTIVE coding may be chosen (bitstream version 6 on).

    Returns:
        The shortest of the RAW, ANS and ADAPTIVE streams (RAW, then ANS, on a tie).

    Raises:
        TypeError: If `symbols` is not an integer array.
        ValueError: If a value does not fit in int32.
    """
    array = _as_int32(symbols)
    if array.size == 0:
        return bytes([SymbolCoding.RAW]) + write_uvarint(0)
    low, high = int(array.min()), int(array.max())
    raw = _encode_raw(array, low, high)
    if high == low or high - low + 1 > MAX_ALPHABET:
        return raw
    best = raw
    for coded in (_encode_ans(array, low, high), _encode_adaptive(array, low, high) if adaptive else None):
        if coded is not None and len(coded) < len(best):
            best = coded
    return best


def _need(data: memoryview, offset: int, size: int, what: str) -> None:
    """Checks that `size` bytes from `offset` lie inside the buffer, before anything is allocated."""
    if size > len(data) - offset:
        raise BitstreamError(f"{what}: needs {size} bytes at byte {offset}, buffer has {len(data) - offset}")


def _read_min(data: memoryview, offset: int) -> tuple[int, int]:
    """Reads the zigzag varint min symbol, checked to lie in int32."""
    code, end = read_uvarint(data, offset, "min symbol")
    low = unzigzag(code)
    if not INT32_MIN <= low <= INT32_MAX:
        raise BitstreamError(f"min symbol {low} outside int32 at byte {offset}")
    return low, end


def _decode_raw(data: memoryview, offset: int, count: int) -> tuple[np.ndarray, int]:
    """Reads the RAW body after the count; returns symbols and the end offset."""
    if count == 0:
        return np.zeros(0, dtype=np.int32), offset
    low, offset = _read_min(data, offset)
    _need(data, offset, 1, "raw width")
    width = data[offset]
    if width > MAX_FIXED_WIDTH:
        raise BitstreamError(f"raw width {width} > {MAX_FIXED_WIDTH} at byte {offset}")
    offset += 1
    size = fixed_width_bytes(count, width)
    _need(data, offset, size, f"raw symbols ({count} x {width} bits)")
    values = unpack_fixed(data, offset, count, width) + low
    if values.size and values.max() > INT32_MAX:
        raise BitstreamError(f"raw symbols exceed int32 at byte {offset}")
    return values.astype(np.int32), offset + size


def _decode_ans(data: memoryview, offset: int, count: int) -> tuple[np.ndarray, int]:
    """Reads the ANS body after the count; returns symbols and the end offset."""
    low, offset = _read_min(data, offset)
    start = offset
    size_code, offset = read_uvarint(data, offset, "alphabet size")
    size = size_code + 2
    if size > MAX_ALPHABET or low + size - 1 > INT32_MAX:
        raise BitstreamError(f"alphabet of {size} symbols from {low} exceeds the limit at byte {start}")
    histogram_bytes, offset = read_uvarint(data, offset, "histogram length")
    _need(data, offset, histogram_bytes, "histogram")
    counts = decode_histogram(data, offset, offset + histogram_bytes, size, count)
    offset += histogram_bytes
    word_count, words_at = read_uvarint(data, offset, "ANS word count")
    _need(data, words_at, 4 * word_count, "ANS words")
    words = np.frombuffer(data, dtype="<u4", count=word_count, offset=words_at).astype(np.uint32)
    if word_count and words[-1] == 0:
        raise BitstreamError(f"ANS words end in a zero word at byte {words_at + 4 * word_count - 4}")
    coder = constriction.stream.stack.AnsCoder(words)
    indices = coder.decode(_categorical(counts), count)
    # constriction decodes any words without complaint; leftover words or a histogram that does
    # not match the decoded symbols are how a corrupt stream shows itself here.
    if coder.num_words() or not np.array_equal(np.bincount(indices, minlength=size), counts):
        raise BitstreamError(f"ANS words at byte {words_at} do not decode to the stored histogram")
    return (indices.astype(np.int64) + low).astype(np.int32), words_at + 4 * word_count


_ADAPTIVE_FAULTS = {
    1: "ADAPTIVE words run out before the last symbol",
    2: "ADAPTIVE words do not end in the final state",
    3: "ADAPTIVE first state below 65536",
}


def _decode_adaptive(data: memoryview, offset: int, count: int) -> tuple[np.ndarray, int]:
    """Reads the ADAPTIVE body after the count; returns symbols and the end offset."""
    from stgvcodec.entropy import adaptive as adaptive_coder  # numba: imported on first use

    low, offset = _read_min(data, offset)
    start = offset
    size_code, offset = read_uvarint(data, offset, "alphabet size")
    size = size_code + 2
    if size > adaptive_coder.MAX_ALPHABET or low + size - 1 > INT32_MAX:
        raise BitstreamError(f"ADAPTIVE alphabet of {size} symbols from {low} exceeds the limit at byte {start}")
    if count * size > adaptive_coder.MAX_WORK:
        raise BitstreamError(f"ADAPTIVE stream of {count} symbols x {size} exceeds the work limit at byte {start}")
    _need(data, offset, 1, "ADAPTIVE increment")
    shift = data[offset]
    if shift > adaptive_coder.MAX_SHIFT:
        raise BitstreamError(f"ADAPTIVE increment exponent {shift} > {adaptive_coder.MAX_SHIFT} at byte {offset}")
    word_count, words_at = read_uvarint(data, offset + 1, "ADAPTIVE word count")
    _need(data, words_at, 2 * word_count, "ADAPTIVE words")
    words = np.frombuffer(data, dtype="<u2", count=word_count, offset=words_at)
    indices, status = adaptive_coder.decode_words(words, count, size, shift)
    if status:
        raise BitstreamError(f"{_ADAPTIVE_FAULTS[status]} at byte {words_at}")
    if count < 2 or indices.min() != 0 or indices.max() != size - 1:
        raise BitstreamError(f"ADAPTIVE symbols do not span the declared alphabet at byte {start}")
    return (indices.astype(np.int64) + low).astype(np.int32), words_at + 2 * word_count


def _stream_head(data: bytes | bytearray | memoryview, offset: int, adaptive: bool) -> tuple[memoryview, int, int, int]:
    """(the buffer as bytes, mode, count, offset after the count) of the stream at `offset`."""
    view = memoryview(data).cast("B")
    _need(view, offset, 1, "mode byte")
    mode = view[offset]
    if mode not in SymbolCoding._value2member_map_ or (mode == SymbolCoding.ADAPTIVE and not adaptive):
        raise BitstreamError(f"unknown symbol coding mode {mode} at byte {offset}")
    count, at = read_uvarint(view, offset + 1, "symbol count")
    return view, mode, count, at


def stream_end(data: bytes | bytearray | memoryview, offset: int = 0, *, adaptive: bool = True) -> int:
    """Where the coded stream at `offset` ends, read from its fields alone: no symbol is decoded and
    nothing sized by a declared length is allocated. decode_symbols() of a valid stream ends there.

    Raises:
        BitstreamError: for an unknown mode (ADAPTIVE when `adaptive` is False), a malformed
            varint, a RAW width above 32, or a stream that runs past the buffer.
    """
    view, mode, count, at = _stream_head(data, offset, adaptive)
    if mode == SymbolCoding.RAW and count == 0:
        return at
    _, at = _read_min(view, at)
    if mode == SymbolCoding.RAW:
        _need(view, at, 1, "raw width")
        if view[at] > MAX_FIXED_WIDTH:
            raise BitstreamError(f"raw width {view[at]} > {MAX_FIXED_WIDTH} at byte {at}")
        size, at = fixed_width_bytes(count, view[at]), at + 1
    elif mode == SymbolCoding.ANS:
        _, at = read_uvarint(view, at, "alphabet size")
        histogram_bytes, at = read_uvarint(view, at, "histogram length")
        _need(view, at, histogram_bytes, "histogram")
        word_count, at = read_uvarint(view, at + histogram_bytes, "ANS word count")
        size = 4 * word_count
    else:
        _, at = read_uvarint(view, at, "alphabet size")
        _need(view, at, 1, "ADAPTIVE increment")
        word_count, at = read_uvarint(view, at + 1, "ADAPTIVE word count")
        size = 2 * word_count
    _need(view, at, size, "stream data")
    return at + size


def decode_symbols(
    data: bytes | bytearray | memoryview, offset: int = 0, *, max_count: int, adaptive: bool = True
) -> tuple[np.ndarray, int]:
    """Decodes one stream written by encode_symbols().

    Args:
        data: Buffer holding the stream (and possibly more after it).
        offset: Byte offset of the stream's mode byte.
        max_count: Most symbols the caller accepts; larger declared counts are rejected
            before anything is allocated.
        adaptive: Whether the ADAPTIVE coding is valid here (bitstream version 6 on); where it
            is not, its mode byte is rejected like any unknown one.

    Returns:
        [count] int32 symbols and the offset just after the stream.

    Raises:
        BitstreamError: If the stream is malformed, truncated or exceeds a limit; the message
            names the field and the byte offset.
    """
    view, mode, count, body = _stream_head(data, offset, adaptive)
    if count > max_count:
        raise BitstreamError(f"symbol count {count} exceeds the limit {max_count} at byte {offset + 1}")
    if mode == SymbolCoding.RAW:
        return _decode_raw(view, body, count)
    if mode == SymbolCoding.ADAPTIVE:
        return _decode_adaptive(view, body, count)
    return _decode_ans(view, body, count)
