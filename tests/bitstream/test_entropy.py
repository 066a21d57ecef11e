"""Coded symbol streams: round trips, mode choice, a decoder written from the spec, and bad input."""

import bisect
import struct
import tracemalloc

import numpy as np
import pytest

from stgvcodec.bitstream import BitstreamError
from stgvcodec.entropy import MAX_ALPHABET, SymbolCoding, adaptive, decode_symbols, encode_symbols
from stgvcodec.entropy.histogram import encode_histogram
from stgvcodec.entropy.varint import write_uvarint, zigzag

INT32 = np.iinfo(np.int32)


def _laplacian(rng, count, scale):
    return np.clip(np.round(rng.laplace(0, scale, count)), -128, 127).astype(np.int64)


def _round_trip(symbols, max_count=None):
    data = encode_symbols(symbols)
    decoded, end = decode_symbols(data, max_count=symbols.size if max_count is None else max_count)
    assert end == len(data)
    assert decoded.dtype == np.int32
    np.testing.assert_array_equal(decoded, np.asarray(symbols).ravel())
    return data


EDGE_CASES = {
    "empty": np.zeros(0, dtype=np.int32),
    "one symbol": np.array([7]),
    "one distinct value": np.full(100, -5),
    "two values": np.array([0, 1] * 50),
    "negative": np.array([-3, -1, -2, -3, -3, -1]),
    "int32 extremes": np.array([INT32.min, INT32.max, 0, INT32.min]),
    "int32 min only": np.full(3, INT32.min),
    "int32 max only": np.full(3, INT32.max),
    "span above MAX_ALPHABET": np.array([0, MAX_ALPHABET, 1, 0, 0] * 20),
    "span at MAX_ALPHABET": np.concatenate([np.zeros(3000, dtype=np.int64), [MAX_ALPHABET - 1]]),
    "2-d uint8": np.arange(60, dtype=np.uint8).reshape(6, 10) % 7,
    "int64 in range": np.array([2**31 - 1, -(2**31)], dtype=np.int64),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_round_trip_edge_cases(name):
    _round_trip(EDGE_CASES[name])


def test_round_trip_random_arrays():
    rng = np.random.default_rng(1)
    for trial in range(150):
        count = int(rng.choice([1, 2, 3, 10, 100, 1000, 5000]))
        kind = trial % 5
        if kind == 0:
            symbols = rng.integers(-(2**31), 2**31, count)
        elif kind == 1:
            symbols = _laplacian(rng, count, rng.uniform(0.1, 20))
        elif kind == 2:
            symbols = rng.integers(0, int(rng.integers(1, 300)), count) + int(rng.integers(-1000, 1000))
        elif kind == 3:
            symbols = rng.choice([-7, 0, 3, 10_000], count, p=[0.1, 0.7, 0.15, 0.05])
        else:
            symbols = rng.geometric(rng.uniform(0.01, 0.9), count)
        _round_trip(symbols)


def test_streams_decode_back_to_back_from_an_offset():
    rng = np.random.default_rng(2)
    arrays = [_laplacian(rng, 500, 3), np.zeros(0, dtype=np.int32), rng.integers(0, 9, 40), np.full(5, 9)]
    buffer = b"prefix" + b"".join(encode_symbols(array) for array in arrays) + b"suffix"
    offset = len(b"prefix")
    for array in arrays:
        decoded, offset = decode_symbols(buffer, offset, max_count=1000)
        np.testing.assert_array_equal(decoded, array)
    assert buffer[offset:] == b"suffix"


def test_mode_choice():
    rng = np.random.default_rng(3)
    constant = encode_symbols(np.full(10_000, 42))
    assert constant[0] == SymbolCoding.RAW and len(constant) == 1 + 2 + 1 + 1  # mode, count, min, width 0
    peaked = _laplacian(rng, 48_000, 6)
    assert encode_symbols(peaked)[0] == SymbolCoding.ADAPTIVE
    assert encode_symbols(peaked, adaptive=False)[0] == SymbolCoding.ANS
    peaked[0] = 5000  # an alphabet beyond ADAPTIVE's 4096
    assert encode_symbols(peaked)[0] == SymbolCoding.ANS
    assert encode_symbols(rng.integers(INT32.min, INT32.max, 1000))[0] == SymbolCoding.RAW
    assert encode_symbols(np.zeros(0, dtype=np.int32)) == bytes([SymbolCoding.RAW, 0])
    # A few hundred peaked symbols: a histogram costs more than it saves, a learned model does not.
    small = _laplacian(rng, 300, 6)
    assert encode_symbols(small)[0] == SymbolCoding.ADAPTIVE
    assert encode_symbols(small, adaptive=False)[0] in (SymbolCoding.RAW, SymbolCoding.ANS)
    assert len(encode_symbols(small)) < 0.95 * len(encode_symbols(small, adaptive=False))  # 211 against 224 bytes


def test_adaptive_round_trips():
    rng = np.random.default_rng(11)
    cases = [
        np.array([0, 1]),
        np.array([5, -3, 5, 5]),
        rng.integers(0, 4096, 300),  # the largest alphabet
        _laplacian(rng, 2000, 2),
        np.concatenate([np.zeros(500, np.int64), np.arange(40)]),  # a skewed start, then novelties
        rng.choice(64, 5000, p=rng.dirichlet(np.full(64, 0.2))),
    ]
    for symbols in cases:
        for shift in range(adaptive.MAX_SHIFT + 1):
            low = int(symbols.min())
            size = int(symbols.max()) - low + 1
            words = adaptive.encode_words(symbols - low, size, shift)
            decoded, status = adaptive.decode_words(words, len(symbols), size, shift)
            assert status == 0 and np.array_equal(decoded, symbols - low)
        data = encode_symbols(symbols)
        decoded, end = decode_symbols(data, max_count=len(symbols))
        assert end == len(data) and np.array_equal(decoded, symbols)


def test_adaptive_needs_version_6():
    data = encode_symbols(_laplacian(np.random.default_rng(12), 300, 6))
    assert data[0] == SymbolCoding.ADAPTIVE
    with pytest.raises(BitstreamError, match="unknown symbol coding mode 2 at byte 0"):
        decode_symbols(data, max_count=1000, adaptive=False)


def test_compact_histogram_of_a_peaked_distribution():
    """Guards the measured overhead in bitstream_spec.md: one byte per bin would be over 170 bytes."""
    counts = np.bincount(_laplacian(np.random.default_rng(4), 48_000, 6) + 128)
    counts = counts[np.flatnonzero(counts)[0] :]
    assert len(encode_histogram(counts)) < 120


def test_sparse_histogram_uses_zero_runs():
    counts = np.zeros(MAX_ALPHABET, dtype=np.int64)
    counts[[0, 1000, 50_000, MAX_ALPHABET - 1]] = [100, 5, 7, 1]
    assert len(encode_histogram(counts)) < 20  # against 8 KiB at one bit per bin


def test_rejects_non_integers_and_out_of_range():
    with pytest.raises(TypeError):
        encode_symbols(np.array([0.5, 1.0]))
    with pytest.raises(ValueError):
        encode_symbols(np.array([2**31]))


# A decoder written from bitstream_spec.md alone ("Coded symbol stream"), in plain Python, so that
# the spec and the code are checked against each other.


def _spec_varint(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _spec_signed(code):
    return code >> 1 if code % 2 == 0 else -((code + 1) >> 1)


def _spec_bits(data):
    return "".join(format(byte, "08b") for byte in data)


def _spec_exp_golomb(bits, pos, order):
    zeros = bits.index("1", pos) - pos
    prefix = int(bits[pos + zeros : pos + 2 * zeros + 1], 2)
    pos += 2 * zeros + 1
    low = int(bits[pos : pos + order], 2) if order else 0
    return ((prefix - 1) << order) | low, pos + order


def _spec_histogram(bits, size, total):
    counts, pos, index, previous = [0] * size, 0, 0, 0
    while index < size - 1:
        counts[index], pos = _spec_exp_golomb(bits, pos, previous.bit_length())
        previous = counts[index]
        index += 1
        if previous == 0:
            run, pos = _spec_exp_golomb(bits, pos, 0)
            index += run
    counts[size - 1] = total - sum(counts)
    return counts


def _spec_cdf(counts):
    size, total = len(counts), float(sum(counts))
    scale = float(2**24 - size) / total
    cdf, running = [], 0.0
    for index, count in enumerate(counts):
        cdf.append(int(running * scale) + index)
        running += float(count)
    return cdf + [2**24]


def _spec_ans(words, cdf, count):
    state, next_word = 0, len(words) - 1
    if words:
        state, next_word = words[-1], len(words) - 2
        if next_word >= 0:
            state, next_word = (state << 32) | words[next_word], next_word - 1
    symbols = []
    for _ in range(count):
        quantile = state & (2**24 - 1)
        symbol = bisect.bisect_right(cdf, quantile) - 1
        state = (state >> 24) * (cdf[symbol + 1] - cdf[symbol]) + quantile - cdf[symbol]
        if state < 2**32 and next_word >= 0:
            state, next_word = (state << 32) | words[next_word], next_word - 1
        symbols.append(symbol)
    assert state == 0 and next_word == -1
    return symbols


def _spec_adaptive(words, count, size, increment):
    assert len(words) >= 2
    state, next_word = (words[0] << 16) | words[1], 2
    assert state >= 65536
    occurrences, symbols = [0] * size, []
    for i in range(count):
        n = [1 + increment * m for m in occurrences]
        total = size + increment * i
        f = [1 + n_s * (65536 - size) // total for n_s in n]
        f[n.index(max(n))] += 65536 - sum(f)
        c = [sum(f[:s]) for s in range(size + 1)]
        q = state % 65536
        s = bisect.bisect_right(c, q) - 1
        state = f[s] * (state >> 16) + q - c[s]
        while state < 65536:
            state, next_word = (state << 16) | words[next_word], next_word + 1
        symbols.append(s)
        occurrences[s] += 1
    assert next_word == len(words) and state == 65536 and 0 in symbols and size - 1 in symbols
    return symbols


def _spec_decode(data):
    mode, (count, pos) = data[0], _spec_varint(data, 1)
    if count == 0:
        return []
    code, pos = _spec_varint(data, pos)
    low = _spec_signed(code)
    if mode == 2:
        size_code, pos = _spec_varint(data, pos)
        increment = 2 ** data[pos]
        word_count, pos = _spec_varint(data, pos + 1)
        words = list(struct.unpack_from(f"<{word_count}H", data, pos))
        return [low + symbol for symbol in _spec_adaptive(words, count, size_code + 2, increment)]
    if mode == 0:
        width = data[pos]
        bits = _spec_bits(data[pos + 1 : pos + 1 + (count * width + 7) // 8])
        return [low + int(bits[i * width : (i + 1) * width] or "0", 2) for i in range(count)]
    size_code, pos = _spec_varint(data, pos)
    histogram_bytes, pos = _spec_varint(data, pos)
    counts = _spec_histogram(_spec_bits(data[pos : pos + histogram_bytes]), size_code + 2, count)
    word_count, pos = _spec_varint(data, pos + histogram_bytes)
    words = list(struct.unpack_from(f"<{word_count}I", data, pos))
    return [low + symbol for symbol in _spec_ans(words, _spec_cdf(counts), count)]


def test_decoder_written_from_the_spec_agrees():
    rng = np.random.default_rng(5)
    cases = [
        _laplacian(rng, 3000, 4),
        rng.choice(64, 2000, p=rng.dirichlet(np.ones(64))),
        np.array([-5, 300, -5, -5, 300, -5, 100]),
        rng.integers(-3, 4, 1500),
        rng.integers(INT32.min, INT32.max, 50),
        np.full(20, 3),
        _laplacian(rng, 300, 6),
        rng.integers(-20, 20, 200) * (rng.random(200) < 0.2),
        np.concatenate([_laplacian(rng, 3000, 4), [5000]]),
    ]
    modes = set()
    for symbols in cases:
        data = encode_symbols(symbols)
        modes.add(data[0])
        assert _spec_decode(data) == symbols.tolist()
    assert modes == {SymbolCoding.RAW, SymbolCoding.ANS, SymbolCoding.ADAPTIVE}


# Bad input: always BitstreamError, never another exception, never a large allocation.


def _ans_stream():
    return encode_symbols(_laplacian(np.random.default_rng(6), 400, 3))


def _adaptive_stream():
    data = encode_symbols(_laplacian(np.random.default_rng(13), 300, 6))
    assert data[0] == SymbolCoding.ADAPTIVE
    return data


def test_truncation_at_every_byte_raises_bitstream_error():
    for data in (_ans_stream(), encode_symbols(np.arange(50) % 11 * 1000), _adaptive_stream()):
        for end in range(len(data)):
            with pytest.raises(BitstreamError):
                decode_symbols(data[:end], max_count=10_000)


@pytest.mark.parametrize("stream", [_ans_stream, _adaptive_stream])
def test_corrupt_bytes_raise_bitstream_error_or_decode(stream):
    data = stream()
    rng = np.random.default_rng(7)
    caught = 0
    for _ in range(300):
        corrupt = bytearray(data)
        corrupt[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        try:
            decode_symbols(bytes(corrupt), max_count=10_000)
        except BitstreamError:
            caught += 1
    assert caught > 250  # CRCs of the container catch the rest


def _header(mode, count, low=0):
    return bytes([mode]) + write_uvarint(count) + write_uvarint(zigzag(low))


def _adaptive_body(symbols, size, extra=0):
    """An ADAPTIVE stream of `symbols` over an alphabet of `size` whose words decode correctly,
    followed by `extra` zero words."""
    words = adaptive.encode_words(np.array(symbols), size, 0).tolist() + [0] * extra
    body = _header(2, len(symbols)) + write_uvarint(size - 2) + bytes([0]) + write_uvarint(len(words))
    return body + struct.pack(f"<{len(words)}H", *words)


def test_adaptive_work_is_bounded():
    count = adaptive.MAX_WORK // adaptive.MAX_ALPHABET + 1
    with pytest.raises(BitstreamError, match=f"ADAPTIVE stream of {count} symbols x 4096 exceeds the work limit at byte 5"):
        decode_symbols(_header(2, count) + write_uvarint(adaptive.MAX_ALPHABET - 2), max_count=count)


@pytest.mark.parametrize(
    "data,message",
    [
        (bytes([7, 1]), "mode"),
        (b"", "mode byte"),
        (bytes([0]) + write_uvarint(2**40), "exceeds the limit"),
        (bytes([0, 0x80, 0x00]), "shortest form"),
        (bytes([0]) + b"\xff" * 11, "longer than"),
        (_header(0, 10) + bytes([33]), "width"),
        (_header(0, 1000) + bytes([32]) + bytes(8), "needs 4000 bytes"),
        (_header(0, 2, INT32.max) + bytes([1, 0x40]), "exceed int32"),
        (_header(0, 3) + bytes([2, 0b00011011]), "padding"),
        (bytes([0]) + write_uvarint(3) + write_uvarint(2**33), "outside int32"),
        (_header(1, 100) + write_uvarint(MAX_ALPHABET), "alphabet"),
        (_header(1, 100, INT32.max - 1) + write_uvarint(5), "alphabet"),
        (_header(1, 100) + write_uvarint(0) + write_uvarint(2**40), "histogram"),
        (_header(1, 10) + write_uvarint(0) + write_uvarint(1) + bytes([0b0001100_0]), "exceed the symbol count"),
        (_header(1, 10) + write_uvarint(0) + write_uvarint(1) + bytes([0b0001011_0]), "first or last bin"),
        (_header(1, 10) + write_uvarint(1) + write_uvarint(1) + bytes([0b1_011_0000]), "zero run"),
        (_header(1, 10) + write_uvarint(0) + write_uvarint(2) + bytes([0b011_00000, 0]), "unused bytes"),
        (_header(1, 10) + write_uvarint(0) + write_uvarint(1) + bytes([0b011_00001]), "padding"),
        (
            _header(1, 10) + write_uvarint(0) + write_uvarint(1) + bytes([0b011_00000]) + write_uvarint(2**30),
            "ANS words",
        ),
        (
            _header(1, 4) + write_uvarint(0) + write_uvarint(1) + bytes([0b011_00000, 2, 5, 0, 0, 0, 0, 0, 0, 0]),
            "zero word",
        ),
        (
            _header(1, 4) + write_uvarint(0) + write_uvarint(1) + bytes([0b011_00000, 2, 5, 0, 0, 0, 9, 9, 9, 9]),
            "histogram",
        ),
        (_header(2, 10) + write_uvarint(adaptive.MAX_ALPHABET - 1), "ADAPTIVE alphabet"),
        (_header(2, 10, INT32.max - 1) + write_uvarint(5), "ADAPTIVE alphabet"),
        (_header(2, 10) + write_uvarint(0), "ADAPTIVE increment"),
        (_header(2, 10) + write_uvarint(0) + bytes([8]), "increment exponent 8"),
        (_header(2, 10) + write_uvarint(0) + bytes([0]) + write_uvarint(2**30), "ADAPTIVE words"),
        (_header(2, 10) + write_uvarint(0) + bytes([0]) + write_uvarint(1) + bytes(2), "run out"),
        (_header(2, 10) + write_uvarint(0) + bytes([0]) + write_uvarint(2) + bytes(4), "first state"),
        (_adaptive_body([0, 1, 1, 0], 2, extra=1), "do not end in the final state"),
        (_adaptive_body([0, 0, 0], 3), "do not span the declared alphabet"),
        (_adaptive_body([2, 2, 1], 3), "do not span the declared alphabet"),
    ],
)
def test_rejects_malformed_streams(data, message):
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match=message):
            decode_symbols(data, max_count=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing sized by a declared length was allocated
