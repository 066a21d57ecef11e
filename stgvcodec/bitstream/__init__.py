"""The .stgv container: records <-> bytes, files <-> records. Never imports torch.

    .stgv file
    +---------------------------------------------------------------+
    | header: "STGV" | version | length | geometry, fps, GoPs, config | CRC32
    | GoP index: count | (first frame, frames, offset, length, flags) x count | CRC32
    | chunk 0: length | payload | CRC32          payload = pack_streams([(id, bytes), ...])
    | chunk 1: ...                                (ids: an IntEnum of the GoP payload)
    +---------------------------------------------------------------+

write_stgv() writes a file atomically; StgvReader reads any GoP on its own. A flag in each index
entry (version 3 on) marks a predicted GoP, coded against the previous GoP's decoded model; the others
are key GoPs, decodable on their own (StgvReader.key_gop, .dependants). Layouts, limits and what a
reader rejects are normative in bitstream_spec.md.
"""

from stgvcodec.bitstream.container import Chunk, StgvReader, StgvSizes, write_stgv
from stgvcodec.bitstream.errors import BitstreamError
from stgvcodec.bitstream.records import (
    FORMAT_VERSION,
    MAGIC,
    MAX_CHUNK_PAYLOAD,
    MAX_CONFIG_BYTES,
    MAX_DIMENSION,
    MAX_FRAMES,
    MAX_GOPS,
    READ_VERSIONS,
    FileHeader,
    GopEntry,
)
from stgvcodec.bitstream.streams import pack_streams, unpack_streams

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_CHUNK_PAYLOAD",
    "MAX_CONFIG_BYTES",
    "MAX_DIMENSION",
    "MAX_FRAMES",
    "MAX_GOPS",
    "READ_VERSIONS",
    "BitstreamError",
    "Chunk",
    "FileHeader",
    "GopEntry",
    "StgvReader",
    "StgvSizes",
    "pack_streams",
    "unpack_streams",
    "write_stgv",
]
