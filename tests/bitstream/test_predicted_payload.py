"""Predicted GoP payloads (bitstream_spec.md, section 8.3): round trips, the kept Gaussians'
float32 arithmetic, quantizers inherited from the reference (version 4), version 3's layout, and
what a decoder rejects."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest
import torch

from stgvcodec.bitstream import FORMAT_VERSION, BitstreamError, unpack_streams
from stgvcodec.bitstream.gop import (
    MAX_RESIDUAL,
    RESIDUAL_ATTRIBUTES,
    GopRecord,
    Keep,
    Prediction,
    Quantizers,
    Stream,
    decode_gop,
    encode_gop,
    gaussian_count,
    join_streams,
    position_keys,
    split_payload,
    stream_sizes,
)
from stgvcodec.decode import Canonical, canonical_gaussians
from stgvcodec.quant.colours import dequantize_colours
from stgvcodec.quant.quantizers import PositionGrid, dequantize_cholesky, dequantize_positions

SIZES = [12, 6] + [4] * 8  # two table tensors, eight MLP tensors


FRAME = (64, 48)
"""(width, height) that grid positions are relative to."""


def _record(new: int, reference: int, seed: int = 0, version: int = FORMAT_VERSION) -> GopRecord:
    """A predicted record against `reference` Gaussians: a third dropped, a third copied, a third
    updated by small residuals; `new` new Gaussians, their positions on a grid of 4 steps per
    pixel (float16 before version 5)."""
    rng = np.random.default_rng(seed)
    keep = np.array([Keep.DROPPED, Keep.COPIED, Keep.UPDATED] * reference, np.int32)[:reference]
    rng.shuffle(keep)
    updated = int((keep == Keep.UPDATED).sum())
    return GopRecord(
        positions=PositionGrid(4, *FRAME).keys(torch.from_numpy(rng.uniform(-1, 1, (new, 2)))).numpy()
        if version >= 5
        else position_keys(rng.uniform(-1, 1, (new, 2)).astype(np.float16)),
        cholesky_symbols=rng.integers(0, 256, (new, 3)).astype(np.int32),
        cholesky_gamma=np.full(3, 0.05, np.float32),
        cholesky_beta=np.array([0.5, -1.0, 0.5], np.float32),
        colour_indices=rng.integers(0, 4, (new, 1)).astype(np.int32),
        codebooks=rng.integers(0, 256, (1, 4, 3)).astype(np.float32) / 256
        if version >= 5
        else rng.uniform(0, 1, (1, 4, 3)).astype(np.float16),
        tensor_symbols=[rng.integers(-127, 128, n).astype(np.int32) for n in SIZES],
        tensor_scales=[np.float32(1 / 128)] * len(SIZES),
        prediction=Prediction(
            keep,
            np.array([1 / 64, 1 / 32, 0.125, 0.125, 0.125, 1 / 128, 1 / 128, 1 / 128], np.float32),
            rng.integers(-3, 4, (updated, 8)).astype(np.int32),
        ),
        position_grid=4 if version >= 5 else 0,
        codebook_step=1 / 256 if version >= 5 else 0.0,
    )


def _quantizers(seed: int = 2) -> Quantizers:
    """A reference's quantizers: two RVQ stages of 8 colours, multiples of 1/256."""
    rng = np.random.default_rng(seed)
    return Quantizers(
        np.array([0.03, 0.02, 0.04], np.float32), np.array([0.2, -0.5, 0.3], np.float32),
        rng.integers(-51, 205, (2, 8, 3)).astype(np.float32) / 256,
    )


def _reference(count: int, seed: int = 1) -> Canonical:
    rng = np.random.default_rng(seed)
    return Canonical(
        rng.uniform(-1, 1, (count, 2)).astype(np.float32),
        rng.uniform(0.3, 4, (count, 3)).astype(np.float32),
        rng.uniform(-0.5, 1, (count, 3)).astype(np.float32),
        _quantizers(),
    )


def _inheriting(new: int, reference: int, seed: int = 0) -> GopRecord:
    """A predicted record whose new Gaussians use the quantizers of _quantizers()."""
    rng = np.random.default_rng(seed + 100)
    gamma, beta, codebooks = _quantizers()
    return replace(
        _record(new, reference, seed), cholesky_gamma=gamma, cholesky_beta=beta, codebooks=codebooks,
        colour_indices=rng.integers(0, 8, (new, 2)).astype(np.int32), inherits=True,
    )  # fmt: skip


def test_a_predicted_record_round_trips():
    record = _record(new=7, reference=30)
    parsed = decode_gop(encode_gop(record), SIZES, reference=30)
    expected = record.sorted()
    np.testing.assert_array_equal(parsed.prediction.keep, record.prediction.keep)
    np.testing.assert_array_equal(parsed.prediction.steps, record.prediction.steps)
    np.testing.assert_array_equal(parsed.prediction.residuals, record.prediction.residuals)
    np.testing.assert_array_equal(parsed.positions, expected.positions)
    np.testing.assert_array_equal(parsed.cholesky_symbols, expected.cholesky_symbols)


def test_streams_come_in_the_spec_order_and_count_as_prediction():
    payload = encode_gop(_record(new=3, reference=12))
    ids = [stream_id for stream_id, _ in split_payload(payload, predicted=True)[0]]
    residuals = [Stream.RESIDUAL + k for k in range(len(RESIDUAL_ATTRIBUTES))]
    assert ids == [1, 32, 33, *residuals, 2, 3, 4, 5, 6, 7, 8, 16, 64, 65]
    assert [i for i, _ in unpack_streams(encode_gop(_record(new=3, reference=12), version=5))] == ids
    sizes = stream_sizes(payload, predicted=True)
    assert sizes["prediction"] > 0 and sum(sizes.values()) == len(payload)


def test_kept_gaussians_are_the_reference_plus_float32_steps_in_reference_order():
    record = _record(new=5, reference=40, seed=3)
    reference = _reference(40)
    parsed = decode_gop(encode_gop(record), SIZES, reference=40)
    means, cholesky, colours = canonical_gaussians(parsed, reference, size=FRAME).gaussians
    keep = record.prediction.keep
    kept = np.flatnonzero(keep != Keep.DROPPED)
    assert len(means) == len(kept) + 5
    values = np.concatenate(reference.gaussians, axis=-1)
    residual = iter(record.prediction.residuals)
    for row, source in enumerate(kept):
        want = values[source].copy()
        if keep[source] == Keep.UPDATED:
            step = np.float32(record.prediction.steps) * next(residual).astype(np.float32)  # one rounding
            want = (want + step).astype(np.float32)  # and one more
        got = np.concatenate((means[row], cholesky[row], colours[row]))
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    new = canonical_gaussians(decode_gop(encode_gop(record), SIZES, reference=40), reference, size=FRAME).means[len(kept) :]
    np.testing.assert_array_equal(new, dequantize_positions(record.sorted().positions, 4, *FRAME))


def test_a_key_gop_and_a_predicted_gop_are_not_interchangeable():
    predicted = encode_gop(_record(new=3, reference=12))
    key = encode_gop(replace(_record(new=3, reference=12), prediction=None))
    for version in (5, 6):  # version 5 names its streams; from 6 the layout runs into other bytes
        message = "stream ids" if version == 5 else None
        with pytest.raises(BitstreamError, match=message):
            decode_gop(encode_gop(_record(new=3, reference=12), version=version), SIZES, version=version)
        with pytest.raises(BitstreamError, match=message):
            decode_gop(encode_gop(replace(_record(new=3, reference=12), prediction=None), version=version), SIZES,
                       reference=12, version=version)  # fmt: skip
    with pytest.raises(BitstreamError, match="refers to 12 Gaussians, the previous GoP decodes to 13"):
        decode_gop(predicted, SIZES, reference=13)
    with pytest.raises(BitstreamError, match="needs the previous GoP"):
        canonical_gaussians(decode_gop(predicted, SIZES, reference=12), size=FRAME)


def _patch_prediction(payload: bytes, head: bytes, version: int) -> bytes:
    streams = split_payload(payload, True, version)[0]
    return join_streams([(i, head if i == Stream.PREDICTION else bytes(v)) for i, v in streams], version)


PREDICTION_LAYOUTS = {3: "<I8f", 4: "<I8e"}
"""PREDICTION by version (bitstream_spec.md section 8.3): float32 steps in version 3, float16 in 4."""


@pytest.mark.parametrize(
    "version, step",
    [(3, 0.0), (3, -0.125), (3, float("inf")), (3, float("nan")), (3, 65537.0), (4, 0.0), (4, -0.125), (4, float("inf")), (4, float("nan"))],
)
def test_residual_steps_must_be_positive_finite_and_bounded(version, step):
    """Each step is checked, and the error names its byte (steps are 4 bytes apart in version 3, 2 in 4)."""
    steps = [0.25] * 8
    steps[5] = step
    head = struct.pack(PREDICTION_LAYOUTS[version], 9, *steps)
    payload = _patch_prediction(encode_gop(_record(new=2, reference=9, version=version), version=version), head, version)
    byte = payload.index(head) + 4 + 5 * struct.calcsize(PREDICTION_LAYOUTS[version][-1])
    with pytest.raises(BitstreamError, match=rf"residual step r = .* at byte {byte} is not in \(0, 65536\]$"):
        decode_gop(payload, SIZES, reference=9, version=version)


@pytest.mark.parametrize("version, size", [(3, 36), (4, 20)])
def test_a_prediction_stream_of_the_wrong_length_is_rejected(version, size):
    payload = encode_gop(_record(new=2, reference=9, version=version), version=version)
    head = struct.pack(PREDICTION_LAYOUTS[version], 9, *[0.25] * 8)
    assert len(head) == size
    with pytest.raises(BitstreamError, match=f"prediction stream at byte .* holds {size - 1} bytes, expected {size}"):
        decode_gop(_patch_prediction(payload, head[:-1], version), SIZES, reference=9, version=version)
    other = struct.pack(PREDICTION_LAYOUTS[7 - version], 9, *[0.25] * 8)  # the other version's layout
    with pytest.raises(BitstreamError, match=f"holds {len(other)} bytes, expected {size}"):
        decode_gop(_patch_prediction(payload, other, version), SIZES, reference=9, version=version)


def test_steps_a_version_cannot_hold_exactly_are_refused_by_the_writer():
    record = _record(new=2, reference=9, version=4)
    record.prediction.steps[0] = 0.1  # not a float16
    with pytest.raises(ValueError, match="not exact in the version-4 PREDICTION stream"):
        encode_gop(record, version=4)
    assert decode_gop(encode_gop(record, version=3), SIZES, reference=9, version=3).prediction.steps[0] == np.float32(0.1)


# Quantizers inherited from the reference (version 4).


def test_an_inheriting_record_round_trips_without_its_quantizers():
    record = _inheriting(new=6, reference=20)
    payload = encode_gop(record)
    own = encode_gop(replace(record, inherits=False))
    params = split_payload(payload, True)[0][0][1]
    assert bytes(params[4:7]) == b"\x00\x00\x00" and len(params) == 12 + 2 * len(SIZES)  # M = B = 0, then the scales
    assert len(split_payload(own, True)[0][0][1]) - len(params) == 24 + 2  # gamma, beta and the codebook step
    assert Stream.CODEBOOKS in dict(split_payload(own, True)[0]) and Stream.CODEBOOKS not in dict(split_payload(payload, True)[0])
    assert gaussian_count(payload) == 6
    parsed = decode_gop(payload, SIZES, reference=20, quantizers=_quantizers())
    assert parsed.inherits and not decode_gop(own, SIZES, reference=20, quantizers=_quantizers()).inherits
    expected = record.sorted()
    np.testing.assert_array_equal(parsed.colour_indices, expected.colour_indices)
    np.testing.assert_array_equal(parsed.cholesky_symbols, expected.cholesky_symbols)
    for got, want in zip(parsed.quantizers, _quantizers()):
        np.testing.assert_array_equal(got, want)


def test_inherited_quantizers_dequantize_the_new_gaussians():
    """The new Gaussians' Cholesky factors and colours come from the reference's gamma, beta and
    codebooks, in the same float32 arithmetic as a key GoP's (section 8.2)."""
    record = _inheriting(new=5, reference=12, seed=4)
    reference = _reference(12)
    parsed = decode_gop(encode_gop(record), SIZES, reference=12, quantizers=reference.quantizers)
    canonical = canonical_gaussians(parsed, reference, size=FRAME)
    sorted_ = record.sorted()
    gamma, beta, codebooks = reference.quantizers
    np.testing.assert_array_equal(canonical.cholesky[-5:], dequantize_cholesky(sorted_.cholesky_symbols, gamma, beta))
    np.testing.assert_array_equal(canonical.colours[-5:], dequantize_colours(sorted_.colour_indices, codebooks))
    assert canonical.quantizers is not None and canonical.quantizers[2] is codebooks  # and they pass on


def test_inheritance_needs_a_version_4_predicted_gop_and_the_references_quantizers():
    record = _inheriting(new=3, reference=12)
    payload = encode_gop(record)
    with pytest.raises(BitstreamError, match="inherits its reference's quantizers, which were not given"):
        decode_gop(payload, SIZES, reference=12)
    with pytest.raises(BitstreamError, match=r"sizes out of range \(Gaussians 3, stages 0, codebook 0"):
        decode_gop(encode_gop(record, version=5), SIZES, reference=12, quantizers=_quantizers(), version=3)
    with pytest.raises(ValueError, match="only a predicted GoP of version 4 or later inherits"):
        encode_gop(record, version=3)
    with pytest.raises(ValueError, match="only a predicted GoP of version 4 or later inherits"):
        encode_gop(replace(record, prediction=None))
    # M = 0 with a codebook size, or in a key GoP: out of range.
    streams = [(i, bytes(v)) for i, v in split_payload(payload, True)[0]]
    params = bytearray(streams[0][1])
    params[5:7] = struct.pack("<H", 8)
    with pytest.raises(BitstreamError, match="stages 0, codebook 8"):
        decode_gop(join_streams([(1, bytes(params))] + streams[1:]), SIZES, reference=12, quantizers=_quantizers())
    key = [(i, v) for i, v in streams if not Stream.PREDICTION <= i < Stream.RESIDUAL + 8]
    with pytest.raises(BitstreamError, match="stages 0, codebook 0"):
        decode_gop(join_streams(key), SIZES)


def test_an_inheriting_record_expects_the_references_colour_stages():
    """The COLOUR streams of an inheriting GoP are one per stage of the inherited codebooks."""
    payload = encode_gop(_inheriting(new=3, reference=12))
    one_stage = _quantizers()._replace(codebooks=_quantizers().codebooks[:1])
    with pytest.raises(BitstreamError, match="stream ids"):
        decode_gop(payload, SIZES, reference=12, quantizers=one_stage)


def test_keep_symbols_and_residuals_are_range_checked():
    record = _record(new=2, reference=9)
    record.prediction.keep[0] = 3
    with pytest.raises(BitstreamError, match=r"keep stream \(id 33\) at byte \d+: symbols outside \[0, 2\]"):
        decode_gop(encode_gop(record), SIZES, reference=9)
    record = _record(new=2, reference=9)
    record.prediction.residuals[0, 2] = MAX_RESIDUAL + 1
    with pytest.raises(BitstreamError, match=r"residual l1 stream \(id 36\).*symbols outside"):
        decode_gop(encode_gop(record), SIZES, reference=9)


def test_residual_counts_follow_the_updated_gaussians():
    record = _record(new=2, reference=9)
    record.prediction.residuals = record.prediction.residuals[:-1]
    with pytest.raises(BitstreamError, match=r"residual x stream .* holds \d+ symbols, expected \d+"):
        decode_gop(encode_gop(record), SIZES, reference=9)


def test_values_out_of_range_are_rejected():
    record = _record(new=0, reference=6)
    record.prediction.keep[:] = Keep.UPDATED
    record.prediction.residuals = np.zeros((6, 8), np.int32)
    record.prediction.residuals[4, 3] = MAX_RESIDUAL
    record.prediction.steps[3] = 32768.0
    parsed = decode_gop(encode_gop(record), SIZES, reference=6)
    with pytest.raises(BitstreamError, match="updated Gaussian 4 of the reference: l2 becomes 5.497558e\\+11"):
        canonical_gaussians(parsed, _reference(6), size=FRAME)


def test_the_spec_table_of_predicted_streams_is_the_code():
    """bitstream_spec.md section 8.3's stream table, parsed: ids, counts and attribute order."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "bitstream_spec.md").read_text()
    section = text.split("### 8.3 Predicted GoPs")[1].split("\n## ")[0]
    rows = [line.split("|")[1:4] for line in section.splitlines() if line.startswith("| ") and not line.startswith("| id")]
    table = {cells[0].strip(): cells[2].strip() for cells in rows}
    words = " ".join(section.split())
    assert table["32"].startswith("PREDICTION: raw bytes, u32 N_ref, then step[8]")
    assert table["32"].endswith("f16 from version 4, f32 in version 3")
    assert struct.calcsize(PREDICTION_LAYOUTS[4]) == 20 and "PREDICTION must be exactly 20 bytes from version 4 on" in words
    assert struct.calcsize(PREDICTION_LAYOUTS[3]) == 36 and "exactly 36 bytes in version 3" in words
    assert "from version 4, with M = B = 0 and no gamma, beta or codebooks" in table["1"]
    params = len(split_payload(encode_gop(_inheriting(new=2, reference=9)), True)[0][0][1])
    spec = " ".join(text.split())
    assert params == 12 + 2 * len(SIZES) and "h + 2 K bytes" in spec and "h = 12 bytes from version 5, 11 before" in spec
    assert table["33"].startswith("KEEP: coded symbols, N_ref values in [0, 2]")
    assert (Stream.PREDICTION, Stream.KEEP, Stream.RESIDUAL) == (32, 33, 34)
    assert f"34 .. {33 + len(RESIDUAL_ATTRIBUTES)}" in table
    assert "x, y (position), l1, l2, l3 (Cholesky), r, g, b (colour)" in table[f"34 .. {33 + len(RESIDUAL_ATTRIBUTES)}"]
    assert RESIDUAL_ATTRIBUTES == ("x", "y", "l1", "l2", "l3", "r", "g", "b")
    assert (Keep.DROPPED, Keep.COPIED, Keep.UPDATED) == (0, 1, 2)
    assert "0 = dropped" in section and "1 = copied" in section and "2 = updated" in section
    assert MAX_RESIDUAL == 1 << 24 and "[-2^24, 2^24]" in section
