"""Writing and reading .stgv files: header, GoP index, then one CRC-checked chunk per GoP.

    write_stgv: header | index placeholder | chunk 0 | chunk 1 | ...  -> seek back, write index -> rename
    StgvReader: header + index checked on open; read_chunk(k) seeks to GoP k and checks its CRC

    GoPs:   key  pred pred key  pred key        (from version 3; a version-2 file holds key GoPs only)
             0    1    2    3    4    5         key_gop(2) = 0, dependants(1) = range(2, 3)

A chunk record is: payload length u32 | payload | CRC32(payload) u32 (bitstream_spec.md, "Chunks").
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from stgvcodec.bitstream.errors import BitstreamError
from stgvcodec.bitstream.records import (
    CHUNK_FRAMING,
    HEADER_PREFIX_BYTES,
    INDEX_COUNT_BYTES,
    MAX_CHUNK_PAYLOAD,
    FileHeader,
    GopEntry,
    check_writable,
    encode_header,
    encode_index,
    gop_frame_counts,
    index_size,
    parse_header,
    parse_header_prefix,
    parse_index,
    parse_index_count,
)
from stgvcodec.io.atomic import StagedPath

_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class Chunk:
    """One GoP's payload for write_stgv, with how it is coded."""

    payload: bytes
    """The GoP payload (bytes-like), at most MAX_CHUNK_PAYLOAD bytes."""
    predicted: bool = False
    """True if the payload is coded against the previous GoP's decoded model (a predicted GoP,
    from version 3 only, never GoP 0); False for a key GoP, which decodes on its own."""


def _write_chunk(file: BinaryIO, payload: bytes, label: str) -> int:
    """Writes one chunk record; returns its length in bytes."""
    view = memoryview(payload).cast("B")
    if len(view) > MAX_CHUNK_PAYLOAD:
        raise ValueError(f"{label}: payload of {len(view)} bytes exceeds {MAX_CHUNK_PAYLOAD}")
    file.write(_U32.pack(len(view)))
    file.write(view)
    file.write(_U32.pack(zlib.crc32(view)))
    return len(view) + CHUNK_FRAMING


def _write_body(file: BinaryIO, header: FileHeader, chunks: Iterable[bytes | Chunk]) -> None:
    """Writes header, index placeholder and chunks, then the index over its placeholder."""
    head = encode_header(header)
    frame_counts = gop_frame_counts(header)
    index_bytes = index_size(len(frame_counts), header.version)
    file.write(head)
    file.write(bytes(index_bytes))
    entries: list[GopEntry] = []
    first_frame, offset = 0, len(head) + index_bytes
    for k, item in enumerate(chunks):
        if k >= len(frame_counts):
            raise ValueError(f"more chunks than the {len(frame_counts)} GoPs of the header")
        chunk = item if isinstance(item, Chunk) else Chunk(item)
        entry = GopEntry(k, first_frame, frame_counts[k], offset, 0, chunk.predicted)
        check_writable(entry, header.version)  # before the payload is written, not at the end
        entries.append(replace(entry, length=_write_chunk(file, chunk.payload, entry.label)))
        first_frame, offset = first_frame + entry.frame_count, offset + entries[-1].length
    if len(entries) != len(frame_counts):
        raise ValueError(f"{len(entries)} chunks for the {len(frame_counts)} GoPs of the header")
    file.seek(len(head))
    file.write(encode_index(entries, header.version))


def write_stgv(path: str | os.PathLike, header: FileHeader, chunks: Iterable[bytes | Chunk]) -> int:
    """Writes a .stgv file atomically: a complete file under `path`, or no change at all.

    Chunks are streamed to a temporary file in the same directory (memory stays at one chunk),
    the index is written over its placeholder, and the file is renamed onto `path`. On any
    exception, KeyboardInterrupt included, the temporary file is removed.

    Args:
        path: Destination; an existing file there is replaced.
        header: The file header; it fixes how many chunks must follow (header.gop_count) and the
            index layout (header.version).
        chunks: One per GoP, in order: a Chunk, or a bytes-like payload for a key GoP (each
            payload at most MAX_CHUNK_PAYLOAD bytes).

    Returns:
        Size of the written file in bytes.

    Raises:
        ValueError: If the number of chunks differs from header.gop_count, a payload is too long,
            or a chunk is predicted as GoP 0 or in a version-2 header.
        OSError: On a failed write or rename.
    """
    staged = StagedPath(Path(path))
    try:
        with open(staged.tmp, "wb") as file:
            _write_body(file, header, chunks)
            size = file.seek(0, os.SEEK_END)
            file.flush()
            os.fsync(file.fileno())
        staged.commit()
        return size
    except OSError as err:
        staged.discard()
        # Name the file the caller asked for, not the hidden temporary one.
        raise OSError(err.errno, f"{path}: {err.strerror or err}") from None
    except BaseException:
        staged.discard()
        raise


@dataclass(frozen=True)
class StgvSizes:
    """Where the bytes of a .stgv file go (for `stgv info` and rate reports)."""

    file_bytes: int
    """Size of the file on disk."""
    header_bytes: int
    """Header record, CRC included."""
    index_bytes: int
    """GoP index record, CRC included."""
    chunk_bytes: tuple[int, ...]
    """Chunk record of each GoP, framing included, as the index declares them."""
    missing_bytes: int
    """Bytes the index declares beyond the end of the file (non-zero for a truncated file)."""


class StgvReader:
    """Random access to the GoPs of a .stgv file.

    Opening reads and checks the header and the whole GoP index; each read_chunk() then seeks to
    its chunk and checks its length and CRC, so one damaged or missing GoP does not stop the
    others from being read. Decoding a predicted GoP k needs GoPs key_gop(k) .. k-1 decoded
    first; read_chunk itself reads any GoP on its own.

    Example:
        with StgvReader("clip.stgv") as reader:
            payload = reader.read_chunk(3)
    """

    header: FileHeader
    """The validated file header."""
    gops: tuple[GopEntry, ...]
    """The validated GoP index, one entry per GoP in frame order."""

    def __init__(self, path: str | os.PathLike) -> None:
        """Opens `path` and validates header and index.

        Raises:
            BitstreamError: If the header or index is malformed, corrupt or truncated, or bytes
                follow the last chunk.
            OSError: If the file cannot be opened.
        """
        self._file = open(path, "rb")
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self.header, self._header_bytes = self._read_header()
            self.gops = self._read_index()
            self._check_tail()
            self._key_gops = [entry.index for entry in self.gops if not entry.predicted]  # holds GoP 0
        except BaseException:
            self._file.close()
            raise

    def _read(self, offset: int, size: int, what: str) -> bytes:
        """Reads exactly `size` bytes at `offset`, checking the file is long enough first."""
        if offset + size > self._size:
            raise BitstreamError(
                f"{what}: truncated file: expected {size} bytes at byte {offset}, "
                f"{max(self._size - offset, 0)} available"
            )
        self._file.seek(offset)
        return self._file.read(size)

    def _read_header(self) -> tuple[FileHeader, int]:
        total = parse_header_prefix(self._read(0, HEADER_PREFIX_BYTES, "file header"))
        return parse_header(self._read(0, total, "file header")), total

    def _read_index(self) -> tuple[GopEntry, ...]:
        at = self._header_bytes
        count = parse_index_count(self._read(at, INDEX_COUNT_BYTES, "GoP index"), at, self.header)
        return parse_index(self._read(at, index_size(count, self.header.version), "GoP index"), at, self.header)

    def _check_tail(self) -> None:
        end = self.gops[-1].offset + self.gops[-1].length
        if self._size > end:
            raise BitstreamError(f"{self._size - end} unexpected bytes after the last GoP, at byte {end}")

    def read_chunk(self, k: int) -> bytes:
        """The payload of GoP `k`, after checking its length fields and CRC.

        Raises:
            IndexError: If there is no GoP `k`.
            BitstreamError: If the chunk is truncated, its length field disagrees with the
                index, or its CRC does not match; the message names the GoP and its frames.
        """
        self._check_gop(k)
        entry = self.gops[k]
        record = self._read(entry.offset, entry.length, entry.label)
        (length,) = _U32.unpack_from(record, 0)
        if length != entry.length - CHUNK_FRAMING:
            raise BitstreamError(
                f"{entry.label}: payload length {length} at byte {entry.offset}, "
                f"the index gives {entry.length - CHUNK_FRAMING}"
            )
        payload = record[_U32.size : _U32.size + length]
        (stored,) = _U32.unpack_from(record, _U32.size + length)
        if zlib.crc32(payload) != stored:
            raise BitstreamError(f"{entry.label}: CRC mismatch at byte {entry.offset + _U32.size + length}")
        return payload

    def key_gop(self, k: int) -> int:
        """The last key GoP at or before GoP `k`, from the index alone: `k` itself if GoP `k` is a
        key GoP. Decoding GoP `k` starts there: GoPs key_gop(k) .. k-1 are decoded first.

        Raises:
            IndexError: If there is no GoP `k`.
        """
        self._check_gop(k)
        return self._key_gops[bisect.bisect_right(self._key_gops, k) - 1]

    def dependants(self, k: int) -> range:
        """The GoPs after GoP `k` that depend on it, directly or through others, from the index
        alone: those before the next key GoP (or the end of the file). Empty when GoP k+1 is a
        key GoP or `k` is the last GoP. A damaged GoP `k` makes these undecodable too.

        Raises:
            IndexError: If there is no GoP `k`.
        """
        self._check_gop(k)
        after = bisect.bisect_right(self._key_gops, k)
        return range(k + 1, self._key_gops[after] if after < len(self._key_gops) else len(self.gops))

    def _check_gop(self, k: int) -> None:
        if not 0 <= k < len(self.gops):
            raise IndexError(f"GoP {k} out of range: the file has {len(self.gops)}")

    def sizes(self) -> StgvSizes:
        """Byte counts of the parts of the file."""
        chunk_bytes = tuple(entry.length for entry in self.gops)
        declared = self.gops[0].offset + sum(chunk_bytes)
        index_bytes = self.gops[0].offset - self._header_bytes
        missing = max(declared - self._size, 0)
        return StgvSizes(self._size, self._header_bytes, index_bytes, chunk_bytes, missing)

    def close(self) -> None:
        """Closes the file."""
        self._file.close()

    def __enter__(self) -> StgvReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
