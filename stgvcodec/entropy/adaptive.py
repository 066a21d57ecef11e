"""Adaptive rANS: the ADAPTIVE coded symbol stream's words (bitstream_spec.md, "9.7 ADAPTIVE").

A static histogram costs its own bytes, which a stream of a few hundred symbols cannot repay: on
carphone at `--bpp 0.05` the Cholesky and y-position streams were stored raw, and the residual
streams of predicted GoPs spent about 40% of their bytes on histograms. The adaptive model needs
no table: every symbol is coded with the counts of the symbols before it,

    count_s = 1 + increment * (occurrences of s so far)          (s = 0 .. K - 1)
    total   = K + increment * (symbols so far)

quantized to 16-bit frequencies with integers only,

    f_s = 1 + floor(count_s * (2^16 - K) / total)                (sum f_s <= 2^16)

and the 2^16 - sum f_s left over given to the first symbol of the largest count. The coder is
rANS with a 32-bit state in [2^16, 2^32) and 16-bit words (the construction of ryg_rans's
rans_word). The encoder walks the symbols forwards once to learn each one's (cumulative)
frequency, then codes them backwards, so the decoder reads them forwards with the same counts.

Every model is rebuilt in O(K), so the cost is O(count * K); the stream format bounds the product
(MAX_WORK) so that no stream can make a decoder work longer than about a second.
"""

from __future__ import annotations

import numba
import numpy as np

PRECISION = 16
"""Frequencies sum to 2 ** PRECISION."""
STATE_LOW = 1 << 16
"""The rANS state lies in [STATE_LOW, 2 ** 32) between symbols."""
MAX_ALPHABET = 4096
"""Largest alphabet K an ADAPTIVE stream may declare."""
MAX_SHIFT = 7
"""Largest increment exponent: increment = 2 ** shift."""
MAX_WORK = 1 << 28
"""Largest count * K an ADAPTIVE stream may declare (the decoder's work, in bin updates)."""
ENCODER_SHIFTS = range(6)
"""Increments the encoder tries (1 .. 32), keeping the shortest."""

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _frequencies(counts: np.ndarray, total: int, freq: np.ndarray) -> None:
    """Fills `freq` with the quantized model of `counts` (module docstring)."""
    size = counts.shape[0]
    spread = (1 << PRECISION) - size
    used = 0
    top = 0
    for s in range(size):
        freq[s] = 1 + (counts[s] * spread) // total
        used += freq[s]
        if counts[s] > counts[top]:
            top = s
    freq[top] += (1 << PRECISION) - used


@_jit
def _encode(indices: np.ndarray, size: int, shift: int) -> np.ndarray:
    """The 16-bit words of `indices` (values in 0 .. size - 1), in the order the decoder reads them."""
    count = indices.shape[0]
    starts = np.empty(count, np.int64)
    widths = np.empty(count, np.int64)
    counts = np.ones(size, np.int64)
    freq = np.empty(size, np.int64)
    total = size
    step = 1 << shift
    for i in range(count):
        _frequencies(counts, total, freq)
        symbol = indices[i]
        start = 0
        for s in range(symbol):
            start += freq[s]
        starts[i] = start
        widths[i] = freq[symbol]
        counts[symbol] += step
        total += step
    pushed = np.empty(2 * count + 2, np.uint16)
    n = 0
    state = STATE_LOW
    for i in range(count - 1, -1, -1):
        width = widths[i]
        while state >= width << 16:
            pushed[n] = state & 0xFFFF
            n += 1
            state >>= 16
        state = ((state // width) << PRECISION) + state % width + starts[i]
    words = np.empty(n + 2, np.uint16)
    words[0] = state >> 16
    words[1] = state & 0xFFFF
    for j in range(n):
        words[2 + j] = pushed[n - 1 - j]
    return words


@_jit
def _decode(words: np.ndarray, count: int, size: int, shift: int) -> tuple:
    """Decodes `count` indices; returns (indices, status): status 0 on success, 1 if the words
    run out, 2 if words are left or the final state is not STATE_LOW, 3 if the first state is
    out of range."""
    indices = np.empty(count, np.int32)
    if words.shape[0] < 2:
        return indices, 1
    state = (np.int64(words[0]) << 16) | np.int64(words[1])
    if state < STATE_LOW:
        return indices, 3
    at = 2
    counts = np.ones(size, np.int64)
    freq = np.empty(size, np.int64)
    total = size
    step = 1 << shift
    mask = (1 << PRECISION) - 1
    for i in range(count):
        _frequencies(counts, total, freq)
        quantile = state & mask
        symbol = 0
        start = 0
        while start + freq[symbol] <= quantile:
            start += freq[symbol]
            symbol += 1
        state = freq[symbol] * (state >> PRECISION) + quantile - start
        while state < STATE_LOW:
            if at >= words.shape[0]:
                return indices, 1
            state = (state << 16) | np.int64(words[at])
            at += 1
        indices[i] = symbol
        counts[symbol] += step
        total += step
    if at != words.shape[0] or state != STATE_LOW:
        return indices, 2
    return indices, 0


def encode_words(indices: np.ndarray, size: int, shift: int) -> np.ndarray:
    """uint16 words coding `indices` (int, 0 .. size - 1) with increment 2 ** shift."""
    return _encode(np.ascontiguousarray(indices, dtype=np.int32), size, shift)


def decode_words(words: np.ndarray, count: int, size: int, shift: int) -> tuple[np.ndarray, int]:
    """(indices, status) of `count` symbols; status as in _decode (0 = valid)."""
    return _decode(np.ascontiguousarray(words, dtype=np.uint16), count, size, shift)
