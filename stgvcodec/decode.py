"""The standalone decoder: .stgv -> frames. Imports torch, numpy, constriction and av only.

    StgvReader --chunk k--> decode_gop --> GopRecord --canonical_gaussians (a predicted GoP: with the
        previous GoP's canonical Gaussians as reference)--> gop_model --> GopModel --gop_batches-->
        deformed Gaussians and the renderer's sums --clamp, round (gop_frames)--> uint8 frames
        --VideoWriter--> output

A predicted GoP needs the canonical Gaussians of the GoP before it (and, when it inherits them,
its quantizers), so decoding frames from the middle of a file starts at the key GoP before them;
the GoPs in between are parsed and dequantized, not rendered.

GoPs are decoded one at a time and their frames streamed to the output, so memory stays
bounded whatever the video's length. The encoder reports its reconstruction through the same
gop_model and render_gop, so on one machine and device the decoder reproduces it bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .bitstream import BitstreamError, StgvReader
from .bitstream.gop import GopRecord, Quantizers, decode_gop
from .bitstream.model_config import unpack_model_config
from .config import ModelConfig
from .gop import frame_times
from .memory import POINT_CHUNK, check_memory, render_batch
from .metrics import to_uint8
from .model import DeformationField, Gaussians, GopModel
from .quant.colours import dequantize_colours
from .quant.prediction import predict_gaussians
from .quant.quantizers import dequantize_cholesky, dequantize_positions, dequantize_tensor
from .render import Backend, clamp_image, rasterize_sum

@dataclass(frozen=True)
class DecodeSummary:
    """What a decode did."""

    frames: int
    width: int
    height: int
    seconds: float
    device: str


def tensor_sizes(config: ModelConfig) -> list[int]:
    """Element counts of the deformation field's tensors, in stream order.

    The field is built on the meta device: counting allocates nothing, so a header whose
    configuration asks for a network of gigabytes costs nothing until a GoP is decoded.
    """
    with torch.device("meta"):
        field = DeformationField(config)
    return [p.numel() for _, p in field.named_parameters()]


CHUNK_LENGTH_BYTES = 4
"""A chunk record starts with its payload length (u32), then the payload (bitstream_spec.md)."""


@dataclass(frozen=True)
class Canonical:
    """A GoP's canonical Gaussians as the decoder computes them, in render order, and the
    quantizers of its new Gaussians: the reference of a predicted GoP after it."""

    means: np.ndarray
    """[N, 2] float32."""
    cholesky: np.ndarray
    """[N, 3] float32 Cholesky factors."""
    colours: np.ndarray
    """[N, 3] float32."""
    quantizers: Quantizers
    """What a predicted GoP after this one may inherit (bitstream_spec.md, section 8.3)."""

    @property
    def gaussians(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(means, cholesky, colours)."""
        return self.means, self.cholesky, self.colours

    def __len__(self) -> int:
        return len(self.means)


def read_gop(reader: StgvReader, index: int, sizes: list[int], reference: Canonical | None = None) -> tuple[GopRecord, Canonical]:
    """Reads and parses GoP `index` of an open file, and computes its canonical Gaussians.

    Args:
        reference: what read_gop returned for GoP index - 1 (its canonical Gaussians and
            quantizers); needed when the index marks GoP `index` as predicted, ignored otherwise.

    Raises:
        BitstreamError: for a damaged chunk or a malformed payload; the message names the GoP
            and its frames, the stream, and the byte offset from the start of the file.
    """
    payload = reader.read_chunk(index)  # its errors name the GoP already
    entry = reader.gops[index]
    if entry.predicted and reference is None:
        raise BitstreamError(f"{entry.label}: predicted from GoP {index - 1}, which was not decoded first")
    try:
        record = decode_gop(
            payload, sizes, base=entry.offset + CHUNK_LENGTH_BYTES, version=reader.header.version,
            reference=len(reference) if entry.predicted else None,
            quantizers=reference.quantizers if entry.predicted else None,
        )  # fmt: skip
        return record, canonical_gaussians(record, reference, size=(reader.header.width, reader.header.height))
    except BitstreamError as error:
        raise BitstreamError(f"{entry.label}: {error}") from None


def canonical_gaussians(record: GopRecord, reference: Canonical | None = None, *, size: tuple[int, int] | None = None) -> Canonical:
    """The canonical Gaussians a record describes (bitstream_spec.md, sections 8.1 to 8.3).

    Args:
        reference: the previous GoP's canonical Gaussians, for a predicted record.
        size: the frame's (width, height), which grid positions (version 5 on) are relative to.

    Raises:
        BitstreamError: for a predicted record without a reference or whose residuals take a value
            out of range.
        ValueError: for grid positions without a frame size.
    """
    if record.position_grid and size is None:
        raise ValueError("grid positions need the frame size")
    means = dequantize_positions(record.positions, record.position_grid, *(size or (0, 0)))
    cholesky = dequantize_cholesky(record.cholesky_symbols, record.cholesky_gamma, record.cholesky_beta)
    colours = dequantize_colours(record.colour_indices, record.codebooks)
    if record.prediction is None:
        return Canonical(means, cholesky, colours, record.quantizers)
    if reference is None:
        raise BitstreamError("a predicted GoP needs the previous GoP's Gaussians")
    try:
        kept = predict_gaussians(record.prediction, reference.gaussians)
    except ValueError as error:
        raise BitstreamError(f"GoP payload: {error}") from None
    return Canonical(*(np.concatenate((old, new)) for old, new in zip(kept, (means, cholesky, colours))), record.quantizers)


def gop_model(
    record: GopRecord, config: ModelConfig, device: torch.device, canonical: Canonical | None = None, size: tuple[int, int] | None = None
) -> GopModel:
    """Builds the GoP model a record describes, with dequantized float32 parameters.

    Args:
        canonical: its canonical Gaussians from canonical_gaussians(); computed here when None
            (a key GoP's record only, whose grid positions need the frame's (width, height), `size`).
    """
    means, cholesky, colours = (canonical if canonical is not None else canonical_gaussians(record, size=size)).gaussians
    gaussians = Gaussians(torch.from_numpy(means), torch.from_numpy(cholesky), torch.from_numpy(colours))
    model = GopModel(gaussians, config)
    with torch.no_grad():
        parameters = list(model.deformation.named_parameters())
        for (_, parameter), symbols, scale in zip(parameters, record.tensor_symbols, record.tensor_scales):
            parameter.copy_(torch.from_numpy(dequantize_tensor(symbols, scale, tuple(parameter.shape))))
    return model.to(device).eval()


@dataclass(frozen=True)
class RenderedBatch:
    """Frames of a GoP rendered together, with what the decoder computed on the way."""

    first: int
    """Index in the GoP of the batch's first frame."""
    times: Tensor
    """[B] float32 frame times."""
    means: Tensor
    """[B, N, 2] deformed means (NDC), Gaussians in stream order."""
    cholesky: Tensor
    """[B, N, 3] Cholesky factors (the dequantized ones at every time)."""
    colours: Tensor
    """[B, N, 3] deformed colours."""
    sums: Tensor
    """[B, H, W, 3] the renderer's sum before clamping (render.rasterize_sum)."""


@torch.no_grad()
def gop_batches(
    model: GopModel, count: int, height: int, width: int, backend: Backend = "auto", frames: range | None = None
) -> Iterator[RenderedBatch]:
    """A GoP rendered render_batch() frames at a time: the batches that hold any of `frames`.

    Args:
        frames: the indices wanted (default all `count`); batches are always aligned to the
            GoP's first frame, so a frame renders identically whichever others are asked for.
    """
    wanted = range(count) if frames is None else frames
    device = model.gaussians.means.device
    times = torch.tensor(frame_times(count), dtype=torch.float32, device=device)
    step = render_batch(height, width, len(model.gaussians))
    for first in range(0, count, step):
        if not any(k in wanted for k in range(first, min(first + step, count))):
            continue
        means, cholesky, colours = deformed(model, times[first : first + step])
        sums = rasterize_sum(means, cholesky, colours, height, width, backend)
        yield RenderedBatch(first, times[first : first + step], means, cholesky, colours, sums)


@torch.no_grad()
def gop_frames(
    model: GopModel, count: int, height: int, width: int, backend: Backend = "auto", frames: range | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames of a GoP as (index in the GoP, [H, W, 3] uint8), a batch of render_batch() at a time.

    Args:
        frames: the indices to yield (default all `count`); see gop_batches.
    """
    wanted = range(count) if frames is None else frames
    for batch in gop_batches(model, count, height, width, backend, wanted):
        image = clamp_image(batch.sums)
        for k in range(batch.first, batch.first + batch.times.shape[0]):
            if k in wanted:
                yield k, to_uint8(image[k - batch.first])


def deformed(model: GopModel, times: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The decoder's model.deformed(times, exact=True): means [T, N, 2], cholesky [T, N, 3] and
    colours [T, N, 3], evaluated over at most POINT_CHUNK (Gaussian, frame) pairs at a time (each
    Gaussian's offsets depend on it alone, so chunking changes no value)."""
    g = model.gaussians
    count = g.means.shape[0]
    per_chunk = max(1, POINT_CHUNK // max(times.shape[0], 1))
    if count <= per_chunk:
        return model.deformed(times, exact=True)
    offsets = [model.deformation(g.means[n : n + per_chunk], times, exact=True) for n in range(0, count, per_chunk)]
    dmu = torch.cat([d for d, _ in offsets], dim=1)
    dc = torch.cat([c for _, c in offsets], dim=1)
    return g.means + dmu, g.cholesky.expand(times.shape[0], *g.cholesky.shape), g.colors + dc


def render_gop(model: GopModel, count: int, height: int, width: int, backend: Backend = "auto") -> np.ndarray:
    """All `count` frames [T, H, W, 3] uint8 of a GoP (gop_frames, gathered)."""
    return np.stack([frame for _, frame in gop_frames(model, count, height, width, backend)])


def default_device(device: str | None = None) -> torch.device:
    """An explicit device, else CUDA when present, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def decode(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    device: str | None = None,
    frames: tuple[int, int] | None = None,
    crf: int = 18,
    progress=None,
) -> DecodeSummary:
    """Decodes a .stgv file into a video, image directory or y4m stream.

    Args:
        source: the .stgv file.
        output: .mp4, .mkv, .y4m, "-" (y4m on stdout) or a directory for PNGs.
        device: torch device; default CUDA when present, else CPU.
        frames: (first, last) 0-based inclusive range of frames to output; only the GoPs that
            hold them are decoded.
        crf: x264 quality of .mp4 output.
        progress: optional callable(done_frames, total_frames).

    Raises:
        BitstreamError: for a malformed file, naming what and where.
        OutputError: for an output that is the source or cannot be written.
    """
    from .io import VideoWriter
    from .io.outputs import check_output

    start = time.perf_counter()
    if str(output) != "-":
        check_output(output, (source,), directory=str(output).endswith(("/", os.sep)) or os.path.isdir(output))
    target = default_device(device)
    with StgvReader(source) as reader:
        header = reader.header
        config = unpack_model_config(header.config)
        sizes = tensor_sizes(config)
        first, last = frames if frames is not None else (0, header.frame_count - 1)
        if not 0 <= first <= last < header.frame_count:
            raise ValueError(f"--frames {first}-{last} outside 0-{header.frame_count - 1}")
        check_memory(header.width, header.height, 0, config, f"{header.width}x{header.height} frames")
        wanted_gops = [k for k, e in enumerate(reader.gops) if e.first_frame <= last and e.first_frame + e.frame_count > first]
        written, reference = 0, None
        with VideoWriter(output, header.width, header.height, header.fps, crf=crf) as writer:
            for index in range(reader.key_gop(wanted_gops[0]), wanted_gops[-1] + 1):
                entry = reader.gops[index]
                record, canonical = _read_for_dependants(reader, index, sizes, reference)
                reference = canonical
                if index < wanted_gops[0]:
                    continue  # a reference of the GoPs wanted: its Gaussians only
                gop_first, gop_last = entry.first_frame, entry.first_frame + entry.frame_count - 1
                check_memory(header.width, header.height, len(canonical), config, entry.label)
                model = gop_model(record, config, target, canonical)
                wanted = range(max(first, gop_first) - gop_first, min(last, gop_last) + 1 - gop_first)
                for _, frame in gop_frames(model, entry.frame_count, header.height, header.width, frames=wanted):
                    writer.write(frame)
                    written += 1
                    if progress is not None:
                        progress(written, last - first + 1)
    return DecodeSummary(written, header.width, header.height, time.perf_counter() - start, str(target))


def _read_for_dependants(reader: StgvReader, index: int, sizes: list[int], reference: Canonical | None) -> tuple[GopRecord, Canonical]:
    """read_gop, with an error that also names the GoPs predicted from a damaged one, and where
    decoding can start again (the next key GoP)."""
    try:
        return read_gop(reader, index, sizes, reference)
    except BitstreamError as error:
        after = reader.dependants(index)
        if not after:
            raise
        gops = reader.gops
        span = f"GoP {after[0]}" if len(after) == 1 else f"GoPs {after[0]}-{after[-1]}"
        verb = "depends" if len(after) == 1 else "depend"
        frames = f"frames {gops[after[0]].first_frame}-{gops[after[-1]].first_frame + gops[after[-1]].frame_count - 1}"
        restart = after[-1] + 1
        again = (
            f"; decoding can start again at frame {gops[restart].first_frame} (GoP {restart}, a key GoP)"
            if restart < len(gops) else ""
        )
        raise BitstreamError(f"{error}; {span} ({frames}) {verb} on it and cannot be decoded{again}") from None

