"""The conformance vectors: our decoder (CPU backend) reproduces every stored frame digest and
intermediate dump, the files are the ones the manifest lists and cover what they are for, and the
tool that makes them is deterministic. No test writes into this directory: a mismatch fails and
says how to regenerate on purpose."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import make_conformance as tool
import numpy as np
import pytest

from stgvcodec.bitstream import StgvReader
from stgvcodec.bitstream.gop import Keep, decode_gop
from stgvcodec.bitstream.model_config import unpack_model_config
from stgvcodec.decode import tensor_sizes
from stgvcodec.quant.colours import dequantize_colours
from stgvcodec.quant.quantizers import dequantize_cholesky

HERE = Path(__file__).resolve().parent
MANIFEST = json.loads((HERE / tool.MANIFEST).read_text())
OLDER_VERSIONS = {
    2: HERE / "v2" / "hash_p8.json",
    3: HERE / "v3" / "hash_p8_predicted.json",
    4: HERE / "v4" / "hash_p8_predicted.json",
    5: HERE / "v5" / "hash_p8_predicted.json",
}
"""Files of earlier versions, each kept when the vectors moved to the next version, with their
frames' digests (each .json says more)."""
VECTORS = {vector["name"]: vector for vector in MANIFEST["vectors"]}
REGENERATE = (
    "if the decoder's arithmetic changed on purpose, run `python tools/make_conformance.py --keep-streams` "
    "(without --keep-streams to re-encode the .stgv files too), review the diff and commit it"
)


def _path(vector: dict) -> Path:
    return HERE / vector["file"]


def _frame_label(vector: dict, frame: int) -> str:
    gop = next(g for g in vector["gops"] if g["first_frame"] <= frame < g["first_frame"] + g["frames"])
    return f"frame {frame} (GoP {gop['gop']}, frame {frame - gop['first_frame']} of it)"


def test_the_manifest_lists_exactly_the_stored_files():
    listed = {vector["file"] for vector in VECTORS.values()}
    listed |= {d["file"] for vector in VECTORS.values() for gop in vector["gops"] for d in gop["dumps"].values()}
    stored = {p.relative_to(HERE).as_posix() for p in (HERE / tool.VECTORS).rglob("*") if p.is_file()}
    assert stored == listed, f"files not in the manifest: {sorted(stored - listed)}; missing: {sorted(listed - stored)}"
    assert list(VECTORS) == [vector.name for vector in tool.VECTORS_LIST], REGENERATE
    for vector in VECTORS.values():
        facts = tool.file_facts(_path(vector))
        assert facts["sha256"] == vector["sha256"], f"{vector['file']} is not the file the manifest describes"
        described = {k: vector[k] for k in facts}
        described["gops"] = [{k: gop[k] for k in facts_gop} for gop, facts_gop in zip(vector["gops"], facts["gops"])]
        assert described == facts, f"{vector['name']}: the manifest describes another file; {REGENERATE}"


@pytest.mark.parametrize("name", VECTORS)
def test_decoded_frames_match_the_stored_digests(name, tmp_path):
    """`stgv decode` (decode(), CPU) of each vector gives frames with exactly the stored SHA-256."""
    vector = VECTORS[name]
    frames = tool.decoded_frames(_path(vector), tmp_path)
    assert frames.shape == (vector["frames"], vector["height"], vector["width"], 3)
    digests, whole = tool.frame_digests(frames)
    for frame, (got, stored) in enumerate(zip(digests, vector["frame_sha256"])):
        assert got == stored, (
            f"vector {name}: {_frame_label(vector, frame)} decodes to SHA-256 {got}, the manifest has {stored}; {REGENERATE}"
        )
    assert whole == vector["video_sha256"], f"vector {name}: the whole video's digest differs; {REGENERATE}"


@pytest.mark.parametrize("name", VECTORS)
def test_decoder_intermediates_match_the_stored_dumps(name):
    """Dequantized Gaussians and network bit for bit; MLP inputs, deformed Gaussians and the
    renderer's sums within DUMP_TOLERANCE relative to max(1, |stored value|)."""
    vector = VECTORS[name]
    gops = tool.decoder_dumps(_path(vector))
    assert len(gops) == len(vector["gops"])
    for gop, stored_gop in zip(gops, vector["gops"]):
        assert gop.tensors == stored_gop["tensors"], f"vector {name}: GoP {stored_gop['gop']}: another network layout"
        for kind, ours in gop.arrays.items():
            entry = stored_gop["dumps"][kind]
            stored = np.fromfile(HERE / entry["file"], dtype="<f4").reshape(entry["shape"])
            where = f"vector {name}, GoP {stored_gop['gop']}, dump {kind} ({entry['file']})"
            assert ours.shape == stored.shape, f"{where}: shape {list(ours.shape)}, stored {entry['shape']}"
            _assert_close(ours, stored, kind in tool.EXACT_DUMPS, where)


GAUSSIAN_DUMPS = ("means", "cholesky", "colours")


def _dump(gop: dict, kind: str) -> np.ndarray:
    entry = gop["dumps"][kind]
    return np.fromfile(HERE / entry["file"], dtype="<f4").reshape(entry["shape"])


def test_a_predicted_gops_gaussian_dumps_are_the_kept_reference_gaussians_then_the_new_ones():
    """What the manifest's gaussian_order says, rebuilt from the payload and the previous GoP's dumps
    without the decoder's canonical_gaussians: a predicted GoP's means, cholesky and colours dumps
    hold the reference Gaussians it keeps, in order, an updated one as float32(r + float32(q * step)),
    then its own (new) Gaussians dequantized as a key GoP's, on the quantizers of the last GoP before
    it that coded them when it inherits. Bit for bit."""
    checked = inherited = 0
    for vector in VECTORS.values():
        with StgvReader(_path(vector)) as reader:
            sizes = tensor_sizes(unpack_model_config(reader.header.config))
            quantizers = decode_gop(reader.read_chunk(0), sizes).quantizers
            for previous, gop in zip(vector["gops"], vector["gops"][1:]):
                predicted = gop["predicted"]
                record = decode_gop(
                    reader.read_chunk(gop["gop"]), sizes, reference=previous["gaussians"] if predicted else None,
                    quantizers=quantizers if predicted else None,
                )  # fmt: skip
                inherited += record.inherits
                quantizers = record.quantizers
                if not predicted:
                    continue
                prediction = record.prediction
                kept = np.concatenate([_dump(previous, kind) for kind in GAUSSIAN_DUMPS], axis=-1)  # [N_ref, 8]
                updated = prediction.keep == Keep.UPDATED
                kept[updated] += prediction.residuals.astype(np.float32) * prediction.steps
                grid = record.position_grid * np.array([reader.header.width, reader.header.height], np.float32)
                new = np.concatenate(
                    [
                        (2 * (record.positions - 32768)).astype(np.float32) / grid,  # section 8.2
                        dequantize_cholesky(record.cholesky_symbols, record.cholesky_gamma, record.cholesky_beta),
                        dequantize_colours(record.colour_indices, record.codebooks),
                    ],
                    axis=-1,
                )
                expected = np.concatenate([kept[prediction.keep != Keep.DROPPED], new])
                dumped = np.concatenate([_dump(gop, kind) for kind in GAUSSIAN_DUMPS], axis=-1)
                where = f"vector {vector['name']}, GoP {gop['gop']}, dumps {', '.join(GAUSSIAN_DUMPS)}"
                assert dumped.shape == expected.shape, f"{where}: {len(dumped)} Gaussians, {len(expected)} expected"
                _assert_close(dumped, expected, True, where)
                checked += 1
    assert checked and inherited, "no vector has a predicted GoP, or none that inherits its reference's quantizers"


def _assert_close(ours: np.ndarray, stored: np.ndarray, exact: bool, where: str) -> None:
    if exact:
        bad = ours.view(np.uint32) != stored.view(np.uint32)
    else:
        difference = np.abs(ours.astype(np.float64) - stored.astype(np.float64))
        allowed = tool.DUMP_TOLERANCE * np.maximum(1.0, np.abs(stored.astype(np.float64)))
        bad = ~(difference <= allowed) & ~(np.isnan(ours) & np.isnan(stored))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        rule = "bit for bit" if exact else f"within {tool.DUMP_TOLERANCE:g} relative"
        raise AssertionError(
            f"{where}: {int(bad.sum())} of {bad.size} values differ ({rule}); first at index {list(index)} "
            f"(the first index is the frame of the GoP for [T, ...] dumps): ours {float(ours[index]):.9g}, stored "
            f"{float(stored[index]):.9g}; {REGENERATE}"
        )


def test_the_vectors_cover_what_they_are_for():
    facts = [tool.file_facts(_path(vector)) for vector in VECTORS.values()]
    assert tool.missing_coverage(facts) == []
    assert MANIFEST["coverage"] == list(tool.COVERAGE)
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    assert total < 2_000_000


def test_the_tool_rewrites_the_stored_manifest_from_the_stored_streams(tmp_path):
    """--keep-streams on a copy of the .stgv files gives the manifest byte for byte (so it is what
    the tool writes, digests included), and the same dumps (DUMP_TOLERANCE, as above)."""
    (tmp_path / tool.VECTORS).mkdir()
    for vector in VECTORS.values():
        (tmp_path / vector["file"]).write_bytes(_path(vector).read_bytes())
    tool.generate(tmp_path, keep_streams=True)
    assert (tmp_path / tool.MANIFEST).read_text() == (HERE / tool.MANIFEST).read_text(), REGENERATE
    for vector in VECTORS.values():
        for gop in vector["gops"]:
            for kind, entry in gop["dumps"].items():
                ours = np.fromfile(tmp_path / entry["file"], dtype="<f4")
                stored = np.fromfile(HERE / entry["file"], dtype="<f4")
                _assert_close(ours, stored, kind in tool.EXACT_DUMPS, f"vector {vector['name']}, {entry['file']}")


@pytest.mark.parametrize("version", OLDER_VERSIONS)
def test_a_file_of_an_earlier_version_still_decodes_to_its_frames(tmp_path, version):
    """The decoder reads version 2 (no flags in the GoP index, every GoP a key GoP), version 3
    (predicted GoPs with float32 residual steps, never inheriting quantizers), version 4 (float16
    positions, inherited quantizers) and version 5 (no ADAPTIVE streams): each kept file decodes,
    as `stgv decode` does, to exactly the frames its manifest entry recorded."""
    stored = json.loads(OLDER_VERSIONS[version].read_text())
    path = OLDER_VERSIONS[version].parent / stored["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == stored["sha256"], f"{path} is not the stored file"
    with StgvReader(path) as reader:
        assert reader.header.version == stored["bitstream_version"] == version
        assert any(entry.predicted for entry in reader.gops) == (version >= 3)
    frames = tool.decoded_frames(path, tmp_path)
    assert frames.shape == (stored["frames"], stored["height"], stored["width"], 3)
    digests, whole = tool.frame_digests(frames)
    assert digests == stored["frame_sha256"], f"{path}: version {version} no longer decodes to the frames it did"
    assert whole == stored["video_sha256"]


def test_encoding_a_vector_again_gives_the_same_bytes(tmp_path):
    """The encoder is deterministic on one machine: the smallest vector, coded twice, byte for byte.
    (Equality with the stored file holds only on a machine whose training arithmetic matches the
    one that made it, so it is not asserted: the stored .stgv files are the reference.)"""
    vector = min(tool.VECTORS_LIST, key=lambda v: VECTORS[v.name]["bytes"])
    files = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        files.append(tool.encode_vector(vector, tmp_path / run, tmp_path / run).read_bytes())
    assert files[0] == files[1]
