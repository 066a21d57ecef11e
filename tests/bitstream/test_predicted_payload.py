"""Predicted GoP payloads (bitstream_spec.md, section 8.3): round trips, the kept Gaussians'
float32 arithmetic, and what a decoder rejects."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest

from stgvcodec.bitstream import BitstreamError, pack_streams, unpack_streams
from stgvcodec.bitstream.gop import (
    MAX_RESIDUAL,
    RESIDUAL_ATTRIBUTES,
    GopRecord,
    Keep,
    Prediction,
    Stream,
    decode_gop,
    encode_gop,
    stream_sizes,
)
from stgvcodec.decode import canonical_gaussians

SIZES = [12, 6] + [4] * 8  # two table tensors, eight MLP tensors


def _record(new: int, reference: int, seed: int = 0) -> GopRecord:
    """A predicted record against `reference` Gaussians: a third dropped, a third copied, a third
    updated by small residuals; `new` new Gaussians."""
    rng = np.random.default_rng(seed)
    keep = np.array([Keep.DROPPED, Keep.COPIED, Keep.UPDATED] * reference, np.int32)[:reference]
    rng.shuffle(keep)
    updated = int((keep == Keep.UPDATED).sum())
    return GopRecord(
        means=rng.uniform(-1, 1, (new, 2)).astype(np.float16),
        cholesky_symbols=rng.integers(0, 256, (new, 3)).astype(np.int32),
        cholesky_gamma=np.full(3, 0.05, np.float32),
        cholesky_beta=np.array([0.5, -1.0, 0.5], np.float32),
        colour_indices=rng.integers(0, 4, (new, 1)).astype(np.int32),
        codebooks=rng.uniform(0, 1, (1, 4, 3)).astype(np.float16),
        tensor_symbols=[rng.integers(-127, 128, n).astype(np.int32) for n in SIZES],
        tensor_scales=[np.float32(0.01)] * len(SIZES),
        prediction=Prediction(
            keep,
            np.array([1 / 64, 1 / 32, 0.125, 0.125, 0.125, 1 / 128, 1 / 128, 1 / 128], np.float32),
            rng.integers(-3, 4, (updated, 8)).astype(np.int32),
        ),
    )


def _reference(count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(-1, 1, (count, 2)).astype(np.float32),
        rng.uniform(0.3, 4, (count, 3)).astype(np.float32),
        rng.uniform(-0.5, 1, (count, 3)).astype(np.float32),
    )


def test_a_predicted_record_round_trips():
    record = _record(new=7, reference=30)
    parsed = decode_gop(encode_gop(record), SIZES, reference=30)
    expected = record.sorted()
    np.testing.assert_array_equal(parsed.prediction.keep, record.prediction.keep)
    np.testing.assert_array_equal(parsed.prediction.steps, record.prediction.steps)
    np.testing.assert_array_equal(parsed.prediction.residuals, record.prediction.residuals)
    np.testing.assert_array_equal(parsed.means.view(np.uint16), expected.means.view(np.uint16))
    np.testing.assert_array_equal(parsed.cholesky_symbols, expected.cholesky_symbols)


def test_streams_come_in_the_spec_order_and_count_as_prediction():
    payload = encode_gop(_record(new=3, reference=12))
    ids = [stream_id for stream_id, _ in unpack_streams(payload)]
    residuals = [Stream.RESIDUAL + k for k in range(len(RESIDUAL_ATTRIBUTES))]
    assert ids == [1, 32, 33, *residuals, 2, 3, 4, 5, 6, 7, 16, 64, 65]
    sizes = stream_sizes(payload)
    assert sizes["prediction"] > 0 and sum(sizes.values()) == len(payload)


def test_kept_gaussians_are_the_reference_plus_float32_steps_in_reference_order():
    record = _record(new=5, reference=40, seed=3)
    reference = _reference(40)
    parsed = decode_gop(encode_gop(record), SIZES, reference=40)
    means, cholesky, colours = canonical_gaussians(parsed, reference)
    keep = record.prediction.keep
    kept = np.flatnonzero(keep != Keep.DROPPED)
    assert len(means) == len(kept) + 5
    values = np.concatenate(reference, axis=-1)
    residual = iter(record.prediction.residuals)
    for row, source in enumerate(kept):
        want = values[source].copy()
        if keep[source] == Keep.UPDATED:
            step = np.float32(record.prediction.steps) * next(residual).astype(np.float32)  # one rounding
            want = (want + step).astype(np.float32)  # and one more
        got = np.concatenate((means[row], cholesky[row], colours[row]))
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    new = canonical_gaussians(decode_gop(encode_gop(record), SIZES, reference=40), reference)[0][len(kept) :]
    np.testing.assert_array_equal(new, record.sorted().means.astype(np.float32))


def test_a_key_gop_and_a_predicted_gop_are_not_interchangeable():
    predicted = encode_gop(_record(new=3, reference=12))
    key = encode_gop(replace(_record(new=3, reference=12), prediction=None))
    with pytest.raises(BitstreamError, match="stream ids"):
        decode_gop(predicted, SIZES)
    with pytest.raises(BitstreamError, match="stream ids"):
        decode_gop(key, SIZES, reference=12)
    with pytest.raises(BitstreamError, match="refers to 12 Gaussians, the previous GoP decodes to 13"):
        decode_gop(predicted, SIZES, reference=13)
    with pytest.raises(BitstreamError, match="needs the previous GoP"):
        canonical_gaussians(decode_gop(predicted, SIZES, reference=12))


def _patch_prediction(payload: bytes, head: bytes) -> bytes:
    return pack_streams([(i, head if i == Stream.PREDICTION else bytes(v)) for i, v in unpack_streams(payload)])


@pytest.mark.parametrize("step", [0.0, -0.125, float("inf"), float("nan"), 65537.0])
def test_residual_steps_must_be_positive_finite_and_bounded(step):
    payload = encode_gop(_record(new=2, reference=9))
    steps = [0.25] * 8
    steps[5] = step
    with pytest.raises(BitstreamError, match=r"residual step r = .* at byte \d+ is not in \(0, 65536\]"):
        decode_gop(_patch_prediction(payload, struct.pack("<I8f", 9, *steps)), SIZES, reference=9)


def test_a_prediction_stream_of_the_wrong_length_is_rejected():
    payload = encode_gop(_record(new=2, reference=9))
    with pytest.raises(BitstreamError, match="prediction stream at byte .* holds 35 bytes, expected 36"):
        decode_gop(_patch_prediction(payload, struct.pack("<I8f", 9, *[0.25] * 8)[:-1]), SIZES, reference=9)


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
    record.prediction.steps[3] = 65536.0
    parsed = decode_gop(encode_gop(record), SIZES, reference=6)
    with pytest.raises(BitstreamError, match="updated Gaussian 4 of the reference: l2 becomes 1.099512e\\+12"):
        canonical_gaussians(parsed, _reference(6))


def test_the_spec_table_of_predicted_streams_is_the_code():
    """bitstream_spec.md section 8.3's stream table, parsed: ids, counts and attribute order."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "bitstream_spec.md").read_text()
    section = text.split("### 8.3 Predicted GoPs")[1].split("\n## ")[0]
    rows = [line.split("|")[1:4] for line in section.splitlines() if line.startswith("| ") and not line.startswith("| id")]
    table = {cells[0].strip(): cells[2].strip() for cells in rows}
    assert table["32"].startswith("PREDICTION: raw bytes, u32 N_ref, then f32 step[8]")
    assert struct.calcsize("<I8f") == 36 and "PREDICTION must be exactly 36 bytes" in section
    assert table["33"].startswith("KEEP: coded symbols, N_ref values in [0, 2]")
    assert (Stream.PREDICTION, Stream.KEEP, Stream.RESIDUAL) == (32, 33, 34)
    assert f"34 .. {33 + len(RESIDUAL_ATTRIBUTES)}" in table
    assert "x, y (position), l1, l2, l3 (Cholesky), r, g, b (colour)" in table[f"34 .. {33 + len(RESIDUAL_ATTRIBUTES)}"]
    assert RESIDUAL_ATTRIBUTES == ("x", "y", "l1", "l2", "l3", "r", "g", "b")
    assert (Keep.DROPPED, Keep.COPIED, Keep.UPDATED) == (0, 1, 2)
    assert "0 = dropped" in section and "1 = copied" in section and "2 = updated" in section
    assert MAX_RESIDUAL == 1 << 24 and "[-2^24, 2^24]" in section
