"""A GoP's model as the stream stores it (GopRecord), and its payload bytes. numpy only.

    GopRecord --sort Gaussians by position--> streams --join_streams--> payload bytes
                                                          (up to version 5 framed with ids and lengths;
                                                           from 6 one after another, split_payload)

A key GoP's record holds all its Gaussians. A predicted GoP's record (record.prediction set) holds
what changed against its reference, the previous GoP's decoded Gaussians: a class per reference
Gaussian (dropped, copied, updated), the residual symbols of the updated ones and their steps;
its Gaussian fields (positions, Cholesky and colour symbols) then hold only the new Gaussians, coded
as a key GoP codes all of its own (bitstream_spec.md, section 8.3). From version 4 a predicted
GoP may inherit the Cholesky quantizer and colour codebooks of its reference (record.inherits):
its PARAMS then holds neither, and its new Gaussians are dequantized with the reference's.

Positions are 16-bit keys per axis: from version 5 the position on a grid of S steps per pixel
(PARAMS's S; quant.quantizers.PositionGrid), up to version 4 an order-preserving map of the
position's float16 bit pattern to an integer. Gaussians are ordered by (x key, y key), so the x keys
ascend: the stream holds the first x key, the differences of the following ones (small numbers),
and each y key split into a high and a low byte. All other per-Gaussian streams follow the same order. Rendering is a sum, so the order
changes nothing but the floating-point summation order, and the encoder reports the render of
the decoded (reordered) record.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from ..entropy import decode_symbols, encode_symbols, stream_end
from ..entropy.varint import write_uvarint
from .streams import pack_streams, unpack_streams
from .errors import BitstreamError
from .records import FORMAT_VERSION

MAX_GAUSSIANS = 1 << 22
_HEAD = struct.Struct("<IBHBBH")  # Gaussians, RVQ stages, codebook size, network tensors and bits, first x key
_GRID_HEAD = struct.Struct("<IBHBBBH")  # the same with the position grid S before the first x key
INHERITS_FROM = 4
"""First version in which a predicted GoP may inherit its reference's quantizers (M = B = 0 in
PARAMS), and whose PREDICTION steps and network tensor scales are float16."""
GRID_FROM = 5
"""First version whose positions are keys on a grid of S steps per pixel (PARAMS's S) rather than
float16 keys, and whose codebooks are coded symbols on a float16 step (the CODEBOOKS stream) rather
than float16 values in PARAMS."""
ADAPTIVE_FROM = 6
"""First version whose coded symbol streams may use the ADAPTIVE coding (section 9.7), and whose
payload holds its streams one after another without ids and lengths (section 7): every stream's
extent follows from PARAMS's head or from the coded stream's own fields."""
CODEBOOK_LEVELS = 32767
"""Largest magnitude of a codebook symbol (version 5)."""
MAX_CODEBOOK_STEP = 1.0
"""Largest codebook step (version 5): every codebook value stays within +-32767."""
MAX_POSITION_GRID = 64
"""Largest S."""
MAX_STAGES = 8
MAX_CODED_STREAMS = 1 + 8 + 3 + 3 + 1 + MAX_STAGES + 2
"""Most coded streams a payload holds: KEEP, eight RESIDUAL, three position and three Cholesky
streams, CODEBOOKS, up to MAX_STAGES COLOUR streams, HASH and MLP."""
MAX_CODEBOOK = 1 << 12
MAX_TENSORS = 64
MLP_TENSORS = 8
"""The last 8 network tensors are the MLP's (W1, b1, W2, b2, W_mu, b_mu, W_c, b_c)."""
MIN_TENSOR_BITS, MAX_TENSOR_BITS = 2, 8
"""Range of the network precision P."""
MAX_PARAM = 65536.0
"""Largest magnitude of a float32 in PARAMS (Cholesky step and offset, network tensor scales).

Cholesky factors are lengths in pixels and frames are at most 16384 pixels wide, so a step or
offset of 2^16 pixels is already absurd; with |scale| <= 2^16, a weight is at most 127 * 2^16 and
every network output stays finite in float32 (bitstream_spec.md, section 8)."""


def network_levels(bits: int) -> int:
    """Largest magnitude m = 2^(P-1) - 1 of a P-bit network symbol (symbols lie in [-m, m])."""
    return (1 << (bits - 1)) - 1


class Stream(IntEnum):
    """Stream ids of a GoP payload. CODEBOOKS (version 5 on, absent when the GoP inherits its
    quantizers) holds the codebook symbols; colour stage k has id COLOUR + k. HASH holds the symbols of
    the encoding's tensors (hash tables, or feature planes) one after another, MLP those of the
    MLP_TENSORS tensors of the MLP. A predicted GoP has PREDICTION, KEEP and the 8 RESIDUAL + a
    streams after PARAMS (expected_ids gives the order)."""

    PARAMS = 1
    POSITION_X = 2
    POSITION_Y_HIGH = 3
    POSITION_Y_LOW = 4
    CHOLESKY_L1 = 5
    CHOLESKY_L2 = 6
    CHOLESKY_L3 = 7
    CODEBOOKS = 8
    COLOUR = 16
    PREDICTION = 32
    KEEP = 33
    RESIDUAL = 34
    HASH = 64
    MLP = 65


class Keep(IntEnum):
    """What a predicted GoP does with each Gaussian of its reference (KEEP symbols)."""

    DROPPED = 0
    COPIED = 1
    """Kept with its reference values."""
    UPDATED = 2
    """Kept with residuals added to its reference values."""


RESIDUAL_ATTRIBUTES = ("x", "y", "l1", "l2", "l3", "r", "g", "b")
"""The values a residual changes, in RESIDUAL stream order: position (NDC), Cholesky factor
(pixels), colour."""
MAX_RESIDUAL = 1 << 24
"""Largest magnitude of a residual symbol."""
MAX_PREDICTED = float(1 << 24)
"""Largest magnitude of a value of an updated Gaussian (position, Cholesky factor or colour)."""
_PREDICTIONS = {3: struct.Struct("<I8f"), 4: struct.Struct("<I8e")}
"""PREDICTION stream by version: reference Gaussians, then one step per residual attribute
(float32 in version 3, float16 from version 4)."""


def _prediction_layout(version: int) -> struct.Struct:
    return _PREDICTIONS[4 if version >= INHERITS_FROM else 3]


def _head_layout(version: int) -> struct.Struct:
    """PARAMS's head by version: from version 5 with the position grid S."""
    return _GRID_HEAD if version >= GRID_FROM else _HEAD


def _scale_dtype(version: int) -> str:
    """Network tensor scales in PARAMS: float32 up to version 3, float16 from version 4."""
    return "<f2" if version >= INHERITS_FROM else "<f4"


class Quantizers(NamedTuple):
    """The side information that dequantizes a GoP's new Gaussians' Cholesky and colour symbols.
    A predicted GoP may inherit its reference's (GopRecord.inherits)."""

    cholesky_gamma: np.ndarray
    """[3] float32 per-channel step."""
    cholesky_beta: np.ndarray
    """[3] float32 per-channel offset."""
    codebooks: np.ndarray
    """[M, B, 3] residual-VQ codebooks (float16 values up to version 4, float32 from version 5)."""


@dataclass
class Prediction:
    """What a predicted GoP codes against its reference (the previous GoP's decoded Gaussians)."""

    keep: np.ndarray
    """[N_ref] int32 Keep value of each reference Gaussian, in reference order."""
    steps: np.ndarray
    """[8] float32 step of each residual attribute (RESIDUAL_ATTRIBUTES), positive."""
    residuals: np.ndarray
    """[U, 8] int32, one row per UPDATED reference Gaussian, in reference order."""


@dataclass
class GopRecord:
    """Everything the stream stores for one GoP."""

    positions: np.ndarray
    """[N, 2] int64 position keys (x, y), each in 0..65535: grid keys when position_grid > 0
    (quant.quantizers.PositionGrid), else float16 keys (position_keys)."""
    cholesky_symbols: np.ndarray
    """[N, 3] int32 in [0, 255]."""
    cholesky_gamma: np.ndarray
    """[3] float32 per-channel step."""
    cholesky_beta: np.ndarray
    """[3] float32 per-channel offset."""
    colour_indices: np.ndarray
    """[N, M] int32 indices into the M codebooks."""
    codebooks: np.ndarray
    """[M, B, 3] residual-VQ codebooks: float16 values up to version 4; from version 5 float32
    multiples q * codebook_step, |q| <= CODEBOOK_LEVELS."""
    tensor_symbols: list[np.ndarray]
    """Per network tensor (DeformationField.named_parameters() order), int32 in [-m, m] with
    m = 2^(P-1) - 1, row-major."""
    tensor_scales: list[np.float32]
    """Per network tensor, its step (float32; from version 4 the stream holds it as float16, so it
    must be a float16 value)."""
    network_bits: int = 8
    """Precision P of the network symbols."""
    prediction: Prediction | None = None
    """None for a key GoP. For a predicted GoP, the changes against the reference; the fields
    above then describe the new Gaussians only (decoded after the kept ones)."""
    inherits: bool = False
    """A predicted GoP whose Cholesky gamma, beta and codebooks are its reference's (`quantizers`
    of the reference's record): the payload omits them (version 4 on)."""
    position_grid: int = 0
    """S, the position grid's steps per pixel (1..MAX_POSITION_GRID, version 5 on); 0: the keys
    are float16 keys (versions 2 to 4)."""
    codebook_step: float = 0.0
    """c, the float16 step the codebooks are multiples of (0 < c <= MAX_CODEBOOK_STEP, version 5
    on); 0: float16 codebooks (versions 2 to 4)."""

    @property
    def quantizers(self) -> Quantizers:
        """The quantizers of the record's new Gaussians (those a predicted GoP after it may inherit)."""
        return Quantizers(self.cholesky_gamma, self.cholesky_beta, self.codebooks)

    def sorted(self) -> GopRecord:
        """The same record with Gaussians in stream order (ascending x key, then y key)."""
        keys = self.positions
        order = np.lexsort((keys[:, 1], keys[:, 0]))
        return replace(
            self, positions=keys[order], cholesky_symbols=self.cholesky_symbols[order], colour_indices=self.colour_indices[order]
        )


def position_keys(means: np.ndarray) -> np.ndarray:
    """float16 [N, 2] -> int64 [N, 2] keys in 0..65535 that sort as the values do (-0 just below +0):
    the position keys of versions 2 to 4."""
    bits = means.astype(np.float16).view(np.uint16).astype(np.int64)
    return np.where(bits & 0x8000, 0xFFFF - bits, bits | 0x8000)


def keys_to_means(keys: np.ndarray) -> np.ndarray:
    """Inverse of position_keys."""
    bits = np.where(keys & 0x8000, keys & 0x7FFF, 0xFFFF - keys)
    return bits.astype(np.uint16).view(np.float16)


def encode_gop(record: GopRecord, version: int = FORMAT_VERSION) -> bytes:
    """Payload bytes of a GoP record (the Gaussians are written in stream order) for a file of
    format `version` (3 to 6).

    Raises:
        ValueError: for a record that inherits quantizers without being predicted, or in version 3;
            for scales or steps that the version's float format does not hold exactly; for grid
            positions before version 5 or float16 ones from version 5.
    """
    if record.inherits and (record.prediction is None or version < INHERITS_FROM):
        raise ValueError(f"only a predicted GoP of version {INHERITS_FROM} or later inherits its reference's quantizers")
    if (record.position_grid > 0) != (version >= GRID_FROM) or record.position_grid > MAX_POSITION_GRID:
        raise ValueError(
            f"position grid {record.position_grid} in a version-{version} file: versions from {GRID_FROM} code positions on a grid "
            f"of 1 to {MAX_POSITION_GRID} steps per pixel, earlier ones as float16 (grid 0)"
        )
    record = record.sorted()
    keys = record.positions
    count = keys.shape[0]
    if count and (keys.min() < 0 or keys.max() > 0xFFFF):
        raise ValueError("position keys outside 0..65535")
    stages, book = record.codebooks.shape[:2]
    first_x = int(keys[0, 0]) if count else 0
    grid = (record.position_grid,) if version >= GRID_FROM else ()
    layout = _head_layout(version)
    sizes = (len(record.tensor_symbols), record.network_bits, *grid, first_x)
    coded_books = version >= GRID_FROM and not record.inherits
    books = _codebook_symbols(record.codebooks, record.codebook_step) if coded_books else None
    head = layout.pack(count, 0, 0, *sizes) if record.inherits else b"".join(
        (
            layout.pack(count, stages, book, *sizes),
            record.cholesky_gamma.astype("<f4").tobytes(),
            record.cholesky_beta.astype("<f4").tobytes(),
            np.float16(record.codebook_step).tobytes() if coded_books else _float16_codebooks(record.codebooks),
        )
    )
    scales = np.asarray(record.tensor_scales, np.float32)
    stored = scales.astype(_scale_dtype(version))
    if not np.array_equal(stored.astype(np.float32), scales):
        raise ValueError(f"network tensor scales {scales.tolist()} are not exact in a version-{version} PARAMS stream")
    adaptive = version >= ADAPTIVE_FROM
    streams = [(Stream.PARAMS, head + stored.tobytes())]
    if record.prediction is not None:
        streams += _prediction_streams(record.prediction, version)
    streams += [
        (Stream.POSITION_X, encode_symbols(np.diff(keys[:, 0]), adaptive=adaptive)),
        (Stream.POSITION_Y_HIGH, encode_symbols(keys[:, 1] >> 8, adaptive=adaptive)),
        (Stream.POSITION_Y_LOW, encode_symbols(keys[:, 1] & 0xFF, adaptive=adaptive)),
    ]
    streams += [(Stream.CHOLESKY_L1 + k, encode_symbols(record.cholesky_symbols[:, k], adaptive=adaptive)) for k in range(3)]
    streams += [(Stream.CODEBOOKS, encode_symbols(books.ravel(), adaptive=adaptive))] if coded_books else []
    streams += [(Stream.COLOUR + k, encode_symbols(record.colour_indices[:, k], adaptive=adaptive)) for k in range(stages)]
    split = len(record.tensor_symbols) - MLP_TENSORS
    for stream_id, tensors in ((Stream.HASH, record.tensor_symbols[:split]), (Stream.MLP, record.tensor_symbols[split:])):
        symbols = np.concatenate([np.ravel(t) for t in tensors] + [np.zeros(0, np.int32)])
        streams.append((stream_id, encode_symbols(symbols, adaptive=adaptive)))
    return join_streams([(int(k), v) for k, v in streams], version)


def join_streams(streams: list[tuple[int, bytes]], version: int = FORMAT_VERSION) -> bytes:
    """A payload of `streams` (id, data), in the order given: framed with ids and lengths up to
    version 5 (pack_streams), their data one after another from version 6."""
    if version < ADAPTIVE_FROM:
        return pack_streams(streams)
    return b"".join(bytes(data) for _, data in streams)


def split_payload(
    payload: bytes | memoryview, predicted: bool, version: int = FORMAT_VERSION
) -> tuple[list[tuple[int, memoryview]], list[int]]:
    """The (id, data) streams of a payload and where each one's data start in it.

    Up to version 5 the ids and lengths are in the payload (unpack_streams). From version 6 they
    follow from the layout (bitstream_spec.md, section 7): PARAMS, whose length its head gives; in
    a predicted GoP, PREDICTION (fixed length); then coded streams, each ending where its own fields
    say, in section 8's order, the COLOUR streams being all but the last two. The ids are checked
    against PARAMS and the reference by decode_gop, as in earlier versions.

    Raises:
        BitstreamError: for a payload whose streams run past its end, or that holds more coded
            streams than any GoP does; the message gives the byte offset in the payload.
    """
    if version < ADAPTIVE_FROM:
        streams = unpack_streams(payload)
        return streams, _stream_starts(streams, 0)
    view = memoryview(payload).cast("B")
    layout = _head_layout(version)
    if len(view) < layout.size:
        raise BitstreamError(f"parameter stream needs {layout.size} bytes at byte 0 of the payload, {len(view)} remain")
    _, stages, _, tensors, *_ = layout.unpack_from(view, 0)
    length = layout.size + (0 if stages == 0 else 24 + 2) + 2 * tensors  # M = 0: inherited quantizers
    fixed = [(Stream.PARAMS, length)] + ([(Stream.PREDICTION, _prediction_layout(version).size)] if predicted else [])
    streams, starts, at = [], [], 0
    for stream_id, size in fixed:
        if size > len(view) - at:
            raise BitstreamError(f"stream {stream_id} at byte {at} of the payload needs {size} bytes, {len(view) - at} remain")
        streams.append((stream_id, view[at : at + size]))
        starts.append(at)
        at += size
    ids = _stream_ids(predicted, coded_books=stages > 0, stages=0)[len(fixed) :]  # coded ones, no COLOUR yet
    coded = []
    while at < len(view):
        if len(coded) == MAX_CODED_STREAMS:
            raise BitstreamError(f"more than {MAX_CODED_STREAMS} coded streams, at byte {at} of the payload")
        try:
            end = stream_end(view, at)
        except BitstreamError as error:
            known = len(coded) < len(ids) - 2  # the streams before the COLOUR ones
            what = f"{stream_name(ids[len(coded)])} stream (id {ids[len(coded)]})" if known else "colour, hash or MLP stream"
            raise BitstreamError(f"{what} at byte {at} of the payload: {error}") from None
        coded.append((at, end))
        at = end
    colours = max(len(coded) - len(ids), 0)  # all but the last two (HASH, MLP) of those after the fixed ones
    ids = _stream_ids(predicted, coded_books=stages > 0, stages=colours)[len(fixed) :]
    for stream_id, (start, end) in zip(ids, coded):
        streams.append((stream_id, view[start:end]))
        starts.append(start)
    return streams, starts


def stream_name(stream_id: int) -> str:
    """How errors name a stream: "y positions (low)", "residual l1", "colour stage 0", ..."""
    names = {
        Stream.PARAMS: "parameter", Stream.PREDICTION: "prediction", Stream.KEEP: "keep",
        Stream.POSITION_X: "x positions", Stream.POSITION_Y_HIGH: "y positions (high)",
        Stream.POSITION_Y_LOW: "y positions (low)", Stream.CODEBOOKS: "codebooks", Stream.HASH: "hash network",
        Stream.MLP: "MLP network",
    }  # fmt: skip
    if stream_id in names:
        return names[stream_id]
    if Stream.CHOLESKY_L1 <= stream_id <= Stream.CHOLESKY_L3:
        return f"Cholesky channel {stream_id - Stream.CHOLESKY_L1}"
    if Stream.RESIDUAL <= stream_id < Stream.RESIDUAL + len(RESIDUAL_ATTRIBUTES):
        return f"residual {RESIDUAL_ATTRIBUTES[stream_id - Stream.RESIDUAL]}"
    return f"colour stage {stream_id - Stream.COLOUR}"


def _codebook_symbols(codebooks: np.ndarray, step: float) -> np.ndarray:
    """The symbols q of version-5 codebooks (codebooks == float32(q) * step exactly).

    Raises:
        ValueError: for a step that is not a float16 in (0, MAX_CODEBOOK_STEP], or codebooks that
            are not such multiples of it.
    """
    step32 = np.float32(step)
    if not (0 < step32 <= MAX_CODEBOOK_STEP and np.float32(np.float16(step32)) == step32):
        raise ValueError(f"codebook step {step!r}: version 5 needs a float16 in (0, {MAX_CODEBOOK_STEP:g}]")
    values = np.asarray(codebooks, np.float32)
    symbols = np.round(values / step32).astype(np.int64)
    if np.abs(symbols).max(initial=0) > CODEBOOK_LEVELS or not np.array_equal(symbols.astype(np.float32) * step32, values):
        raise ValueError(f"codebooks are not multiples q * {float(step32):g} with |q| <= {CODEBOOK_LEVELS}")
    return symbols


def _float16_codebooks(codebooks: np.ndarray) -> bytes:
    """Codebooks as PARAMS holds them up to version 4.

    Raises:
        ValueError: for values that float16 does not hold exactly.
    """
    stored = np.asarray(codebooks).astype("<f2")
    if not np.array_equal(stored.astype(np.float32), np.asarray(codebooks, np.float32), equal_nan=True):
        raise ValueError("codebooks are not float16 values, as versions 2 to 4 store them")
    return stored.tobytes()


def _prediction_streams(prediction: Prediction, version: int) -> list[tuple[int, bytes]]:
    """PREDICTION, KEEP and the RESIDUAL streams of a predicted GoP.

    Raises:
        ValueError: for steps the version's PREDICTION layout does not hold exactly.
    """
    residuals = np.asarray(prediction.residuals, np.int32).reshape(-1, len(RESIDUAL_ATTRIBUTES))
    steps = np.asarray(prediction.steps, np.float32)
    layout = _prediction_layout(version)
    head = layout.pack(len(prediction.keep), *steps.tolist())
    if not np.array_equal(np.asarray(layout.unpack(head)[1:], np.float32), steps):
        raise ValueError(f"residual steps {steps.tolist()} are not exact in the version-{version} PREDICTION stream")
    adaptive = version >= ADAPTIVE_FROM
    streams = [(Stream.PREDICTION, head), (Stream.KEEP, encode_symbols(np.asarray(prediction.keep), adaptive=adaptive))]
    return streams + [(Stream.RESIDUAL + k, encode_symbols(residuals[:, k], adaptive=adaptive)) for k in range(residuals.shape[1])]


def decode_gop(
    payload: bytes | memoryview,
    tensor_sizes: list[int],
    *,
    base: int = 0,
    reference: int | None = None,
    quantizers: Quantizers | None = None,
    version: int = FORMAT_VERSION,
) -> GopRecord:
    """Parses a GoP payload.

    Args:
        payload: the chunk's payload bytes.
        tensor_sizes: element count of each network tensor, in stream order (from the header's
            model configuration).
        base: where the payload starts in the file; error messages give byte offsets from the
            start of the file (from the start of the payload when 0).
        reference: None for a key GoP; for a predicted GoP (the GoP index says which), the
            Gaussian count of its reference, the previous GoP as decoded.
        quantizers: for a predicted GoP, its reference's (GopRecord.quantizers of the reference's
            record as decoded), which it may inherit; the returned record then holds them.
        version: the file's format version (the header's).

    Raises:
        BitstreamError: on any malformed, missing or out-of-range field, naming the stream and
            the byte offset.
    """
    try:
        streams, starts = split_payload(payload, reference is not None, version)
    except BitstreamError as error:
        raise BitstreamError("GoP payload: " + _shift_offsets(str(error).replace(" of the payload", ""), base)) from None
    starts = [base + start for start in starts]
    inherits = _inherits(streams, reference is not None, version)
    if inherits and quantizers is None:
        raise BitstreamError("GoP payload: inherits its reference's quantizers, which were not given")
    inherited_stages = len(quantizers.codebooks) if inherits else None
    expected_ids = _expected_ids(streams, tensor_sizes, reference is not None, inherited_stages, version)
    ids = [stream_id for stream_id, _ in streams]
    if ids != expected_ids:
        raise BitstreamError(f"GoP payload: stream ids {ids} differ from the expected {expected_ids}")
    params = streams[0][1]
    count, stages, book, tensors, bits, grid, first_x = _params_head(params, inherits, version)
    at = starts[0]  # where PARAMS's data start
    head = _head_layout(version).size
    coded_books = version >= GRID_FROM and not inherits
    if inherits:
        gamma, beta, codebooks = quantizers
        stages, book = codebooks.shape[:2]
        scales_at = head
    else:
        books_at = head + 24  # the codebook step from version 5, the codebooks before
        scales_at = books_at + (2 if coded_books else stages * book * 6)
    scale_dtype = _scale_dtype(version)
    need = scales_at + int(scale_dtype[-1]) * tensors
    if len(params) != need:
        raise BitstreamError(f"GoP payload: parameter stream holds {len(params)} bytes, expected {need}")
    if not inherits:
        gamma = _floats(params, "<f4", 3, head, "Cholesky step gamma", at, MAX_PARAM)
        beta = _floats(params, "<f4", 3, head + 12, "Cholesky offset beta", at, MAX_PARAM)
        if coded_books:
            step = _floats(params, "<f2", 1, books_at, "codebook step", at, None)[0]
            if not 0 < step <= MAX_CODEBOOK_STEP:
                raise BitstreamError(f"GoP payload: codebook step {float(step):.7g} at byte {at + books_at} is not in (0, {MAX_CODEBOOK_STEP:g}]")
        else:
            codebooks = _floats(params, "<f2", stages * book * 3, books_at, "codebook value", at, None).reshape(stages, book, 3)
    scales = [np.float32(v) for v in _floats(params, scale_dtype, tensors, scales_at, "network tensor scale", at, MAX_PARAM)]

    data = iter(zip(streams[1:], starts[1:]))
    prediction = None

    def symbols(count_: int, low: int, high: int) -> np.ndarray:
        (stream_id, view), start = next(data)
        where = f"GoP payload: {stream_name(stream_id)} stream (id {stream_id}) at byte {start}"
        try:
            values, end = decode_symbols(view, 0, max_count=count_, adaptive=version >= ADAPTIVE_FROM)
        except BitstreamError as error:
            raise BitstreamError(f"{where}: {_shift_offsets(str(error), start)}") from None
        if values.shape[0] != count_:
            raise BitstreamError(f"{where}: holds {values.shape[0]} symbols, expected {count_}")
        if end != len(view):
            raise BitstreamError(f"{where}: {len(view) - end} bytes after the coded stream, at byte {start + end}")
        if values.size and (values.min() < low or values.max() > high):
            raise BitstreamError(f"{where}: symbols outside [{low}, {high}]")
        return values

    if reference is not None:
        (_, view), start = next(data)
        prediction_head = _prediction_head(view, start, reference, version)
        keep = symbols(reference, 0, max(Keep))
        updated = int(np.count_nonzero(keep == Keep.UPDATED))
        residuals = [symbols(updated, -MAX_RESIDUAL, MAX_RESIDUAL) for _ in RESIDUAL_ATTRIBUTES]
        prediction = Prediction(keep.astype(np.int32), prediction_head, np.stack(residuals, -1).astype(np.int32))
    if count == 0 and first_x != 0:
        raise BitstreamError(f"GoP payload: first x key {first_x} with no Gaussians (must be 0), at byte {at + head - 2}")
    dx = symbols(max(count - 1, 0), 0, 0xFFFF)
    x = first_x + np.concatenate(([0], np.cumsum(dx, dtype=np.int64))) if count else np.zeros(0, np.int64)
    if x.size and x[-1] > 0xFFFF:
        raise BitstreamError(f"GoP payload: x positions stream at byte {starts[ids.index(Stream.POSITION_X)]}: x keys pass 65535")
    y = symbols(count, 0, 0xFF).astype(np.int64) << 8
    y |= symbols(count, 0, 0xFF)
    positions = np.stack((x, y), axis=-1).reshape(count, 2)
    if grid == 0:  # float16 keys: every value must be finite
        finite = np.isfinite(keys_to_means(positions)).all(axis=-1)
        if not finite.all():
            n = int(np.argmin(finite))
            value = keys_to_means(positions[n]).tolist()
            raise BitstreamError(f"GoP payload: Gaussian {n} (stream order) has a non-finite position {value}")
    cholesky = np.stack([symbols(count, 0, 255) for _ in range(3)], axis=-1)
    if coded_books:  # section 8.2: float32(q) * float32(c)
        books = symbols(stages * book * 3, -CODEBOOK_LEVELS, CODEBOOK_LEVELS)
        codebooks = (books.astype(np.float32) * np.float32(step)).reshape(stages, book, 3)
    colours = np.stack([symbols(count, 0, book - 1) for _ in range(stages)], axis=-1)
    levels = network_levels(bits)
    network = []
    split = len(tensor_sizes) - MLP_TENSORS
    for sizes in (tensor_sizes[:split], tensor_sizes[split:]):
        values = symbols(sum(sizes), -levels, levels)
        network += np.split(values, np.cumsum(sizes)[:-1]) if sizes else []
    return GopRecord(
        positions,
        cholesky.reshape(count, 3).astype(np.int32),
        gamma,
        beta,
        colours.reshape(count, stages).astype(np.int32),
        codebooks,
        network,
        scales,
        bits,
        prediction,
        inherits,
        grid,
        float(step) if coded_books else 0.0,
    )


def _prediction_head(view: memoryview, start: int, reference: int, version: int) -> np.ndarray:
    """The steps of a PREDICTION stream at file offset `start`, after checking its length, its
    reference count against `reference` and the steps."""
    layout = _prediction_layout(version)
    if len(view) != layout.size:
        raise BitstreamError(f"GoP payload: prediction stream at byte {start} holds {len(view)} bytes, expected {layout.size}")
    count, *steps = layout.unpack(view)
    if count != reference:
        raise BitstreamError(
            f"GoP payload: prediction stream at byte {start} refers to {count} Gaussians, the previous GoP decodes to {reference}"
        )
    steps = np.asarray(steps, np.float32)
    good = np.isfinite(steps) & (steps > 0) & (steps <= MAX_PARAM)
    if not good.all():
        k = int(np.argmin(good))
        raise BitstreamError(
            f"GoP payload: residual step {RESIDUAL_ATTRIBUTES[k]} = {float(steps[k]):.7g} at byte {start + 4 + (layout.size - 4) // 8 * k} "
            f"is not in (0, {MAX_PARAM:g}]"
        )
    return steps


STREAM_KINDS = ("positions", "shape", "colour", "prediction", "hash", "mlp", "side")
"""What streams code, for reports: Gaussian positions, shapes (Cholesky), colour (RVQ indices),
prediction (a predicted GoP's keep classes and residuals), hash (the encoding's tables, or planes),
mlp, and side (sizes, scales, codebooks, framing)."""


def stream_kind(stream_id: int) -> str:
    """The STREAM_KINDS entry of a stream id."""
    if Stream.PREDICTION <= stream_id < Stream.RESIDUAL + len(RESIDUAL_ATTRIBUTES):
        return "prediction"
    if stream_id == Stream.MLP:
        return "mlp"
    if stream_id == Stream.HASH:
        return "hash"
    if stream_id >= Stream.COLOUR:
        return "colour"
    if stream_id == Stream.CODEBOOKS:
        return "side"
    if stream_id >= Stream.CHOLESKY_L1:
        return "shape"
    return "positions" if stream_id >= Stream.POSITION_X else "side"


def stream_sizes(payload: bytes | memoryview, predicted: bool, version: int = FORMAT_VERSION) -> dict[str, int]:
    """Bytes of a GoP payload per kind of stream (stream framing, up to version 5, counted as side
    information)."""
    sizes = dict.fromkeys(STREAM_KINDS, 0)
    streams, _ = split_payload(payload, predicted, version)
    for stream_id, view in streams:
        sizes[stream_kind(stream_id)] += len(view)
    sizes["side"] += len(payload) - sum(len(view) for _, view in streams)
    return sizes


def _floats(params, dtype: str, count: int, offset: int, what: str, at: int, limit: float | None) -> np.ndarray:
    """`count` little-endian floats of PARAMS at `offset`, checked finite and, with a limit, |v| <= limit.

    Args:
        at: offset of PARAMS in the payload, for messages.

    Raises:
        BitstreamError: naming the first bad value, its index and its byte in the payload.
    """
    values = np.frombuffer(params, dtype, count, offset)
    good = np.isfinite(values)
    if limit is not None:
        good &= np.abs(values.astype(np.float32)) <= limit
    if not good.all():
        k = int(np.argmin(good))
        bound = "" if limit is None else f" or outside [-{limit:g}, {limit:g}]"
        byte = at + offset + k * values.itemsize
        raise BitstreamError(f"GoP payload: {what} {k} = {float(values[k]):.7g} at byte {byte} is not finite{bound}")
    return values.astype(dtype[1:])


def _params_head(params: memoryview | bytes, inheritable: bool = False, version: int = FORMAT_VERSION) -> tuple[int, ...]:
    """PARAMS's head: (N, M, B, K, P, S, first x key), S = 0 before version 5. `inheritable`:
    M = B = 0 (quantizers inherited) is accepted."""
    layout = _head_layout(version)
    if len(params) < layout.size:
        raise BitstreamError(f"GoP payload: parameter stream of {len(params)} bytes is too short")
    count, stages, book, tensors, bits, *grid, first_x = layout.unpack_from(params, 0)
    grid = grid[0] if grid else 0
    inherited = inheritable and (stages, book) == (0, 0)
    if not (
        count <= MAX_GAUSSIANS
        and (inherited or (1 <= stages <= MAX_STAGES and 1 <= book <= MAX_CODEBOOK))
        and tensors <= MAX_TENSORS
        and MIN_TENSOR_BITS <= bits <= MAX_TENSOR_BITS
        and (version < GRID_FROM or 1 <= grid <= MAX_POSITION_GRID)
    ):
        raise BitstreamError(
            f"GoP payload: sizes out of range (Gaussians {count}, stages {stages}, codebook {book}, "
            f"tensors {tensors}, network bits {bits}" + (f", position grid {grid})" if version >= GRID_FROM else ")")
        )
    return count, stages, book, tensors, bits, grid, first_x


def _inherits(streams, predicted: bool, version: int) -> bool:
    """Whether a payload's PARAMS says it inherits its reference's quantizers (M = 0): allowed in a
    predicted GoP from version 4 on; otherwise M = 0 is out of range (and _params_head says so)."""
    if not streams or streams[0][0] != Stream.PARAMS:
        raise BitstreamError("GoP payload: the first stream must be the parameter stream")
    params = streams[0][1]
    return predicted and version >= INHERITS_FROM and len(params) >= _HEAD.size and _HEAD.unpack_from(params, 0)[1] == 0


def _expected_ids(
    streams, tensor_sizes: list[int], predicted: bool, inherited_stages: int | None = None, version: int = FORMAT_VERSION
) -> list[int]:
    """The stream ids a payload must hold; `inherited_stages`: the reference's M for a payload that
    inherits its quantizers."""
    _, stages, _, tensors, *_ = _params_head(streams[0][1], inherited_stages is not None, version)
    coded_books = version >= GRID_FROM and inherited_stages is None
    stages = inherited_stages if inherited_stages is not None else stages
    if tensors != len(tensor_sizes) or tensors < MLP_TENSORS:
        raise BitstreamError(f"GoP payload: {tensors} network tensors, the model configuration has {len(tensor_sizes)}")
    return _stream_ids(predicted, coded_books, stages)


def _stream_ids(predicted: bool, coded_books: bool, stages: int) -> list[int]:
    """Section 8's stream ids, in payload order, of a GoP with `stages` COLOUR streams."""
    prediction = [Stream.PREDICTION, Stream.KEEP] + [Stream.RESIDUAL + k for k in range(len(RESIDUAL_ATTRIBUTES))]
    return (
        [Stream.PARAMS] + (prediction if predicted else [])
        + [Stream.POSITION_X, Stream.POSITION_Y_HIGH, Stream.POSITION_Y_LOW]
        + [Stream.CHOLESKY_L1, Stream.CHOLESKY_L2, Stream.CHOLESKY_L3]
        + ([Stream.CODEBOOKS] if coded_books else [])
        + [Stream.COLOUR + k for k in range(stages)]
        + [Stream.HASH, Stream.MLP]
    )


def gaussian_count(payload: bytes | memoryview, version: int = FORMAT_VERSION) -> int:
    """The Gaussian count N a GoP payload declares (read from PARAMS, without decoding the streams).

    Raises:
        BitstreamError: for a payload without a valid PARAMS stream.
    """
    if version >= ADAPTIVE_FROM:  # PARAMS comes first, unframed
        return _params_head(payload, inheritable=True, version=version)[0]
    for stream_id, view in unpack_streams(payload):
        if stream_id == Stream.PARAMS:
            return _params_head(view, inheritable=True, version=version)[0]
    raise BitstreamError("GoP payload: no parameter stream")


def keep_counts(payload: bytes | memoryview, version: int = FORMAT_VERSION) -> tuple[int, int, int]:
    """(reference Gaussians, kept, copied) of a predicted GoP's payload, read from its PREDICTION
    and KEEP streams alone (the payload's other streams are not decoded).

    Raises:
        BitstreamError: for a payload without a readable PREDICTION or KEEP stream.
    """
    streams = dict(split_payload(payload, True, version)[0])
    sizes = {layout.size for layout in _PREDICTIONS.values()}
    if Stream.PREDICTION not in streams or Stream.KEEP not in streams or len(streams[Stream.PREDICTION]) not in sizes:
        raise BitstreamError("GoP payload: no prediction streams")
    reference = struct.unpack_from("<I", streams[Stream.PREDICTION])[0]
    keep, _ = decode_symbols(streams[Stream.KEEP], 0, max_count=reference, adaptive=version >= ADAPTIVE_FROM)
    return reference, int(np.count_nonzero(keep != Keep.DROPPED)), int(np.count_nonzero(keep == Keep.COPIED))


def _stream_starts(streams: list[tuple[int, memoryview]], base: int) -> list[int]:
    """Where each stream's data start, counting from `base` (the streams as unpack_streams found them)."""
    starts, offset = [], base
    for _, view in streams:
        start = offset + 1 + len(write_uvarint(len(view)))
        starts.append(start)
        offset = start + len(view)
    return starts


def _shift_offsets(message: str, start: int) -> str:
    """A message whose "byte N" offsets count within a buffer, with N counted from where that buffer
    starts (`start`) instead."""
    return re.sub(r"\bbyte (at )?(\d+)", lambda m: f"byte {m.group(1) or ''}{start + int(m.group(2))}", message)
