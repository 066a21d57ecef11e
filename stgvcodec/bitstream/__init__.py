"""The .stgv container: records <-> bytes, files <-> records. Never imports torch.

    .stgv file
    +---------------------------------------------------------------+
    | header: "STGV" | version | length | geometry, fps, GoPs, config | CRC32
    | GoP index: count | (first frame, frames, offset, length) x count | CRC32
    | chunk 0: length | payload | CRC32          payload = pack_streams([(id, bytes), ...])
    | chunk 1: ...                                (ids: an IntEnum of the GoP payload)
    +---------------------------------------------------------------+

write_stgv() writes a file atomically; StgvReader reads any GoP on its own. Layouts, limits and
what a reader rejects are normative in bitstream_spec.md.
"""

from stgvcodec.bitstream.container import StgvReader, StgvSizes, write_stgv
from stgvcodec.bitstream.errors import BitstreamError
from stgvcodec.bitstream.records import (
    FORMAT_VERSION,
    MAGIC,
    MAX_CHUNK_PAYLOAD,
    MAX_CONFIG_BYTES,
    MAX_DIMENSION,
    MAX_FRAMES,
    MAX_GOPS,
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
    "BitstreamError",
    "FileHeader",
    "GopEntry",
    "StgvReader",
    "StgvSizes",
    "pack_streams",
    "unpack_streams",
    "write_stgv",
]
