"""The .stgv file header and GoP index: records <-> bytes, with every field validated.

    header:  "STGV" | version u16 | body length u32 | body (geometry, fps, frames, GoP size, config) | CRC32
    index:   count u32 | count x (first frame u32, frame count u32, offset u64, length u32, flags u8) | CRC32
             (version 2: no flags byte, every GoP a key GoP)

Byte layouts are normative in bitstream_spec.md ("File header", "GoP index"). Parsers take the
file offset of their buffer so that error messages give absolute byte positions.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction

from stgvcodec.bitstream.errors import BitstreamError
from stgvcodec.gop import split_gops

MAGIC = b"STGV"
"""First four bytes of every .stgv file."""
FORMAT_VERSION = 6
"""The version this code writes unless a header asks for another."""
READ_VERSIONS = (2, 3, 4, 5, 6)
"""The versions this code reads (and can write)."""
_READ_VERSIONS_TEXT = ", ".join(map(str, READ_VERSIONS[:-1])) + f" and {READ_VERSIONS[-1]}"
PREDICTED = 0x01
"""Flag bit of an index entry of version 3 or later: the GoP's payload is coded against the previous GoP's
decoded model. The other seven bits are reserved and must be 0."""

MAX_DIMENSION = 16384
"""Largest width or height in pixels."""
MAX_FRAMES = 10_000_000
"""Largest frame count."""
MAX_GOPS = MAX_FRAMES
"""Largest GoP count (a GoP holds at least one frame, and the count must not exceed frame_count)."""
MAX_CONFIG_BYTES = 4096
"""Largest opaque configuration blob."""
MAX_HEADER_BODY = 65536
"""Largest header body a reader accepts; bytes past the version-1 fields are skipped (see spec)."""
MAX_CHUNK_PAYLOAD = 1 << 30
"""Largest chunk payload (1 GiB)."""
CHUNK_FRAMING = 8
"""Bytes a chunk adds around its payload: u32 length before, u32 CRC32 after."""

_PREFIX = struct.Struct("<4sHI")  # magic, version, body length
_FIELDS = struct.Struct("<IIIIIHH")  # width, height, fps num, fps den, frame count, GoP size, config length
_U32 = struct.Struct("<I")
_ENTRIES = {2: struct.Struct("<IIQI"), **dict.fromkeys((3, 4, 5, 6), struct.Struct("<IIQIB"))}
"""Index entry by version: first frame, frame count, chunk offset, chunk length (and flags, from 3)."""
_FLAGS_AT = 20
"""Offset of the flags byte in an index entry of version 3 or later."""

HEADER_PREFIX_BYTES = _PREFIX.size
"""Bytes before the header body: magic, version, body length."""
INDEX_COUNT_BYTES = _U32.size
"""Bytes of the GoP count that starts the index."""


@dataclass(frozen=True)
class FileHeader:
    """What a decoder needs before the first GoP: geometry, timing, GoP layout and model config."""

    width: int
    """Frame width in pixels, 1..MAX_DIMENSION."""
    height: int
    """Frame height in pixels, 1..MAX_DIMENSION."""
    fps_num: int
    """Frame rate numerator, 1..2**32-1 (frames per second = fps_num / fps_den)."""
    fps_den: int
    """Frame rate denominator, 1..2**32-1."""
    frame_count: int
    """Frames in the file, 1..MAX_FRAMES."""
    gop_size: int
    """Nominal GoP length in frames, 1..65535; the split follows stgvcodec.gop.split_gops."""
    config: bytes = b""
    """Opaque model/quantizer configuration defined by another module, at most MAX_CONFIG_BYTES."""
    version: int = FORMAT_VERSION
    """Format version of the file, one of READ_VERSIONS; it fixes the GoP index layout."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", bytes(self.config))
        problem = _header_problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def fps(self) -> Fraction:
        """Frame rate in frames per second."""
        return Fraction(self.fps_num, self.fps_den)

    @property
    def gop_count(self) -> int:
        """Number of GoPs (and chunks) the file holds."""
        full, tail = _gop_layout(self.frame_count, self.gop_size)
        return full + len(tail)


def _header_problem(header: FileHeader) -> str | None:
    """Describes the first field outside its limits, or None."""
    checks = [
        (1 <= header.width <= MAX_DIMENSION, f"width {header.width} not in 1..{MAX_DIMENSION}"),
        (1 <= header.height <= MAX_DIMENSION, f"height {header.height} not in 1..{MAX_DIMENSION}"),
        (1 <= header.fps_num < 1 << 32, f"fps numerator {header.fps_num} not in 1..2**32-1"),
        (1 <= header.fps_den < 1 << 32, f"fps denominator {header.fps_den} not in 1..2**32-1"),
        (1 <= header.frame_count <= MAX_FRAMES, f"frame count {header.frame_count} not in 1..{MAX_FRAMES}"),
        (1 <= header.gop_size < 1 << 16, f"GoP size {header.gop_size} not in 1..65535"),
        (len(header.config) <= MAX_CONFIG_BYTES, f"config of {len(header.config)} bytes > {MAX_CONFIG_BYTES}"),
        (
            header.version in READ_VERSIONS,
            f"version {header.version}: this code reads and writes {_READ_VERSIONS_TEXT}",
        ),
    ]
    return next((message for ok, message in checks if not ok), None)


def encode_header(header: FileHeader) -> bytes:
    """The header record: prefix, body, CRC32 of prefix and body."""
    fields = (header.width, header.height, header.fps_num, header.fps_den, header.frame_count, header.gop_size)
    body = _FIELDS.pack(*fields, len(header.config)) + header.config
    record = _PREFIX.pack(MAGIC, header.version, len(body)) + body
    return record + _U32.pack(zlib.crc32(record))


def parse_header_prefix(prefix: bytes) -> int:
    """Checks magic, version and body length (the file's first HEADER_PREFIX_BYTES bytes).

    Returns:
        Total header record size in bytes (prefix, body and CRC).

    Raises:
        BitstreamError: On a wrong magic, a version not in READ_VERSIONS, or a body length out of limits.
    """
    magic, version, body_length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise BitstreamError(f"not a .stgv file: magic {magic!r} at byte 0, expected {MAGIC!r}")
    if version not in READ_VERSIONS:
        raise BitstreamError(f"unsupported .stgv version {version} (this decoder reads {_READ_VERSIONS_TEXT})")
    if not _FIELDS.size <= body_length <= MAX_HEADER_BODY:
        raise BitstreamError(f"header body length {body_length} at byte 6 not in {_FIELDS.size}..{MAX_HEADER_BODY}")
    return _PREFIX.size + body_length + _U32.size


def parse_header(record: bytes) -> FileHeader:
    """Parses a whole header record (as sized by parse_header_prefix) after checking its CRC.

    Raises:
        BitstreamError: On a CRC mismatch, a config running past the body, or a field out of limits.
    """
    parse_header_prefix(record[: _PREFIX.size])
    body_end = len(record) - _U32.size
    (stored,) = _U32.unpack_from(record, body_end)
    if zlib.crc32(record[:body_end]) != stored:
        raise BitstreamError(f"header CRC mismatch at byte {body_end}")
    _, version, _ = _PREFIX.unpack_from(record)
    *fields, config_length = _FIELDS.unpack_from(record, _PREFIX.size)
    config_at = _PREFIX.size + _FIELDS.size
    if config_at + config_length > body_end:
        raise BitstreamError(f"config length {config_length} at byte {config_at - 2} runs past the header body")
    try:
        return FileHeader(*fields, config=record[config_at : config_at + config_length], version=version)
    except ValueError as error:
        raise BitstreamError(f"header at byte {_PREFIX.size}: {error}") from None


@dataclass(frozen=True)
class GopEntry:
    """One GoP index entry: which frames a chunk holds and where the chunk lies."""

    index: int
    """Position of the GoP in the file, from 0 (implied by order, not stored)."""
    first_frame: int
    """First frame of the GoP."""
    frame_count: int
    """Frames in the GoP."""
    offset: int
    """Byte offset of the chunk record from the start of the file."""
    length: int
    """Bytes of the whole chunk record: payload plus CHUNK_FRAMING."""
    predicted: bool = False
    """True for a predicted GoP (payload coded against GoP index-1's decoded model), False for a
    key GoP (decodes on its own). GoP 0 and every GoP of a version-2 file are key GoPs."""

    @property
    def label(self) -> str:
        """How error messages name the GoP, e.g. "GoP 3 (frames 30-39)"."""
        return f"GoP {self.index} (frames {self.first_frame}-{self.first_frame + self.frame_count - 1})"


def index_size(gop_count: int, version: int) -> int:
    """Bytes of a version-`version` GoP index record with `gop_count` entries."""
    return _U32.size + gop_count * _ENTRIES[version].size + _U32.size


def check_writable(entry: GopEntry, version: int) -> None:
    """Checks that `entry` can be written into a version-`version` index.

    Raises:
        ValueError: If a predicted GoP is GoP 0, or is to go into a version-2 index (which has no flags).
    """
    if entry.predicted and entry.index == 0:
        raise ValueError(f"{entry.label}: predicted, but the first GoP must be a key GoP")
    if entry.predicted and version == 2:
        raise ValueError(f"{entry.label}: predicted, but a version-2 file holds key GoPs only")


def encode_index(entries: list[GopEntry], version: int) -> bytes:
    """The version-`version` GoP index record: count, entries, CRC32 of count and entries.

    Raises:
        ValueError: As check_writable, for any entry.
    """
    for entry in entries:
        check_writable(entry, version)
    record = _U32.pack(len(entries)) + b"".join(_pack_entry(entry, version) for entry in entries)
    return record + _U32.pack(zlib.crc32(record))


def _pack_entry(entry: GopEntry, version: int) -> bytes:
    """One index entry in the layout of `version` (checked by check_writable)."""
    fields = (entry.first_frame, entry.frame_count, entry.offset, entry.length)
    if version == 2:  # no flags byte
        return _ENTRIES[2].pack(*fields)
    return _ENTRIES[version].pack(*fields, PREDICTED if entry.predicted else 0)


def parse_index_count(data: bytes, at: int, header: FileHeader) -> int:
    """Reads and bounds the GoP count (the index's first INDEX_COUNT_BYTES bytes at file offset `at`).

    Raises:
        BitstreamError: If the count is not what the header's frame count and GoP size give.
    """
    (count,) = _U32.unpack(data)
    # The header fixes the count, which bounds it by MAX_GOPS before the entries are read.
    if count != header.gop_count:
        raise BitstreamError(
            f"GoP index at byte {at}: {count} GoPs, but {header.frame_count} frames "
            f"in GoPs of {header.gop_size} make {header.gop_count}"
        )
    return count


def parse_index(record: bytes, at: int, header: FileHeader) -> tuple[GopEntry, ...]:
    """Parses a whole index record at file offset `at` (sized by index_size(parse_index_count(...))).

    The entry layout is that of header.version; every entry of a version-2 index is a key GoP.

    Raises:
        BitstreamError: On a CRC mismatch, or entries that do not cover the frames in order with
            the GoP sizes of the header, or chunks that are not laid end to end after the index,
            or (version 3 on) reserved flag bits set or a predicted GoP 0.
    """
    parse_index_count(record[: _U32.size], at, header)
    body_end = len(record) - _U32.size
    (stored,) = _U32.unpack_from(record, body_end)
    if zlib.crc32(record[:body_end]) != stored:
        raise BitstreamError(f"GoP index CRC mismatch at byte {at + body_end}")
    layout = _ENTRIES[header.version]
    entries, first_frame, offset = [], 0, at + len(record)
    for k, frames in enumerate(gop_frame_counts(header)):
        entry_at = at + _U32.size + k * layout.size
        fields = layout.unpack_from(record, entry_at - at)
        flags = 0 if header.version == 2 else fields[4]
        entry = GopEntry(k, *fields[:4], predicted=bool(flags & PREDICTED))
        _check_entry(entry, first_frame, frames, offset, entry_at)
        _check_flags(entry, flags, entry_at + _FLAGS_AT)
        entries.append(entry)
        first_frame, offset = first_frame + frames, offset + entry.length
    return tuple(entries)


def _check_entry(entry: GopEntry, first_frame: int, frames: int, offset: int, at: int) -> None:
    """Checks one entry against the frame split and the end of the previous chunk."""
    if (entry.first_frame, entry.frame_count) != (first_frame, frames):
        raise BitstreamError(
            f"GoP index entry {entry.index} at byte {at}: frames {entry.first_frame}+{entry.frame_count}, "
            f"expected {first_frame}+{frames}"
        )
    if entry.offset != offset:
        raise BitstreamError(f"{entry.label}: chunk offset {entry.offset} at byte {at + 8}, expected {offset}")
    if not CHUNK_FRAMING <= entry.length <= MAX_CHUNK_PAYLOAD + CHUNK_FRAMING:
        raise BitstreamError(f"{entry.label}: chunk length {entry.length} at byte {at + 16} out of limits")


def _check_flags(entry: GopEntry, flags: int, at: int) -> None:
    """Checks the flags byte of an entry of version 3 or later (at file offset `at`) after _check_entry."""
    if flags & ~PREDICTED:
        raise BitstreamError(f"{entry.label}: reserved flag bits set in flags 0x{flags:02x} at byte {at}")
    if entry.predicted and entry.index == 0:
        raise BitstreamError(
            f"{entry.label}: predicted (flags 0x{flags:02x} at byte {at}), but GoP 0 must be a key GoP"
        )


def gop_frame_counts(header: FileHeader) -> list[int]:
    """Frames of each GoP, as stgvcodec.gop.split_gops splits header.frame_count."""
    full, tail = _gop_layout(header.frame_count, header.gop_size)
    return [header.gop_size] * full + tail


def _gop_layout(frame_count: int, gop_size: int) -> tuple[int, list[int]]:
    """GoP sizes as (number of leading full GoPs, sizes of the GoPs after them).

    Only the last two GoPs can differ from gop_size, so split_gops runs on at most the last
    three GoPs' frames: it sums its starts in quadratic time, too slow for millions of GoPs.
    """
    full = max(frame_count // gop_size - 2, 0)
    tail = [size for _, size in split_gops(frame_count - full * gop_size, gop_size)]
    return full, tail
