"""The .stgv container: layout against the spec, round trips, key and predicted GoPs, golden
files, and damaged files. Version 4 is what the writer makes by default; versions 2 and 3 must
still read, so the file-level tests run on all three (versions 3 and 4 share the container
layout; they differ in GoP payloads, tests/bitstream/test_predicted_payload.py)."""

import hashlib
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from dataclasses import replace

import pytest

from stgvcodec.bitstream import (
    MAX_CONFIG_BYTES,
    BitstreamError,
    Chunk,
    FileHeader,
    StgvReader,
    pack_streams,
    unpack_streams,
    write_stgv,
)
from stgvcodec.bitstream.records import gop_frame_counts
from stgvcodec.gop import split_gops

HEADER = FileHeader(width=32, height=16, fps_num=30000, fps_den=1001, frame_count=12, gop_size=6, config=b"cfg")
CHUNKS = [b"first GoP payload", bytes(range(40))]
ENTRY_FORMATS = {2: "<IIQI", 3: "<IIQIB", 4: "<IIQIB", 5: "<IIQIB"}
"""GoP index entry by version, as bitstream_spec.md section 5 gives it."""


@pytest.fixture(params=[2, 3, 4, 5], ids=["v2", "v3", "v4", "v5"])
def small_file(tmp_path, request):
    """Two GoPs: key GoPs in version 2; a key GoP and a predicted GoP from version 3 on."""
    path = tmp_path / "small.stgv"
    if request.param == 2:
        write_stgv(path, replace(HEADER, version=2), CHUNKS)
    else:
        write_stgv(path, replace(HEADER, version=request.param), [CHUNKS[0], Chunk(CHUNKS[1], predicted=True)])
    return path


def _read_all(path):
    with StgvReader(path) as reader:
        return reader.header, [reader.read_chunk(k) for k in range(len(reader.gops))]


def test_round_trip(tmp_path):
    cases = [
        (HEADER, CHUNKS),
        (FileHeader(16384, 16384, 2**32 - 1, 2**32 - 1, 1, 65535, bytes(MAX_CONFIG_BYTES)), [b""]),
        (FileHeader(1280, 640, 25, 1, 132, 10), [bytes([k]) * (k * 100) for k in range(13)]),
    ]
    for header, chunks in cases:
        path = tmp_path / "clip.stgv"
        size = write_stgv(path, header, iter(chunks))
        assert size == path.stat().st_size
        assert _read_all(path) == (header, chunks)
        with StgvReader(path) as reader:
            assert [(gop.first_frame, gop.frame_count) for gop in reader.gops] == split_gops(
                header.frame_count, header.gop_size
            )
            sizes = reader.sizes()
            assert sizes.header_bytes + sizes.index_bytes + sum(sizes.chunk_bytes) == size
            assert sizes.chunk_bytes == tuple(len(chunk) + 8 for chunk in chunks)
            assert sizes.missing_bytes == 0


def test_random_access_reads_one_gop(small_file):
    with StgvReader(small_file) as reader:
        assert reader.read_chunk(1) == CHUNKS[1]
        assert reader.read_chunk(0) == CHUNKS[0]
        with pytest.raises(IndexError):
            reader.read_chunk(2)


# Key and predicted GoPs (versions 3 and 4).

KINDS = "KPPKKPPPKPKKP"
"""Key (K) or predicted (P) for each of the 13 GoPs of MIXED."""
MIXED = FileHeader(1280, 640, 25, 1, 132, 10)


def _mixed_chunks():
    """Key GoPs as plain bytes and as Chunk(...), predicted GoPs as Chunk(..., predicted=True)."""
    payloads = [bytes([k]) * (k * 10) for k in range(len(KINDS))]
    chunks = [
        Chunk(p, True) if kind == "P" else (p if k % 2 else Chunk(p))
        for k, (p, kind) in enumerate(zip(payloads, KINDS))
    ]
    return payloads, chunks


def test_round_trip_with_key_and_predicted_gops(tmp_path):
    payloads, chunks = _mixed_chunks()
    path = tmp_path / "mixed.stgv"
    size = write_stgv(path, MIXED, iter(chunks))
    assert _read_all(path) == (MIXED, payloads) and MIXED.version == 6
    with StgvReader(path) as reader:
        assert "".join("P" if gop.predicted else "K" for gop in reader.gops) == KINDS
        assert reader.sizes().index_bytes == 4 + 21 * len(KINDS) + 4
    # The same payloads as key GoPs in a version-2 file: one byte less per GoP, all key.
    old = tmp_path / "old.stgv"
    assert write_stgv(old, replace(MIXED, version=2), payloads) == size - len(KINDS)
    with StgvReader(old) as reader:
        assert reader.header.version == 2 and not any(gop.predicted for gop in reader.gops)
        assert [reader.key_gop(k) for k in range(len(KINDS))] == list(range(len(KINDS)))
        assert all(len(reader.dependants(k)) == 0 for k in range(len(KINDS)))


def test_key_gop_and_dependants_follow_the_flags(tmp_path):
    _, chunks = _mixed_chunks()
    write_stgv(tmp_path / "mixed.stgv", MIXED, chunks)
    keys = [k for k, kind in enumerate(KINDS) if kind == "K"]
    with StgvReader(tmp_path / "mixed.stgv") as reader:
        for k in range(len(KINDS)):
            assert reader.key_gop(k) == max(key for key in keys if key <= k)
            following = [key for key in keys if key > k]
            assert reader.dependants(k) == range(k + 1, following[0] if following else len(KINDS))
        # KPPKKPPPKPKKP: spelled out for a few GoPs.
        assert [reader.key_gop(k) for k in (0, 2, 3, 4, 7, 12)] == [0, 0, 3, 4, 4, 11]
        assert [list(reader.dependants(k)) for k in (0, 1, 2, 3, 5, 11, 12)] == [[1, 2], [2], [], [], [6, 7], [12], []]
        for k in (-1, len(KINDS)):
            with pytest.raises(IndexError, match=f"GoP {k} out of range"):
                reader.key_gop(k)
            with pytest.raises(IndexError, match=f"GoP {k} out of range"):
                reader.dependants(k)


def test_writer_refuses_predicted_gops_it_cannot_write(tmp_path):
    path = tmp_path / "out.stgv"
    with pytest.raises(ValueError, match=r"^GoP 0 \(frames 0-5\): predicted, but the first GoP must be a key GoP$"):
        write_stgv(path, HEADER, [Chunk(CHUNKS[0], predicted=True), CHUNKS[1]])
    with pytest.raises(
        ValueError, match=r"^GoP 1 \(frames 6-11\): predicted, but a version-2 file holds key GoPs only$"
    ):
        write_stgv(path, replace(HEADER, version=2), [CHUNKS[0], Chunk(CHUNKS[1], predicted=True)])
    assert os.listdir(tmp_path) == []


def _set_flags(path, k, flags):
    """Sets the flags byte of GoP k in a version-4 file and recomputes the index CRC (spec section
    5); returns the byte's offset."""
    data = bytearray(path.read_bytes())
    index_at = 14 + struct.unpack_from("<I", data, 6)[0]
    (count,) = struct.unpack_from("<I", data, index_at)
    data[index_at + 4 + 21 * k + 20] = flags
    end = index_at + 4 + 21 * count
    data[end : end + 4] = struct.pack("<I", zlib.crc32(data[index_at:end]))
    path.write_bytes(bytes(data))
    return index_at + 4 + 21 * k + 20


@pytest.mark.parametrize("flags", [0x02, 0x03, 0x80, 0xFF])
def test_reserved_flag_bits_are_rejected(tmp_path, flags):
    path = tmp_path / "flags.stgv"
    write_stgv(path, HEADER, CHUNKS)
    at = _set_flags(path, 1, flags)
    assert at == (14 + 24 + 3) + 4 + 21 + 20  # header, count, entry 0, then entry 1's flags
    with pytest.raises(
        BitstreamError, match=rf"^GoP 1 \(frames 6-11\): reserved flag bits set in flags 0x{flags:02x} at byte {at}$"
    ):
        StgvReader(path)


def test_predicted_gop_0_is_rejected(tmp_path):
    path = tmp_path / "flags.stgv"
    write_stgv(path, HEADER, CHUNKS)
    at = _set_flags(path, 0, 0x01)
    with pytest.raises(
        BitstreamError, match=rf"^GoP 0 \(frames 0-5\): predicted \(flags 0x01 at byte {at}\), but GoP 0"
    ):
        StgvReader(path)
    _set_flags(path, 0, 0x00)
    _set_flags(path, 1, 0x01)
    with StgvReader(path) as reader:
        assert [gop.predicted for gop in reader.gops] == [False, True]


def test_layout_matches_the_spec_tables(small_file):
    """Parses the file by hand with struct, exactly as bitstream_spec.md's field tables say."""
    data = small_file.read_bytes()
    magic, version, body_length = struct.unpack_from("<4sHI", data, 0)
    assert (magic, body_length) == (b"STGV", 24 + 3) and version in (2, 3, 4, 5)
    fields = struct.unpack_from("<IIIIIHH", data, 10)
    assert fields == (32, 16, 30000, 1001, 12, 6, 3)
    assert data[34:37] == b"cfg"
    header_end = 10 + body_length
    assert struct.unpack_from("<I", data, header_end)[0] == zlib.crc32(data[:header_end])

    index_at = header_end + 4
    (count,) = struct.unpack_from("<I", data, index_at)
    entry_size = {2: 20, 3: 21, 4: 21, 5: 21}[version]
    assert struct.calcsize(ENTRY_FORMATS[version]) == entry_size
    entries = [struct.unpack_from(ENTRY_FORMATS[version], data, index_at + 4 + entry_size * k) for k in range(count)]
    index_end = index_at + 4 + entry_size * count
    assert struct.unpack_from("<I", data, index_end)[0] == zlib.crc32(data[index_at:index_end])
    if version >= 3:
        assert [entry[4] for entry in entries] == [0, 1]  # GoP 1 predicted: flags bit 0

    offset = index_end + 4
    for k, (first_frame, frame_count, chunk_offset, chunk_length, *_) in enumerate(entries):
        assert (first_frame, frame_count) == (6 * k, 6)
        assert (chunk_offset, chunk_length) == (offset, len(CHUNKS[k]) + 8)
        (payload_length,) = struct.unpack_from("<I", data, offset)
        payload = data[offset + 4 : offset + 4 + payload_length]
        assert payload == CHUNKS[k]
        assert struct.unpack_from("<I", data, offset + 4 + payload_length)[0] == zlib.crc32(payload)
        offset += chunk_length
    assert offset == len(data)


GOLDEN_SHA256 = {
    2: "2258883618486966f46a51ce85eb6aa009ce46c775664ee06d05fd84b8a0fb7a",
    3: "c4a29d0c43ed2a634b7714c9b38dff7becb9de74665d4e5ce1a296f6d4a768e9",
    4: "4f276026787482f23a531069c877fbded2cdf81ac6aa3050926f88b2e6199cee",
}
"""Digest of the golden file by version: version 2 with two key GoPs, versions 3 and 4 with a key
GoP and a predicted GoP (the container only: the conformance vectors pin real payloads)."""


@pytest.mark.parametrize("version", [2, 3, 4])
def test_golden_file(tmp_path, version):
    """Fixed files whose digests are checked in.

    A changed digest means the format changed: regenerate GOLDEN_SHA256 only on purpose, with a
    version bump or a spec change that says why.
    """
    header = FileHeader(64, 32, 24, 1, frame_count=20, gop_size=10, config=b"golden", version=version)
    chunks = [
        pack_streams([(1, b"\x00\x01\x02\x03"), (2, b"canonical gaussians")]),
        pack_streams([(1, b"\xff" * 7), (3, b"")]),
    ]
    if version >= 3:
        chunks[1] = Chunk(chunks[1], predicted=True)
    path = tmp_path / "golden.stgv"
    write_stgv(path, header, chunks)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GOLDEN_SHA256[version]


# Damaged files: always BitstreamError, naming what is wrong and where.


def test_truncation_at_every_byte(small_file, tmp_path):
    data = small_file.read_bytes()
    cut = tmp_path / "cut.stgv"
    for end in range(len(data)):
        cut.write_bytes(data[:end])
        with pytest.raises(BitstreamError):
            _read_all(cut)


def test_truncated_file_keeps_the_intact_gops(small_file, tmp_path):
    data = small_file.read_bytes()
    cut = tmp_path / "cut.stgv"
    cut.write_bytes(data[:-5])
    with StgvReader(cut) as reader:
        assert reader.read_chunk(0) == CHUNKS[0]
        assert reader.sizes().missing_bytes == 5
        with pytest.raises(
            BitstreamError, match=r"GoP 1 \(frames 6-11\): truncated file: expected 48 bytes .* 43 available"
        ):
            reader.read_chunk(1)


def test_flipped_byte_in_a_chunk_names_the_gop(small_file):
    data = bytearray(small_file.read_bytes())
    with StgvReader(small_file) as reader:
        first = reader.gops[0]
    data[first.offset + 4 + 3] ^= 0x20
    small_file.write_bytes(bytes(data))
    with StgvReader(small_file) as reader:
        with pytest.raises(BitstreamError, match=r"GoP 0 \(frames 0-5\): CRC mismatch at byte \d+"):
            reader.read_chunk(0)
        assert reader.read_chunk(1) == CHUNKS[1]


def test_flipped_byte_anywhere_is_caught(small_file, tmp_path):
    data = small_file.read_bytes()
    damaged = tmp_path / "damaged.stgv"
    for position in range(len(data)):
        corrupt = bytearray(data)
        corrupt[position] ^= 0x01
        damaged.write_bytes(bytes(corrupt))
        with pytest.raises(BitstreamError):
            _read_all(damaged)


def test_wrong_magic(small_file):
    small_file.write_bytes(b"RIFF" + small_file.read_bytes()[4:])
    with pytest.raises(BitstreamError, match="not a .stgv file"):
        StgvReader(small_file)


@pytest.mark.parametrize("version", [7, 1, 0xFFFF])
def test_other_versions(small_file, version):
    data = bytearray(small_file.read_bytes())
    data[4:6] = struct.pack("<H", version)
    small_file.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match=rf"^unsupported \.stgv version {version} \(this decoder reads 2, 3, 4, 5 and 6\)$"):
        StgvReader(small_file)


def test_trailing_bytes(small_file):
    small_file.write_bytes(small_file.read_bytes() + b"\x00")
    with pytest.raises(BitstreamError, match="1 unexpected bytes after the last GoP"):
        StgvReader(small_file)


def _header_record(fields, config=b"", body_length=None, appended=b"", version=2):
    """A header built by hand from the spec table, with a valid CRC."""
    body = struct.pack("<IIIIIHH", *fields, len(config)) + config + appended
    record = struct.pack("<4sHI", b"STGV", version, len(body) if body_length is None else body_length) + body
    return record + struct.pack("<I", zlib.crc32(record))


def _index_record(entries, count=None):
    """Entries of 4 fields are version 2's; of 5 (flags last), version 3's."""
    record = struct.pack("<I", len(entries) if count is None else count)
    record += b"".join(struct.pack(ENTRY_FORMATS[len(entry) - 2], *entry) for entry in entries)
    return record + struct.pack("<I", zlib.crc32(record))


def _chunk_record(payload):
    return struct.pack("<I", len(payload)) + payload + struct.pack("<I", zlib.crc32(payload))


VALID_FIELDS = (32, 16, 30, 1, 6, 6)


def _file(header=None, entries=None, count=None, chunks=(b"abc",), version=2):
    """A one-GoP file (version 2 unless `version`; the entries' length gives the index layout).
    Its chunk starts at byte 66 in version 2 and 67 in version 3; the entry at byte 42."""
    header = _header_record(VALID_FIELDS, version=version) if header is None else header
    flags = (0,) if version == 3 else ()
    if entries is None:
        start = len(header) + len(_index_record([(0, 6, 0, 0, *flags)] * len(chunks)))
        entries = [(0, 6, start, len(chunks[0]) + 8, *flags)]
    return header + _index_record(entries, count) + b"".join(_chunk_record(chunk) for chunk in chunks)


@pytest.mark.parametrize("version", [2, 3])
def test_hand_built_file_reads(tmp_path, version):
    path = tmp_path / "hand.stgv"
    path.write_bytes(_file(version=version))
    assert _read_all(path) == (FileHeader(*VALID_FIELDS, version=version), [b"abc"])
    with StgvReader(path) as reader:
        assert not reader.gops[0].predicted


def test_appended_header_fields_are_skipped(tmp_path):
    """A header body longer than version 2's fields (covered by the CRC) is accepted."""
    header = _header_record(VALID_FIELDS, config=b"xy", appended=b"future fields")
    start = len(header) + len(_index_record([(0, 6, 0, 0)]))
    path = tmp_path / "appended.stgv"
    path.write_bytes(header + _index_record([(0, 6, start, 11)]) + _chunk_record(b"abc"))
    assert _read_all(path) == (FileHeader(*VALID_FIELDS, config=b"xy", version=2), [b"abc"])


@pytest.mark.parametrize(
    "data,message",
    [
        (_header_record(VALID_FIELDS, body_length=2**32 - 1), "header body length"),
        (_header_record(VALID_FIELDS, body_length=10), "header body length"),
        (_header_record(VALID_FIELDS)[:-1] + b"\x00", "header CRC mismatch"),
        (_file(_header_record((20000, 16, 30, 1, 6, 6))), "width 20000"),
        (_file(_header_record((32, 0, 30, 1, 6, 6))), "height 0"),
        (_file(_header_record((32, 16, 30, 0, 6, 6))), "fps denominator"),
        (_file(_header_record((32, 16, 30, 1, 10_000_001, 6))), "frame count"),
        (_file(_header_record((32, 16, 30, 1, 6, 0))), "GoP size 0"),
        (_file(_header_record(VALID_FIELDS, bytes(MAX_CONFIG_BYTES + 1))), "config of 4097 bytes"),
        (_file(count=2**32 - 1), "4294967295 GoPs"),
        (_file(entries=[(0, 6, 66, 2**31)]), "chunk length 2147483648"),
        (_file(entries=[(0, 6, 67, 11)]), "chunk offset 67 at byte 50, expected 66"),
        (_file(entries=[(1, 5, 66, 11)]), "frames 1\\+5, expected 0\\+6"),
        (_file(_header_record((32, 16, 30, 1, 10_000_000, 1))), "1 GoPs, but 10000000 frames"),
        (_file(_header_record(VALID_FIELDS, version=7)), r"version 7 \(this decoder reads 2, 3, 4, 5 and 6\)"),
        (_file(entries=[(0, 6, 66, 11, 0)], version=3), "chunk offset 66 at byte 50, expected 67"),
        (
            _file(entries=[(0, 6, 67, 11, 0x02)], version=3),
            r"^GoP 0 \(frames 0-5\): reserved flag bits set in flags 0x02 at byte 62$",
        ),
        (_file(entries=[(0, 6, 67, 11, 0x81)], version=3), "reserved flag bits set in flags 0x81 at byte 62"),
        (
            _file(entries=[(0, 6, 67, 11, 0x01)], version=3),
            r"^GoP 0 \(frames 0-5\): predicted \(flags 0x01 at byte 62\), but GoP 0 must be a key GoP$",
        ),
        (_file(entries=[(0, 6, 67, 11)], version=3), "GoP index CRC mismatch at byte 63"),  # a version-2 index
    ],
)
def test_rejects_bad_headers_and_indexes(tmp_path, data, message):
    path = tmp_path / "bad.stgv"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match=message):
            _read_all(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # declared sizes were checked before anything was allocated


def test_chunk_length_field_must_match_the_index(tmp_path):
    data = bytearray(_file())
    data[66:70] = struct.pack("<I", 2)
    path = tmp_path / "bad.stgv"
    path.write_bytes(bytes(data))
    with (
        StgvReader(path) as reader,
        pytest.raises(BitstreamError, match="payload length 2 at byte 66, the index gives 3"),
    ):
        reader.read_chunk(0)


def test_gop_split_matches_split_gops():
    for frames in range(1, 80):
        for gop_size in range(1, 25):
            header = FileHeader(8, 8, 1, 1, frames, gop_size)
            assert gop_frame_counts(header) == [count for _, count in split_gops(frames, gop_size)]
            assert header.gop_count == len(split_gops(frames, gop_size))
    assert len(gop_frame_counts(FileHeader(8, 8, 1, 1, 10_000_000, 1))) == 10_000_000


# Atomic writes.


class _Interrupt(Exception):
    pass


def _failing_chunks(error):
    yield b"one chunk"
    raise error


@pytest.mark.parametrize("error", [_Interrupt(), KeyboardInterrupt()])
def test_interrupted_write_leaves_nothing(tmp_path, error):
    path = tmp_path / "out.stgv"
    with pytest.raises(type(error)):
        write_stgv(path, HEADER, _failing_chunks(error))
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_previous_file(small_file):
    before = small_file.read_bytes()
    with pytest.raises(ValueError, match="1 chunks for the 2 GoPs"):
        write_stgv(small_file, HEADER, [b"only one"])
    with pytest.raises(ValueError, match="more chunks"):
        write_stgv(small_file, HEADER, [b"1", b"2", b"3"])
    assert small_file.read_bytes() == before
    assert os.listdir(small_file.parent) == [small_file.name]


def test_header_limits_are_checked_on_write():
    with pytest.raises(ValueError, match="width"):
        FileHeader(16385, 16, 30, 1, 10, 10)
    with pytest.raises(ValueError, match="config"):
        FileHeader(16, 16, 30, 1, 10, 10, bytes(MAX_CONFIG_BYTES + 1))
    with pytest.raises(ValueError, match="version 7: this code reads and writes 2, 3, 4, 5 and 6"):
        FileHeader(16, 16, 30, 1, 10, 10, version=7)


# Streams inside a chunk payload.


def test_streams_round_trip():
    streams = [(3, b"abc"), (0, b""), (255, bytes(300))]
    packed = pack_streams(streams)
    # id u8, then the length as a LEB128 varint (300 = 0xAC 0x02), then the data.
    assert packed == b"\x03\x03abc" + b"\x00\x00" + b"\xff\xac\x02" + bytes(300)
    unpacked = unpack_streams(packed)
    assert [(stream_id, bytes(data)) for stream_id, data in unpacked] == streams
    assert unpack_streams(b"") == []


def test_streams_reject_bad_input():
    payload = pack_streams([(1, b"abcdef"), (2, b"xyz")])
    for end in range(1, len(payload)):
        if end != 8:  # the boundary between the two streams
            with pytest.raises(BitstreamError):
                unpack_streams(payload[:end])
    with pytest.raises(BitstreamError, match="repeated"):
        unpack_streams(pack_streams([(1, b"a")]) * 2)
    with pytest.raises(BitstreamError, match="declares 4294967295 bytes"):
        unpack_streams(b"\x01\xff\xff\xff\xff\x0f")
    with pytest.raises(ValueError):
        pack_streams([(256, b"")])
    with pytest.raises(ValueError):
        pack_streams([(1, b""), (1, b"")])


# The decoder side stays free of torch.


def test_decoder_side_imports_without_torch():
    """Every module of stgvcodec.bitstream, and stgvcodec.entropy, import with torch blocked, and
    without loading numba (the ADAPTIVE coder's kernels load when a stream needs them)."""
    code = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import stgvcodec.bitstream, stgvcodec.entropy
for module in pkgutil.iter_modules(stgvcodec.bitstream.__path__, "stgvcodec.bitstream."):
    importlib.import_module(module.name)
assert not any(name.split(".")[0] in ("torch", "numba") for name in sys.modules)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_write_errors_name_the_output_not_its_temporary(tmp_path, monkeypatch):
    import os as os_module

    from stgvcodec.bitstream import container

    def full_disk(*args):
        raise OSError(28, "No space left on device", "/somewhere/.x.stgv-part-tmp.stgv")

    monkeypatch.setattr(container.os, "fsync", full_disk)
    from stgvcodec.bitstream.records import FileHeader

    header = FileHeader(16, 16, 25, 1, 1, 1, bytes(20))
    with pytest.raises(OSError) as error:
        container.write_stgv(tmp_path / "x.stgv", header, [b"payload"])
    assert str(error.value).endswith(f"{tmp_path / 'x.stgv'}: No space left on device") and "part" not in str(error.value)
    assert os_module.listdir(tmp_path) == []
