"""Writes the conformance vectors in tests/conformance/: small .stgv files, the SHA-256 digests of
their decoded frames, and float32 dumps of what the decoder computes on the way.

    python tools/make_conformance.py                  # regenerate everything: encode, decode, dump
    python tools/make_conformance.py --keep-streams   # keep the .stgv files, redo digests, dumps, manifest
    python tools/make_conformance.py --out DIR        # write into DIR instead

    VECTORS_LIST --api.encode (the real encoder, tiny step counts, fixed seeds, --keyint; GoPs listed in
                 `empty_gops` replaced by a hand-built GopRecord with N = 0, those in `drop_gops` by their
                 Prediction edited by hand: some Gaussians dropped, new ones)--> vectors/NAME.stgv
    NAME.stgv --read_gop (GoPs in order, each predicted one against the previous GoP's canonical
              Gaussians), gop_model, gop_batches (stgvcodec.decode, CPU backend)--> vectors/NAME/gopK.KIND.f32
              --stgvcodec.decode.decode (as `stgv decode`, CPU) into PNGs--> SHA-256 of each frame and of all
    all of it, with which streams are RAW and which ANS --> manifest.json

Every dump and digest comes from the functions `stgv decode` runs, so after a deliberate change of
the decoder's arithmetic one command regenerates them (tests/conformance/README.md says how to
check a decoder against them). Running it twice on one machine with the same software writes
identical bytes; the .stgv files depend on the training arithmetic of the machine that encodes
them (README.md, "Reproducibility"), the digests and dumps only on the decoder. Before writing,
it checks that the vectors still cover what they are meant to (COVERAGE) and exits 1 if not.
Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import stgvcodec  # noqa: F401  (before torch: it sets how OpenMP threads wait)
import torch

from stgvcodec.bitstream import Chunk, StgvReader, write_stgv
from stgvcodec.bitstream.gop import (
    RESIDUAL_ATTRIBUTES,
    GopRecord,
    Keep,
    Prediction,
    Stream,
    encode_gop,
    join_streams,
    network_levels,
    split_payload,
)
from stgvcodec.bitstream.model_config import unpack_model_config
from stgvcodec.config import FitConfig, ModelConfig
from stgvcodec.decode import Canonical, gop_batches, gop_model, read_gop, tensor_sizes
from stgvcodec.entropy import SymbolCoding, decode_symbols, encode_symbols
from stgvcodec.entropy.varint import read_uvarint
from stgvcodec.io import VideoWriter, read_frames
from stgvcodec.metrics import to_uint8
from stgvcodec.model.encoding import HashGrid
from stgvcodec.quant.colours import CODEBOOK_STEP, FixedRVQ, quantize_codebooks
from stgvcodec.quant.qat import QuantConfig
from stgvcodec.quant.quantizers import POSITION_GRID, CholeskyQuantizer, PositionGrid
from stgvcodec.render import clamp_image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "conformance"
MANIFEST = "manifest.json"
VECTORS = "vectors"
BACKEND = "cpu"
"""Render backend of the dumps and digests (`stgv decode` on a machine without a GPU)."""


@dataclass(frozen=True)
class Vector:
    """One conformance vector: a clip and the encoder settings that code it."""

    name: str
    covers: str
    """What this vector is there to exercise, in a sentence."""
    width: int
    height: int
    frames: int
    gop_size: int
    model: ModelConfig
    gaussians: int
    network_bits: int
    rvq_stages: int
    codebook_size: int
    seed: int
    keyint: int = 1
    """The encoder's --keyint, in frames: 1 makes every GoP a key GoP; GoPs between key GoPs are
    predicted where the fit starts warm (check with file_facts: the GoP index says)."""
    empty_gops: tuple[int, ...] = ()
    """GoPs whose chunk is replaced by a hand-built one with N = 0 (the encoder never writes one)."""
    drop_gops: tuple[int, ...] = ()
    """Predicted GoPs whose chunk is replaced by their record with some reference Gaussians dropped and
    new Gaussians added (_drop_and_add): with a fixed Gaussian count the encoder keeps every reference
    Gaussian and adds none."""
    own_quantizers: tuple[int, ...] = ()
    """GoPs of drop_gops whose new Gaussians are coded on a Cholesky quantizer and codebooks of their
    own; in the others they are coded on the reference's (inherited, as the encoder does)."""
    histogram_gops: tuple[int, ...] = ()
    """GoPs whose coded streams are spelled without the ADAPTIVE coding (RAW or ANS, the shorter, as
    version 5 would): the encoder's choice is nearly always ADAPTIVE, and ANS streams must stay covered."""


FIT = FitConfig(init_steps=12, deform_steps=24, lr_network=2e-2, lr_network_final=1e-2, anchor_strength=0.3)
"""Few steps (quality is beside the point) with a network learning rate high enough that the
deformation moves Gaussians by a fraction of a pixel or more, so the frames depend on the network;
a weak pull toward the reference, so that a predicted GoP has both updated and copied Gaussians
(at the default strength these few steps leave every kept Gaussian on its reference)."""
QAT_STEPS = 4

VECTORS_LIST: list[Vector] = [
    Vector(
        name="hash_p8",
        covers="the paper's hash grid geometry (N_min 16, b 1.5: scales that are exact integers at levels 1-4; "
        "dense and hashed 2D levels, hashed 3D levels) at P = 8, two RVQ stages; streams spelled RAW or ANS (an "
        "ANS hash table), without ADAPTIVE",
        width=16, height=12, frames=4, gop_size=4,
        model=ModelConfig(levels=5, log2_table_size=8, width=16),
        gaussians=40, network_bits=8, rvq_stages=2, codebook_size=16, seed=1, histogram_gops=(0,),
    ),
    Vector(
        name="hash_p4_odd",
        covers="a small hash grid (N_min 2, b 2: dense and hashed levels in both grids) at P = 4, odd width and "
        "height, one RVQ stage",
        width=17, height=13, frames=5, gop_size=5,
        model=ModelConfig(levels=4, log2_table_size=6, base_resolution=2, per_level_scale=2.0, spatial_features=1,
                          temporal_features=2, time_frequencies=3, width=8),
        gaussians=24, network_bits=4, rvq_stages=1, codebook_size=8, seed=2,
    ),
    Vector(
        name="plane_p8_odd",
        covers="the plane encoding (xy, xt, yt planes) at P = 8, odd width and height; 300 Gaussians, enough for "
        "ANS to beat RAW on position and Cholesky streams (its streams are spelled RAW or ANS, without ADAPTIVE)",
        width=33, height=17, frames=3, gop_size=3,
        model=ModelConfig(encoding="plane", plane_resolution=8, plane_time_resolution=4, plane_features=2, width=16),
        gaussians=300, network_bits=8, rvq_stages=2, codebook_size=16, seed=3, histogram_gops=(0,),
    ),
    Vector(
        name="positional_p8_merged",
        covers="the positional encoding at P = 8; 12 frames in GoPs of 5: the remainder of 2 joins the second GoP "
        "(5 + 7 frames)",
        width=23, height=15, frames=12, gop_size=5,
        model=ModelConfig(encoding="positional", position_frequencies=4, width=12),
        gaussians=30, network_bits=8, rvq_stages=2, codebook_size=8, seed=4,
    ),
    Vector(
        name="plane_p3_one_zero",
        covers="one Gaussian (GoP 0) and zero Gaussians (GoP 1, all frames black) with the plane encoding at P = 3",
        width=16, height=12, frames=4, gop_size=2,
        model=ModelConfig(encoding="plane", plane_resolution=4, plane_time_resolution=2, plane_features=1,
                          time_frequencies=2, width=4),
        gaussians=1, network_bits=3, rvq_stages=1, codebook_size=4, seed=5, empty_gops=(1,),
    ),
    Vector(
        name="hash_p8_predicted",
        covers="predicted GoPs (--keyint 9 over GoPs of 3 frames: key, predicted, predicted, key, predicted) with "
        "copied and updated Gaussians, each inheriting its reference's quantizers; in GoPs 2 and 4, edited by "
        "hand, dropped and new ones too, coded on the inherited quantizers (GoP 2) and on quantizers of their "
        "own (GoP 4); a hash grid at P = 8",
        width=24, height=16, frames=15, gop_size=3, keyint=9,
        model=ModelConfig(levels=4, log2_table_size=6, base_resolution=4, per_level_scale=2.0, width=8),
        gaussians=60, network_bits=8, rvq_stages=2, codebook_size=16, seed=9, drop_gops=(2, 4), own_quantizers=(4,),
    ),
]  # fmt: skip

DUMPS: dict[str, tuple[str, str]] = {
    "means": ("[N, 2]", "canonical positions mu (NDC, x then y): of a stored Gaussian, its grid keys "
              "dequantized (8.2); of a predicted GoP's kept one, its reference's value, plus residual x step if "
              "updated (8.3)"),
    "cholesky": ("[N, 3]", "canonical Cholesky factors (l1, l2, l3): of a stored Gaussian float32(q) * gamma + beta "
                 "per channel (8.2); of a kept one as for means (8.3)"),
    "colours": ("[N, 3]", "canonical colours: of a stored Gaussian the RVQ stages' codebook vectors summed in stage "
                "order (8.2); of a kept one as for means (8.3)"),
    "network": ("[E]", "dequantized network tensors float32(q) * scale, in stream order, each row-major (8.2, 11.3); "
                "`tensors` gives each one's name, shape and offset"),  # fmt: skip
    "mlp_input": ("[T, N, D]", "the MLP's input [f_n(t), gamma(t)] for every frame t and Gaussian n (11, steps 2-3)"),
    "deformed_means": ("[T, N, 2]", "deformed means mu_n + dmu (NDC) for every frame of the GoP (11, step 4)"),
    "deformed_colours": ("[T, N, 3]", "deformed colours c_n + dc for every frame of the GoP (11, step 4)"),
    "sums": ("[T, H, W, 3]", "the renderer's sum of colour * weight for every frame, pixel row, pixel column and "
             "channel (R, G, B), before clamping and rounding (12)"),  # fmt: skip
}
"""Per GoP k, vectors/NAME/gop{k}.{kind}.f32: shape (N canonical Gaussians, GAUSSIAN_ORDER; T frames of
the GoP, E network weights, D MLP inputs) and meaning, with the bitstream_spec.md sections."""
GAUSSIAN_ORDER = (
    "N: the GoP's canonical Gaussians, those the decoder renders, in its order: a key GoP's stored Gaussians in "
    "stream order (8.1); a predicted GoP's kept reference Gaussians (copied or updated) in the reference's order, "
    "then its stored (new) Gaussians in stream order (8.3)"
)

COVERAGE = {
    "encoding hash": lambda v: v["encoding"] == "hash",
    "encoding plane": lambda v: v["encoding"] == "plane",
    "encoding positional": lambda v: v["encoding"] == "positional",
    "network precision P = 8": lambda v: any(g["network_bits"] == 8 for g in v["gops"]),
    "network precision P <= 4": lambda v: any(g["network_bits"] <= 4 for g in v["gops"]),
    "odd width and odd height": lambda v: v["width"] % 2 == 1 and v["height"] % 2 == 1,
    "a GoP longer than gop_size (merged remainder)": lambda v: any(g["frames"] > v["gop_size"] for g in v["gops"]),
    "several GoPs": lambda v: len(v["gops"]) > 1,
    "N = 0": lambda v: any(g["gaussians"] == 0 for g in v["gops"]),
    "N = 1": lambda v: any(g["gaussians"] == 1 for g in v["gops"]),
    "a RAW stream of zero symbols": lambda v: _any_stream(v, lambda s: s["mode"] == "RAW" and s["symbols"] == 0),
    "a RAW stream of width 0 (one distinct value)": lambda v: _any_stream(
        v, lambda s: s["mode"] == "RAW" and s["symbols"] > 0 and s["width"] == 0
    ),
    "a RAW stream of width > 0": lambda v: _any_stream(v, lambda s: s["mode"] == "RAW" and (s["width"] or 0) > 0),
    "an ANS stream of Gaussian symbols": lambda v: _any_stream(v, lambda s: s["mode"] == "ANS" and s["id"] < 64),
    "an ANS stream of network symbols": lambda v: _any_stream(v, lambda s: s["mode"] == "ANS" and s["id"] >= 64),
    "an ADAPTIVE stream of Gaussian symbols": lambda v: _any_stream(v, lambda s: s["mode"] == "ADAPTIVE" and s["id"] < 64),
    "an ADAPTIVE stream of network symbols": lambda v: _any_stream(v, lambda s: s["mode"] == "ADAPTIVE" and s["id"] >= 64),
    "an ADAPTIVE RESIDUAL stream": lambda v: _any_stream(
        v, lambda s: s["mode"] == "ADAPTIVE" and Stream.RESIDUAL <= s["id"] < Stream.HASH
    ),
    "hash grids with dense and hashed levels in 2D and 3D": lambda v: v["encoding"] == "hash"
    and all(len(set(v["hash_levels_dense"][grid])) == 2 for grid in ("2d", "3d")),
    "a predicted GoP": lambda v: any(g["predicted"] for g in v["gops"]),
    "a key GoP after a predicted GoP": lambda v: any(
        a["predicted"] and not b["predicted"] for a, b in zip(v["gops"], v["gops"][1:])
    ),
    "a KEEP stream": lambda v: _any_stream(v, lambda s: s["id"] == Stream.KEEP and s["symbols"] > 0),
    "RESIDUAL streams (updated Gaussians)": lambda v: any(
        all(_stream(g, Stream.RESIDUAL + k)["symbols"] for k in range(len(RESIDUAL_ATTRIBUTES))) for g in _predicted(v)
    ),
    "a COPIED Gaussian": lambda v: any(g["prediction"]["copied"] for g in _predicted(v)),
    "an UPDATED Gaussian": lambda v: any(g["prediction"]["updated"] for g in _predicted(v)),
    "a DROPPED Gaussian": lambda v: any(g["prediction"]["dropped"] for g in _predicted(v)),
    "new Gaussians in a predicted GoP": lambda v: any(g["prediction"]["new"] for g in _predicted(v)),
    "a predicted GoP with new Gaussians on its reference's quantizers (inherited)": lambda v: any(
        g["prediction"]["new"] and g["inherits"] for g in _predicted(v)
    ),
    "a predicted GoP with new Gaussians on quantizers of its own": lambda v: any(
        g["prediction"]["new"] and not g["inherits"] for g in _predicted(v)
    ),
    "a predicted GoP inheriting from a predicted GoP": lambda v: any(
        a["predicted"] and b["predicted"] and b["inherits"] for a, b in zip(v["gops"], v["gops"][1:])
    ),
}
"""What the set of vectors must exercise, each tested on what file_facts() reads from a file (manifest
entries hold the same fields). Every item must hold for at least one vector."""


def _any_stream(vector: dict, test) -> bool:
    return any(test(stream) for gop in vector["gops"] for stream in gop["streams"])


def _stream(gop: dict, stream_id: int) -> dict:
    return next(stream for stream in gop["streams"] if stream["id"] == stream_id)


def _predicted(vector: dict) -> list[dict]:
    return [gop for gop in vector["gops"] if gop["predicted"]]


def _pattern(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """[T, H, W, 3] uint8: colour gradients with a bright square moving right and one moving down."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 60)], axis=-1)
    video = np.repeat(base[None].astype(np.uint8), frames, axis=0)
    video[..., 2] = np.clip(video[..., 2] + rng.integers(0, 40, size=(height, width)), 0, 255).astype(np.uint8)
    for t in range(frames):
        left, top = (2 * t) % max(width - 4, 1), (t * 3) % max(height - 3, 1)
        video[t, height // 4 : height // 4 + 4, left : left + 4] = 250
        video[t, top : top + 3, width // 2 : width // 2 + 3] = (20, 200, 40)
    return video


def _empty_payload(config: ModelConfig, vector: Vector) -> bytes:
    """A GoP payload with N = 0 and a seeded network (a peaked distribution, as trained weights have)."""
    rng = np.random.default_rng(vector.seed)
    levels = network_levels(vector.network_bits)
    tensors = [
        np.clip(np.round(rng.normal(0, levels / 3, size)), -levels, levels).astype(np.int32)
        for size in tensor_sizes(config)
    ]
    record = GopRecord(
        positions=np.zeros((0, 2), np.int64),
        cholesky_symbols=np.zeros((0, 3), np.int32),
        cholesky_gamma=np.array([0.02, 0.01, 0.02], np.float32),
        cholesky_beta=np.array([0.5, -0.3, 0.5], np.float32),
        colour_indices=np.zeros((0, vector.rvq_stages), np.int32),
        codebooks=quantize_codebooks(rng.uniform(-0.2, 1.0, (vector.rvq_stages, vector.codebook_size, 3)), CODEBOOK_STEP),
        tensor_symbols=tensors,
        tensor_scales=[np.float32((k + 1) / 128) for k in range(len(tensors))],
        network_bits=vector.network_bits,
        position_grid=POSITION_GRID,
        codebook_step=CODEBOOK_STEP,
    )
    return encode_gop(record)


def encode_vector(vector: Vector, folder: Path, work: Path) -> Path:
    """Codes `vector` with the real encoder into folder/NAME.stgv (GoPs in `empty_gops` replaced)."""
    from stgvcodec.api import encode

    clip = work / f"{vector.name}.mkv"
    with VideoWriter(clip, vector.width, vector.height, 25) as writer:
        for rgb in _pattern(vector.frames, vector.height, vector.width, vector.seed):
            writer.write(rgb)
    output = folder / f"{vector.name}.stgv"
    quant = QuantConfig(steps=QAT_STEPS, rvq_stages=vector.rvq_stages, codebook_size=vector.codebook_size,
                        network_bits=vector.network_bits, lr_network=FIT.lr_network_final)  # fmt: skip
    encode(clip, output, gaussians=vector.gaussians, gop_size=vector.gop_size, keyint=vector.keyint, device="cpu",
           seed=vector.seed, quant=quant, model=vector.model, fit=FIT, quiet=True)  # fmt: skip
    if vector.empty_gops or vector.drop_gops or vector.histogram_gops:
        _edit_gops(output, vector)
    return output


def _edit_gops(path: Path, vector: Vector) -> None:
    """Rewrites `path` with the GoPs of `empty_gops` and `drop_gops` replaced by hand-built chunks;
    the other chunks and every GoP's key or predicted flag stay as the encoder wrote them.

    Raises:
        RuntimeError: when a GoP of drop_gops is a key GoP (the fit started cold), or a replaced GoP
            is the reference of a predicted GoP (whose reference count would no longer match).
    """
    with StgvReader(path) as reader:
        header = reader.header
        config = unpack_model_config(header.config)
        sizes = tensor_sizes(config)
        entries = reader.gops
        chunks, reference = [], None
        for k, entry in enumerate(entries):
            record, canonical = read_gop(reader, k, sizes, reference)
            if (k in vector.empty_gops or k in vector.drop_gops) and k + 1 < len(entries) and entries[k + 1].predicted:
                raise RuntimeError(f"{vector.name}: GoP {k + 1} is predicted from GoP {k}, which is replaced by hand")
            if k in vector.empty_gops:
                chunks.append(Chunk(_empty_payload(config, vector)))
            elif k in vector.drop_gops:
                if not entry.predicted:
                    raise RuntimeError(f"{vector.name}: GoP {k} came out a key GoP (its fit started cold)")
                own = k in vector.own_quantizers
                chunks.append(Chunk(encode_gop(_drop_and_add(record, reference, vector, own)), predicted=True))
            elif k in vector.histogram_gops:
                chunks.append(Chunk(_without_adaptive(reader.read_chunk(k), entry.predicted), entry.predicted))
            else:
                chunks.append(Chunk(bytes(reader.read_chunk(k)), entry.predicted))
            reference = canonical
    write_stgv(path, header, chunks)


def _without_adaptive(payload: bytes, predicted: bool) -> bytes:
    """The payload with every coded stream spelled again as RAW or ANS (the shorter): the same
    symbols, so the same GoP."""
    streams = []
    for stream_id, view in split_payload(payload, predicted)[0]:
        if stream_id not in (Stream.PARAMS, Stream.PREDICTION):
            symbols, _ = decode_symbols(view, 0, max_count=1 << 30)
            view = encode_symbols(symbols, adaptive=False)
        streams.append((stream_id, bytes(view)))
    return join_streams(streams)


DROP_EVERY = 5
"""In a GoP of `drop_gops`, reference Gaussians 0, 5, 10, ... are dropped."""
NEW_GAUSSIANS = 3
"""In a GoP of `drop_gops`, how many of the dropped Gaussians come back as new Gaussians."""


def _drop_and_add(record: GopRecord, reference: Canonical, vector: Vector, own: bool) -> GopRecord:
    """A predicted GoP's record with reference Gaussians 0, DROP_EVERY, 2 DROP_EVERY, ... dropped
    (their residual rows removed if they were updated; when no kept Gaussian is copied, the first
    updated one becomes copied, its residuals removed) and the first NEW_GAUSSIANS of them coded again
    as new Gaussians: positions on the record's grid, and
    - `own`: as a key GoP codes its own: Cholesky symbols on a step and offset that span their
      factors, colours as entries of the first codebook, rounded to its step (the other stages' entry 0, zero);
    - otherwise on the reference's quantizers (inherited): Cholesky symbols rounded on its step and
      offset, colours the nearest codebook entry stage by stage.
    The network and the other kept Gaussians are the encoder's.

    Args:
        record: the predicted GoP's record as decoded (read_gop).
        reference: the canonical Gaussians of the GoP before it.
    """
    keep = record.prediction.keep.copy()
    dropped = np.arange(0, len(keep), DROP_EVERY)
    updated = np.flatnonzero(keep == Keep.UPDATED)
    residuals = record.prediction.residuals[~np.isin(updated, dropped)]
    keep[dropped] = Keep.DROPPED
    if not (keep == Keep.COPIED).any():  # one copied Gaussian at least: the first updated one, its residuals removed
        first = np.flatnonzero(keep == Keep.UPDATED)[0]
        keep[first] = Keep.COPIED
        residuals = residuals[1:]
    new = dropped[:NEW_GAUSSIANS]
    means, cholesky, colours = (np.asarray(values, np.float32)[new] for values in reference.gaussians)
    positions = PositionGrid(record.position_grid, vector.width, vector.height).keys(torch.from_numpy(means)).numpy()
    if not own:  # the encoder's quantizers for inherited gamma, beta and codebooks
        gamma, beta, codebooks = reference.quantizers
        indices, _ = FixedRVQ(codebooks).export(torch.from_numpy(colours))
        return replace(
            record, positions=positions, inherits=True, colour_indices=indices,
            cholesky_symbols=CholeskyQuantizer.fixed(gamma, beta).symbols(torch.from_numpy(cholesky)).numpy().astype(np.int32),
            prediction=Prediction(keep, record.prediction.steps, residuals),
        )  # fmt: skip
    low = cholesky.min(0)
    gamma = np.maximum((cholesky.max(0) - low) / 255, 1e-3).astype(np.float32)
    codebooks = np.zeros((vector.rvq_stages, vector.codebook_size, 3), np.float32)
    codebooks[0, : len(new)] = quantize_codebooks(colours, CODEBOOK_STEP)
    indices = np.zeros((len(new), vector.rvq_stages), np.int32)
    indices[:, 0] = np.arange(len(new))
    return GopRecord(
        positions=positions,
        cholesky_symbols=np.clip(np.rint((cholesky - low) / gamma), 0, 255).astype(np.int32),
        cholesky_gamma=gamma,
        cholesky_beta=low.astype(np.float32),
        colour_indices=indices,
        codebooks=codebooks,
        tensor_symbols=record.tensor_symbols,
        tensor_scales=record.tensor_scales,
        network_bits=record.network_bits,
        prediction=Prediction(keep, record.prediction.steps, residuals),
        position_grid=record.position_grid,
        codebook_step=CODEBOOK_STEP,
    )


@dataclass
class GopDumps:
    """What the decoder computes for one GoP."""

    arrays: dict[str, np.ndarray]
    """float32 arrays by DUMPS kind."""
    tensors: list[dict]
    """Name, shape and offset in the "network" dump of each network tensor, in stream order."""


def decoder_dumps(path: str | Path) -> list[GopDumps]:
    """Per GoP, the decoder's intermediates, computed by the functions `stgv decode` runs
    (read_gop, gop_model, gop_batches) on the CPU backend.

    The MLP's input comes from DeformationField.mlp_input, the function the decoder's forward
    pass calls for it, on the batch's times.
    """
    device = torch.device("cpu")
    gops = []
    with StgvReader(path) as reader:
        header = reader.header
        config = unpack_model_config(header.config)
        sizes = tensor_sizes(config)
        reference = None
        for index, entry in enumerate(reader.gops):
            record, reference = read_gop(reader, index, sizes, reference)
            model = gop_model(record, config, device, reference)
            batches = list(gop_batches(model, entry.frame_count, header.height, header.width, BACKEND))
            count = len(reference)  # the canonical Gaussians (a predicted record holds only the new ones)
            with torch.no_grad():
                inputs = [model.deformation.mlp_input(model.gaussians.means, b.times) for b in batches]
            mlp_input = torch.cat([x.reshape(b.times.shape[0], count, x.shape[-1]) for x, b in zip(inputs, batches)])
            g = model.gaussians
            parameters = list(model.deformation.named_parameters())
            offsets = np.cumsum([0] + [p.numel() for _, p in parameters])
            arrays = {
                "means": g.means, "cholesky": g.cholesky, "colours": g.colors,
                "network": torch.cat([p.detach().reshape(-1) for _, p in parameters]),
                "mlp_input": mlp_input,
                "deformed_means": torch.cat([b.means for b in batches]),
                "deformed_colours": torch.cat([b.colours for b in batches]),
                "sums": torch.cat([b.sums for b in batches]),
            }  # fmt: skip
            tensors = [
                {"name": name, "shape": list(p.shape), "offset": int(offset)}
                for (name, p), offset in zip(parameters, offsets)
            ]
            gops.append(GopDumps({k: v.detach().cpu().numpy().astype(np.float32) for k, v in arrays.items()}, tensors))
    return gops


def decoded_frames(path: str | Path, work: Path) -> np.ndarray:
    """[T, H, W, 3] uint8: the frames `stgv decode` writes (decoded on the CPU into PNGs, read back)."""
    from stgvcodec.decode import decode

    folder = Path(tempfile.mkdtemp(prefix="frames-", dir=work))
    decode(path, str(folder) + "/", device="cpu")
    frames = np.stack(list(read_frames(folder)))
    shutil.rmtree(folder)
    return frames


def frame_digests(frames: np.ndarray) -> tuple[list[str], str]:
    """SHA-256 of each frame's rgb24 bytes (rows top to bottom, pixels left to right, R G B), and
    of all frames' bytes one after another."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    return [hashlib.sha256(f.tobytes()).hexdigest() for f in frames], hashlib.sha256(frames.tobytes()).hexdigest()


def stream_table(payload: bytes | memoryview, predicted: bool, version: int) -> list[dict]:
    """Id, name, bytes, and for coded streams mode, symbol count, RAW width or ANS / ADAPTIVE
    alphabet size, of each stream of a GoP payload (read from the stream headers, bitstream_spec.md
    section 9). PARAMS and PREDICTION are fixed records, not coded symbols: mode None."""
    table = []
    for stream_id, view in split_payload(payload, predicted, version)[0]:
        if Stream.COLOUR <= stream_id < Stream.PREDICTION:
            name = f"COLOUR_{stream_id - Stream.COLOUR}"  # RVQ stage k has id COLOUR + k
        elif Stream.RESIDUAL <= stream_id < Stream.HASH:
            name = f"RESIDUAL_{RESIDUAL_ATTRIBUTES[stream_id - Stream.RESIDUAL].upper()}"  # attribute k: RESIDUAL + k
        else:
            name = Stream(stream_id).name
        row = dict(id=stream_id, name=name, bytes=len(view), mode=None, symbols=None, width=None, alphabet=None)
        if stream_id not in (Stream.PARAMS, Stream.PREDICTION):
            mode = SymbolCoding(view[0])
            count, at = read_uvarint(view, 1, "count")
            row.update(mode=mode.name, symbols=count)
            if count:
                _, at = read_uvarint(view, at, "min")
                if mode == SymbolCoding.RAW:
                    row["width"] = int(view[at])
                else:
                    row["alphabet"] = read_uvarint(view, at, "alphabet")[0] + 2
        table.append(row)
    return table


def hash_levels_dense(config: ModelConfig) -> dict[str, list[bool]]:
    """Per hash grid ("2d", "3d"), whether each level is dense (bitstream_spec.md 11.1); empty lists
    for the other encodings."""
    if config.encoding != "hash":
        return {"2d": [], "3d": []}
    grid = dict(levels=config.levels, log2_table_size=config.log2_table_size, base_resolution=config.base_resolution,
                per_level_scale=config.per_level_scale)  # fmt: skip
    return {
        f"{dims}d": [level.dense for level in HashGrid(dims, features=1, **grid).level_info()] for dims in (2, 3)
    }


def file_facts(path: str | Path) -> dict:
    """What a .stgv file holds, read from it: header fields, model, and per GoP its frames, whether
    it is predicted and what its prediction keeps, sizes and stream table (what COVERAGE tests)."""
    data = Path(path).read_bytes()
    with StgvReader(path) as reader:
        header = reader.header
        config = unpack_model_config(header.config)
        sizes = tensor_sizes(config)
        gops, reference = [], None
        for k, entry in enumerate(reader.gops):
            references = len(reference) if reference is not None else 0
            record, reference = read_gop(reader, k, sizes, reference)
            gops.append({
                "gop": k, "first_frame": entry.first_frame, "frames": entry.frame_count,
                "predicted": entry.predicted, "prediction": _prediction_counts(record, references),
                "gaussians": len(reference), "network_bits": record.network_bits, "inherits": record.inherits,
                "rvq_stages": record.codebooks.shape[0], "codebook_size": record.codebooks.shape[1],
                "streams": stream_table(reader.read_chunk(k), entry.predicted, header.version),
            })  # fmt: skip
    return {
        "file": f"{VECTORS}/{Path(path).name}",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "version": header.version,
        "width": header.width,
        "height": header.height,
        "frames": header.frame_count,
        "gop_size": header.gop_size,
        "fps": f"{header.fps_num}/{header.fps_den}",
        "encoding": config.encoding,
        "model": asdict(config),
        "hash_levels_dense": hash_levels_dense(config),
        "gops": gops,
    }


def _prediction_counts(record: GopRecord, references: int) -> dict | None:
    """For a predicted GoP's record, its reference's Gaussian count and how many of them it drops,
    copies and updates, and its new Gaussians; None for a key GoP."""
    if record.prediction is None:
        return None
    keep = record.prediction.keep
    counts = {kind.name.lower(): int(np.count_nonzero(keep == kind)) for kind in Keep}
    return {"reference": references, **counts, "new": len(record.positions)}


def describe(vector: Vector, path: Path, work: Path, dumps_folder: Path) -> dict:
    """The manifest entry of a vector; writes its dumps into dumps_folder."""
    facts = file_facts(path)
    gops = decoder_dumps(path)
    frames = decoded_frames(path, work)
    rendered = np.concatenate([to_uint8(clamp_image(torch.from_numpy(g.arrays["sums"]))) for g in gops])
    if not np.array_equal(frames, rendered):
        raise RuntimeError(f"{path}: the frames `stgv decode` wrote differ from the rounded sums of gop_batches")
    per_frame, whole = frame_digests(frames)
    dumps_folder.mkdir(parents=True)
    for k, (gop, entry) in enumerate(zip(gops, facts["gops"])):
        files = {}
        for kind, array in gop.arrays.items():
            name = f"gop{k}.{kind}.f32"
            (dumps_folder / name).write_bytes(array.astype("<f4").tobytes())
            files[kind] = {"file": f"{VECTORS}/{vector.name}/{name}", "shape": list(array.shape)}
        entry.update(dumps=files, tensors=gop.tensors)
    return {"name": vector.name, "covers": vector.covers, **facts, "frame_sha256": per_frame, "video_sha256": whole}


def missing_coverage(vectors: list[dict]) -> list[str]:
    """The COVERAGE items that no vector exercises (`vectors`: file_facts() or manifest entries)."""
    return [item for item, test in COVERAGE.items() if not any(test(v) for v in vectors)]


EXACT_DUMPS = ("means", "cholesky", "colours", "network")
"""Dumps of dequantization alone (one or two IEEE operations per value on stored numbers and the
reference's, bitstream_spec.md 8.2 and 8.3): every decoder computes them bit for bit."""
DUMP_TOLERANCE = 1e-5
"""The other dumps (network and renderer outputs) are compared within DUMP_TOLERANCE * max(1, |stored|)
by tests/conformance/test_vectors.py: they localise a difference; the frames' digests decide."""


def manifest(entries: list[dict]) -> dict:
    """The manifest of the vectors `entries` (describe()).

    Raises:
        RuntimeError: when the files' headers give more than one bitstream version.
    """
    versions = sorted({entry["version"] for entry in entries})
    if len(versions) != 1:
        raise RuntimeError(f"the vectors mix bitstream versions {versions}")
    return {
        "about": "Conformance vectors of the .stgv format: see README.md in this directory.",
        "bitstream_version": versions[0],
        "regenerate": "python tools/make_conformance.py (or --keep-streams to keep the .stgv files)",
        "dump_format": "raw little-endian IEEE 754 binary32, C order (row-major), no header; shape and meaning below",
        "gaussian_order": GAUSSIAN_ORDER,
        "dumps": {kind: {"shape": shape, "meaning": meaning} for kind, (shape, meaning) in DUMPS.items()},
        "comparison": {"exact": list(EXACT_DUMPS), "relative_tolerance": DUMP_TOLERANCE,
                       "frames": "SHA-256 digests, exact"},  # fmt: skip
        "frame_digest": "SHA-256 of a decoded frame's H * W * 3 bytes: rows top to bottom, pixels left to right, "
        "R G B (8-bit values floor(v * 255 + 0.5) of the clamped sum); video_sha256 is that of all frames in order",
        "coverage": list(COVERAGE),
        "vectors": entries,
    }


def generate(out: Path, keep_streams: bool = False) -> list[dict]:
    """Writes manifest.json and vectors/ into `out` (an existing directory), replacing what is
    there, and returns the manifest's vector entries. With `keep_streams`, the .stgv files already
    in out/vectors are kept and only digests, dumps and manifest are redone.

    Raises:
        FileNotFoundError: with keep_streams, when a vector's .stgv file is missing.
        RuntimeError: when the vectors no longer cover every COVERAGE item.
    """
    if keep_streams:
        missing = [f"{v.name}.stgv" for v in VECTORS_LIST if not (out / VECTORS / f"{v.name}.stgv").is_file()]
        if missing:
            raise FileNotFoundError(f"--keep-streams: {out / VECTORS} lacks {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="conformance-") as temp:
        work = Path(temp)
        staged = work / VECTORS
        staged.mkdir()
        entries = []
        for vector in VECTORS_LIST:
            if keep_streams:
                path = staged / f"{vector.name}.stgv"
                shutil.copyfile(out / VECTORS / path.name, path)
            else:
                path = encode_vector(vector, staged, work)
            entries.append(describe(vector, path, work, staged / vector.name))
        gaps = missing_coverage(entries)
        if gaps:
            raise RuntimeError(f"the vectors no longer cover: {'; '.join(gaps)}")
        text = json.dumps(manifest(entries), indent=1) + "\n"
        shutil.rmtree(out / VECTORS, ignore_errors=True)
        shutil.copytree(staged, out / VECTORS)
        (out / MANIFEST).write_text(text)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory of manifest.json and vectors/")
    parser.add_argument(
        "--keep-streams", action="store_true", help="reuse the .stgv files in OUT; redo digests, dumps and manifest"
    )
    args = parser.parse_args()
    out: Path = args.out
    if not out.is_dir():
        sys.exit(f"make_conformance: {out}: not an existing directory")
    try:
        entries = generate(out, args.keep_streams)
    except (FileNotFoundError, RuntimeError) as err:
        sys.exit(f"make_conformance: {err}")
    size = sum(p.stat().st_size for p in (out / VECTORS).rglob("*") if p.is_file()) + (out / MANIFEST).stat().st_size
    summary = {
        "out": str(out),
        "bytes": size,
        "vectors": [
            {"name": e["name"], "bytes": e["bytes"], "gaussians": [g["gaussians"] for g in e["gops"]],
             "predicted": [g["prediction"] for g in e["gops"]],
             "modes": sorted({s["mode"] for g in e["gops"] for s in g["streams"] if s["mode"]}),
             "max_offset_pixels": _max_offset(out, e)}
            for e in entries
        ],  # fmt: skip
    }
    print(json.dumps(summary, indent=2))


def _max_offset(out: Path, entry: dict) -> float:
    """Largest distance in pixels (either axis) a Gaussian moves from its canonical position."""
    largest = 0.0
    for gop in entry["gops"]:
        if not gop["gaussians"]:
            continue
        means = np.fromfile(out / gop["dumps"]["means"]["file"], "<f4").reshape(-1, 2)
        moved = np.fromfile(out / gop["dumps"]["deformed_means"]["file"], "<f4").reshape(-1, *means.shape)
        scale = np.array([entry["width"] / 2, entry["height"] / 2])
        largest = max(largest, float(np.abs((moved - means) * scale).max()))
    return round(largest, 3)


if __name__ == "__main__":
    main()
