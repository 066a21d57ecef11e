"""GoP payloads and the model configuration blob: round trips, the spec's layouts, rejections."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest

from stgvcodec.bitstream import BitstreamError, pack_streams, unpack_streams
import torch

from stgvcodec.bitstream.gop import (
    GopRecord,
    decode_gop,
    encode_gop,
    join_streams,
    keys_to_means,
    position_keys,
    split_payload,
    stream_sizes,
)
from stgvcodec.bitstream.model_config import pack_model_config, unpack_model_config
from stgvcodec.config import ModelConfig
from stgvcodec.entropy import decode_symbols, encode_symbols
from stgvcodec.quant.quantizers import GRID_ORIGIN, PositionGrid, dequantize_positions

SIZES = [40, 30, 24, 4, 16, 4, 8, 2, 12, 3]  # two hash tables, then the 8 MLP tensors


def _record(count: int, seed: int = 0, stages: int = 2, book: int = 8, bits: int = 8, grid: int = 4) -> GopRecord:
    """A record of random symbols; grid 0: float16 position keys and codebooks (versions 2 to 4)."""
    rng = np.random.default_rng(seed)
    levels = (1 << (bits - 1)) - 1
    if grid:  # keys of positions on a grid of `grid` steps per pixel, a little beyond a 64-pixel frame
        positions = rng.integers(GRID_ORIGIN - 36 * grid, GRID_ORIGIN + 36 * grid, (count, 2))
    else:
        positions = position_keys(rng.uniform(-1.1, 1.1, (count, 2)).astype(np.float16))
    return GopRecord(
        positions=positions,
        cholesky_symbols=rng.integers(0, 256, (count, 3)).astype(np.int32),
        cholesky_gamma=rng.uniform(0.01, 0.1, 3).astype(np.float32),
        cholesky_beta=rng.uniform(-1, 1, 3).astype(np.float32),
        colour_indices=rng.integers(0, book, (count, stages)).astype(np.int32),
        codebooks=rng.integers(-80, 300, (stages, book, 3)).astype(np.float32) / 256
        if grid
        else rng.normal(0, 0.3, (stages, book, 3)).astype(np.float16),
        tensor_symbols=[rng.integers(-levels, levels + 1, n).astype(np.int32) for n in SIZES],
        tensor_scales=[np.float32(np.float16(s)) for s in rng.uniform(1e-4, 1e-2, len(SIZES))],  # float16 from version 4
        network_bits=bits,
        position_grid=grid,
        codebook_step=1 / 256 if grid else 0.0,
    )


def _assert_same(a: GopRecord, b: GopRecord) -> None:
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.position_grid == b.position_grid
    for name in ("cholesky_symbols", "cholesky_gamma", "cholesky_beta", "colour_indices", "codebooks"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for x, y in zip(a.tensor_symbols, b.tensor_symbols):
        np.testing.assert_array_equal(x, y)
    assert a.tensor_scales == b.tensor_scales
    assert a.network_bits == b.network_bits


@pytest.mark.parametrize("count,bits", [(0, 8), (1, 8), (2, 2), (500, 8), (500, 4)])
def test_round_trip_in_stream_order(count, bits):
    record = _record(count, bits=bits)
    decoded = decode_gop(encode_gop(record), SIZES)
    _assert_same(decoded, record.sorted())
    assert (np.diff(decoded.positions[:, 0]) >= 0).all()
    # Versions 2 to 4 hold float16 positions (grid 0), version 3 float32 scales: any float32 round-trips.
    record = _record(count, bits=bits, grid=0)
    _assert_same(decode_gop(encode_gop(record, version=4), SIZES, version=4), record.sorted())
    record.tensor_scales = [np.float32(0.1), np.float32(1e-7)] + record.tensor_scales[2:]
    _assert_same(decode_gop(encode_gop(record, version=3), SIZES, version=3), record.sorted())
    with pytest.raises(ValueError, match="not exact in a version-4 PARAMS stream"):
        encode_gop(record, version=4)
    with pytest.raises(ValueError, match="position grid 0 in a version-6 file"):
        encode_gop(record)
    with pytest.raises(ValueError, match="position grid 4 in a version-4 file"):
        encode_gop(_record(count, bits=bits), version=4)


def test_grid_positions_dequantize_as_the_spec_says():
    """x = float32(2 (key - 32768)) / float32(S W): keys 32768 +- S W / 2 are the frame's edges."""
    centre, edge = [GRID_ORIGIN, GRID_ORIGIN], [GRID_ORIGIN - 2 * 64, GRID_ORIGIN + 2 * 48]
    keys = np.array([centre, edge, [0, 65535], [GRID_ORIGIN + 1, GRID_ORIGIN - 3]])
    values = dequantize_positions(keys, 4, 64, 48)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values[:2], [[0, 0], [-1, 1]])
    x, y = np.float32(4 * 64), np.float32(4 * 48)
    np.testing.assert_array_equal(values[2:], [[-65536 / x, 65534 / y], [2 / x, -6 / y]])
    # The encoder's quantizer rounds to the nearest key and its values are the decoder's, bit for bit.
    grid = PositionGrid(4, 64, 48)
    means = torch.tensor([[0.3, -0.7], [-1.2, 1.05], [1e-3, 0.0]])
    np.testing.assert_array_equal(grid.keys(means).numpy(), [[32768 + 38, 32768 - 67], [32768 - 154, 32768 + 101], [32768, 32768]])
    np.testing.assert_array_equal(grid(means).detach().numpy(), dequantize_positions(grid.keys(means).numpy(), 4, 64, 48))
    assert PositionGrid.fitting(4, 176, 144) == 4 and PositionGrid.fitting(4, 16384, 9000) == 3


def test_position_keys_preserve_order_and_invert():
    values = np.array([-65504, -1.5, -1e-7, -0.0, 0.0, 1e-7, 0.25, 1.0, 65504], dtype=np.float16)
    keys = position_keys(np.stack((values, values), axis=-1))[:, 0]
    assert (np.diff(keys) > 0).all() and keys.min() >= 0 and keys.max() <= 0xFFFF
    np.testing.assert_array_equal(keys_to_means(keys).view(np.uint16), values.view(np.uint16))


def test_params_stream_follows_the_spec_layout():
    record = _record(3, stages=2, book=8).sorted()
    payload = encode_gop(record)
    streams, starts = split_payload(payload, predicted=False)
    assert [i for i, _ in streams] == [1, 2, 3, 4, 5, 6, 7, 8, 16, 17, 64, 65]
    # Version 6: the streams' data one after another, no ids or lengths; version 5 frames them.
    assert starts[0] == 0 and b"".join(bytes(v) for _, v in streams) == payload
    assert [i for i, _ in unpack_streams(encode_gop(record, version=5))] == [i for i, _ in streams]
    params = bytes(streams[0][1])
    count, stages, book, tensors, bits, grid, first_x = struct.unpack_from("<IBHBBBH", params)
    assert (count, stages, book, tensors, bits, grid, first_x) == (3, 2, 8, 10, 8, 4, record.positions[0, 0])
    assert len(params) == 12 + 24 + 2 + 2 * 10
    np.testing.assert_array_equal(np.frombuffer(params, "<f4", 3, 12), record.cholesky_gamma)
    assert np.frombuffer(params, "<f2", 1, 36)[0] == np.float16(1 / 256)  # the codebook step
    np.testing.assert_array_equal(np.frombuffer(params, "<f2", 10, 38), record.tensor_scales)
    # CODEBOOKS: M x B x 3 symbols q, the values q * step.
    books, _ = decode_symbols(streams[7][1], 0, max_count=48)
    np.testing.assert_array_equal(books.astype(np.float32) / 256, record.codebooks.ravel())
    # The x keys: the first in PARAMS, then N - 1 differences; y keys as high and low bytes.
    np.testing.assert_array_equal(decode_symbols(streams[1][1], 0, max_count=2)[0], np.diff(record.positions[:, 0]))
    np.testing.assert_array_equal(decode_symbols(streams[2][1], 0, max_count=3)[0], record.positions[:, 1] >> 8)
    np.testing.assert_array_equal(decode_symbols(streams[3][1], 0, max_count=3)[0], record.positions[:, 1] & 255)
    # Version 4: float16 positions, no S; version 3: float32 scales too.
    float16 = _record(3, stages=2, book=8, grid=0).sorted()
    params = bytes(unpack_streams(encode_gop(float16, version=4))[0][1])
    assert struct.unpack_from("<IBHBBH", params) == (3, 2, 8, 10, 8, float16.positions[0, 0])
    assert len(params) == 11 + 24 + 6 * 2 * 8 + 2 * 10
    np.testing.assert_array_equal(np.frombuffer(params, "<f2", 48, 35).reshape(2, 8, 3), float16.codebooks)
    np.testing.assert_array_equal(np.frombuffer(params, "<f2", 10, 35 + 96), float16.tensor_scales)
    params = bytes(unpack_streams(encode_gop(float16, version=3))[0][1])
    assert len(params) == 11 + 24 + 6 * 2 * 8 + 4 * 10
    np.testing.assert_array_equal(np.frombuffer(params, "<f4", 10, 35 + 96), float16.tensor_scales)
    # HASH holds the encoding's tensors one after another, MLP the last 8 tensors.
    hash_symbols, _ = decode_symbols(streams[-2][1], 0, max_count=70)
    np.testing.assert_array_equal(hash_symbols, np.concatenate(record.tensor_symbols[:2]))
    mlp_symbols, _ = decode_symbols(streams[-1][1], 0, max_count=sum(SIZES) - 70)
    np.testing.assert_array_equal(mlp_symbols, np.concatenate(record.tensor_symbols[2:]))
    sizes = stream_sizes(encode_gop(record), predicted=False)
    assert sum(sizes.values()) == len(encode_gop(record))


def test_model_config_blob_follows_the_spec_table():
    config = ModelConfig(encoding="plane", levels=6, log2_table_size=7, width=32, per_level_scale=1.5)
    blob = pack_model_config(config)
    assert len(blob) == 20
    assert blob[0] == 1 and blob[1] == 6 and blob[4] == 7
    assert struct.unpack_from("<H", blob, 5)[0] == 16 and struct.unpack_from("<f", blob, 7)[0] == 1.5
    assert struct.unpack_from("<H", blob, 18)[0] == 32 and struct.unpack_from("<H", blob, 13)[0] == 64
    assert unpack_model_config(blob) == config


@pytest.mark.parametrize(
    "patch,message",
    [
        (lambda b: b[:-1], "20"),
        (lambda b: b"\x07" + b[1:], "encoding"),
        (lambda b: b[:1] + b"\x00" + b[2:], "levels"),
        (lambda b: b[:18] + struct.pack("<H", 5000), "width"),
    ],
)
def test_model_config_rejections(patch, message):
    with pytest.raises(BitstreamError, match=message):
        unpack_model_config(patch(pack_model_config(ModelConfig())))


def _repack(payload: bytes, edit, version: int = 6) -> bytes:
    streams = [(i, bytes(v)) for i, v in split_payload(payload, False, version)[0]]
    return join_streams(edit(streams), version)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s: s[1:], "first stream"),
        (lambda s: s[:-1], "stream ids"),
        (lambda s: [(1, s[0][1][:-1])] + s[1:], "parameter stream"),
    ],
)
def test_malformed_framed_payloads_are_rejected(edit, message):
    """Up to version 5 a payload names its streams; a missing or misplaced one is rejected by id."""
    payload = encode_gop(_record(20), version=5)
    with pytest.raises(BitstreamError, match=message):
        decode_gop(_repack(payload, edit, version=5), SIZES, version=5)


@pytest.mark.parametrize(
    "cut,message",
    [
        (lambda p: p[:11], r"parameter stream needs 12 bytes at byte 0, 11 remain"),
        (lambda p: p[:57], r"stream 1 at byte 0 needs 58 bytes, 57 remain"),
        (lambda p: p[:-1], r"stream data: needs \d+ bytes at byte \d+"),
        (lambda p: p + bytes([0, 0]), r"stream ids \[.*\] differ from the expected"),
        (lambda p: p + bytes([0, 0]) * 30, r"more than 26 coded streams, at byte \d+"),
    ],
)
def test_malformed_unframed_payloads_are_rejected(cut, message):
    """From version 6 a payload's streams follow one another: PARAMS's head gives its length, each
    coded stream's fields its own; a payload cut short or with a stream too many is rejected."""
    payload = encode_gop(_record(20))
    with pytest.raises(BitstreamError, match=message):
        decode_gop(cut(payload), SIZES)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s: [(1, struct.pack("<IBHBBBH", 1 << 23, 2, 8, 10, 8, 4, 0) + s[0][1][12:])] + s[1:], "out of range"),
        (lambda s: [(1, s[0][1][:8] + b"\x09" + s[0][1][9:])] + s[1:], "network bits 9"),
        (lambda s: [(1, s[0][1][:8] + b"\x01" + s[0][1][9:])] + s[1:], "network bits 1"),
        (lambda s: [(1, s[0][1][:9] + b"\x00" + s[0][1][10:])] + s[1:], "position grid 0"),
        (lambda s: [(1, s[0][1][:9] + b"\x41" + s[0][1][10:])] + s[1:], "position grid 65"),
    ],
)
def test_malformed_payloads_are_rejected(edit, message):
    payload = encode_gop(_record(20))
    with pytest.raises(BitstreamError, match=message):
        decode_gop(_repack(payload, edit), SIZES)
    with pytest.raises(BitstreamError, match=message):
        decode_gop(_repack(encode_gop(_record(20), version=5), edit, version=5), SIZES, version=5)


@pytest.mark.parametrize("stream", [2, 5, 8, 16, 64, 65])
def test_bytes_after_a_coded_stream_inside_its_record_are_rejected(stream):
    """A coded stream delimits itself; anything after it in its record is an error, not padding
    (up to version 5, where records have lengths)."""
    payload = encode_gop(_record(20), version=5)
    edited = _repack(payload, lambda s: [(i, v + b"\x00" if i == stream else v) for i, v in s], version=5)
    with pytest.raises(BitstreamError, match=rf"\(id {stream}\) at byte \d+: 1 bytes after the coded stream"):
        decode_gop(edited, SIZES, version=5)


def test_a_first_x_key_without_gaussians_is_rejected():
    payload = encode_gop(_record(0))
    decode_gop(payload, SIZES)  # the encoder writes 0
    edited = _repack(payload, lambda s: [(1, s[0][1][:10] + b"\x01\x00" + s[0][1][12:])] + s[1:])
    with pytest.raises(BitstreamError, match=r"first x key 1 with no Gaussians \(must be 0\), at byte 10"):
        decode_gop(edited, SIZES)


def test_out_of_range_symbols_are_rejected():
    record = _record(20, book=8)
    record.colour_indices[0, 0] = 9  # beyond the 8-entry codebook
    with pytest.raises(BitstreamError, match="colour stage 0"):
        decode_gop(encode_gop(record), SIZES)


def test_network_symbols_beyond_the_precision_are_rejected():
    record = _record(20, bits=4)
    record.tensor_symbols[1][0] = 8  # 4 bits: [-7, 7]
    with pytest.raises(BitstreamError, match=r"hash network stream \(id \d+\) at byte \d+: symbols outside \[-7, 7\]"):
        decode_gop(encode_gop(record), SIZES)


def test_tensor_count_must_match_the_configuration():
    with pytest.raises(BitstreamError, match="network tensors"):
        decode_gop(encode_gop(_record(5)), SIZES + [4])


def _patch_params(payload: bytes, dtype: str, offset: int, value: float) -> bytes:
    """The payload with one float of PARAMS, at `offset` in PARAMS, replaced by `value`."""

    def edit(streams):
        params = bytearray(streams[0][1])
        params[offset : offset + np.dtype(dtype).itemsize] = np.array([value], dtype).tobytes()
        return [(1, bytes(params))] + streams[1:]

    return _repack(payload, edit)


# PARAMS offsets of _record(20, stages=2, book=8) with 10 tensors: gamma at 12, beta at 24, the
# codebook step at 36 and tensor scales at 38 (float16) in version 5; before, one byte less (no S)
# up to beta, then codebooks at 35 (2 * 8 * 3 float16) and the scales at 131, float32 in version 3.
_FLOATS = [
    (6, "<f4", 12 + 4, "Cholesky step gamma 1", 16),
    (5, "<f4", 24, "Cholesky offset beta 0", 24),
    (4, "<f4", 23, "Cholesky offset beta 0", 23),
    (3, "<f4", 131 + 4 * 9, "network tensor scale 9", 167),
]


def _versioned(version: int) -> bytes:
    return encode_gop(_record(20, grid=4 if version >= 5 else 0), version=version)


def _patch_versioned(version: int, dtype: str, offset: int, value: float) -> bytes:
    """_versioned(version) with one float of PARAMS replaced."""

    def edit(streams):
        params = bytearray(streams[0][1])
        params[offset : offset + np.dtype(dtype).itemsize] = np.array([value], dtype).tobytes()
        return [(1, bytes(params))] + streams[1:]

    return _repack(_versioned(version), edit, version)


def _params_at(version: int) -> int:
    """Where PARAMS's data start in the payload: at 0 from version 6; after its id byte and its
    length varint before (58 bytes in version 5, one varint byte; 151 in version 4 and 171 in 3, two)."""
    return 0 if version >= 6 else 2 if version == 5 else 3


@pytest.mark.parametrize("version,dtype,offset,name,byte", _FLOATS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e30, -65536.01])
def test_params_floats_must_be_finite_and_bounded(version, dtype, offset, name, byte, value):
    at = _params_at(version)
    with pytest.raises(BitstreamError, match=rf"{name} = .* at byte {at + byte} is not finite or outside \[-65536, 65536\]"):
        decode_gop(_patch_versioned(version, dtype, offset, value), SIZES, version=version)


@pytest.mark.parametrize("version,dtype,offset,name,byte", _FLOATS)
@pytest.mark.parametrize("value", [65536.0, -65536.0, 0.0, 1e-45])
def test_params_floats_at_the_bounds_are_accepted(version, dtype, offset, name, byte, value):
    record = decode_gop(_patch_versioned(version, dtype, offset, value), SIZES, version=version)
    assert np.isfinite(record.cholesky_gamma).all() and np.isfinite(record.tensor_scales).all()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_float16_tensor_scales_must_be_finite(value):
    """Float16 scales (version 4 on): any finite float16 is within the bound (the largest is 65504)."""
    offset = 38 + 2 * 9
    with pytest.raises(BitstreamError, match=rf"network tensor scale 9 = .* at byte {offset} is not finite"):
        decode_gop(_patch_params(encode_gop(_record(20)), "<f2", offset, value), SIZES)
    for value in (65504.0, -65504.0, 0.0, 6e-8):
        decode_gop(_patch_params(encode_gop(_record(20)), "<f2", offset, value), SIZES)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_float16_codebooks_must_be_finite(value):
    """Versions 2 to 4 hold the codebooks as float16 values in PARAMS."""
    payload = _patch_versioned(4, "<f2", 35 + 2 * 40, value)
    with pytest.raises(BitstreamError, match=rf"codebook value 40 = .* at byte {3 + 35 + 80} is not finite$"):
        decode_gop(payload, SIZES, version=4)
    # The largest float16 is a valid codebook entry.
    decode_gop(_patch_versioned(4, "<f2", 35, 65504.0), SIZES, version=4)


@pytest.mark.parametrize("value", [np.nan, np.inf, 0.0, -0.0, -0.25, 1.0009765625, 65504.0])
def test_the_codebook_step_must_be_positive_finite_and_at_most_one(value):
    """Version 5: codebook values are float32(q) * c with |q| <= 32767 and 0 < c <= 1."""
    with pytest.raises(BitstreamError, match=r"codebook step .* at byte 36 is not"):
        decode_gop(_patch_params(encode_gop(_record(20)), "<f2", 36, value), SIZES)
    for value in (1.0, 6e-8):
        decode_gop(_patch_params(encode_gop(_record(20)), "<f2", 36, value), SIZES)


def test_codebook_symbols_are_range_checked_and_the_writer_refuses_inexact_values():
    record = _record(20)
    record.codebooks[0, 0, 0] = 32768 / 256  # a symbol beyond 32767
    with pytest.raises(ValueError, match=r"multiples q \* 0.00390625 with \|q\| <= 32767"):
        encode_gop(record)
    big = np.full(48, 32768, np.int64)  # a CODEBOOKS stream of symbols out of range, written by hand
    edited = _repack(encode_gop(_record(20)), lambda s: [(i, encode_symbols(big) if i == 8 else v) for i, v in s])
    with pytest.raises(BitstreamError, match=r"codebooks stream \(id 8\) at byte \d+: symbols outside \[-32767, 32767\]"):
        decode_gop(edited, SIZES)
    record = _record(20)
    record.codebooks[1, 2, 0] += 1e-4  # not a multiple of the step
    with pytest.raises(ValueError, match="codebooks are not multiples"):
        encode_gop(record)
    with pytest.raises(ValueError, match="codebook step 0.1"):
        encode_gop(replace(_record(20), codebook_step=0.1))  # not a float16


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_positions_are_rejected(axis, value):
    """Float16 positions (versions 2 to 4): NaN and infinity are rejected."""
    record = _record(20, grid=0)
    record.positions[7, axis] = position_keys(np.array([[value, value]], np.float16))[0, axis]
    with pytest.raises(BitstreamError, match=r"Gaussian \d+ \(stream order\) has a non-finite position"):
        decode_gop(encode_gop(record, version=4), SIZES, version=4)


def test_extreme_finite_positions_are_accepted():
    record = _record(20, grid=0)
    record.positions[:3] = position_keys(np.array([[65504, -65504], [-65504, 6e-8], [-0.0, 65504]], np.float16))
    _assert_same(decode_gop(encode_gop(record, version=4), SIZES, version=4), record.sorted())
    # Grid keys: every key is a finite position.
    record = _record(20)
    record.positions[:3] = [[0, 65535], [65535, 0], [0, 0]]
    _assert_same(decode_gop(encode_gop(record), SIZES), record.sorted())
