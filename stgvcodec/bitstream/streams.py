"""Chunk payloads as sequences of named streams: (id u8, length varint, bytes), repeated to the end.

Stream ids are defined by the caller (an IntEnum of the GoP payload); this module only frames them.
"""

from __future__ import annotations

from stgvcodec.bitstream.errors import BitstreamError
from stgvcodec.entropy.varint import read_uvarint, write_uvarint


def pack_streams(streams: list[tuple[int, bytes]]) -> bytes:
    """Frames streams into one payload, in the given order.

    Args:
        streams: (id, data) pairs; ids in 0..255, each at most once; data any bytes-like.

    Returns:
        The concatenated (id u8, length varint, data) records.

    Raises:
        ValueError: On an id outside 0..255, a repeated id, or data of 2**32 bytes or more.
    """
    seen: set[int] = set()
    parts = []
    for stream_id, data in streams:
        if not 0 <= stream_id <= 255 or stream_id in seen:
            raise ValueError(f"stream id {stream_id} out of 0..255 or repeated")
        if len(data) >= 1 << 32:
            raise ValueError(f"stream {stream_id} too long: {len(data)} bytes")
        seen.add(stream_id)
        parts += [bytes([stream_id]), write_uvarint(len(data)), bytes(data)]
    return b"".join(parts)


def unpack_streams(payload: bytes | bytearray | memoryview) -> list[tuple[int, memoryview]]:
    """Splits a payload written by pack_streams(), without copying the stream data.

    Returns:
        (id, data) pairs in payload order; data are views into `payload`.

    Raises:
        BitstreamError: If a stream head or stream runs past the payload, or an id repeats;
            the message gives the byte offset in the payload.
    """
    view = memoryview(payload).cast("B")
    streams: list[tuple[int, memoryview]] = []
    seen: set[int] = set()
    offset = 0
    while offset < len(view):
        stream_id = view[offset]
        if stream_id in seen:
            raise BitstreamError(f"stream id {stream_id} repeated at byte {offset} of the payload")
        length, start = read_uvarint(view, offset + 1, f"length of stream {stream_id} at byte {offset} of the payload")
        if length > len(view) - start:
            raise BitstreamError(
                f"stream {stream_id} at byte {offset} of the payload declares {length} bytes, "
                f"{len(view) - start} remain"
            )
        seen.add(stream_id)
        streams.append((stream_id, view[start : start + length]))
        offset = start + length
    return streams
