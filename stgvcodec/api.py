"""encode() and decode(): what the CLI and Python users call.

    video --VideoReader (one GoP of frames in memory at a time)--> frames --split_gops--> per GoP:
        fit_gop (key-frame init, deformation) --finetune (QAT)--> GopRecord --encode_gop--> payload
        payload --decode_gop--> gop_model --render_gop--> reconstruction (what the decoder will show)
    header + payloads --write_stgv--> .stgv

Rate control (--bpp): the per-GoP share of the target picks a rung of RUNGS (deformation network,
its precision, colour codebooks) whose fixed cost fits FIXED_SHARE of it. Before each GoP, the
bits left for the rest of the video are shared out over the frames still to code, and the GoP's
budget, less the fixed cost of a GoP (network and side information, as measured so far, or
estimated), buys Gaussians at the bits a Gaussian's own streams have cost so far.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .bitstream import FileHeader, write_stgv
from .bitstream.gop import decode_gop, encode_gop, stream_sizes
from .bitstream.model_config import pack_model_config, unpack_model_config
from .config import FitConfig, ModelConfig, preset
from .decode import DecodeSummary, decode, default_device, gop_model, render_gop, tensor_sizes
from .gop import split_gops
from .io import VideoError, VideoReader
from .metrics import ms_ssim, psnr
from .quant.qat import QuantConfig, finetune
from .train.gop_fit import fit_gop

__all__ = ["encode", "decode", "EncodeSummary", "DecodeSummary", "RateModel"]

MIN_BPP, MAX_BPP = 0.001, 16.0


@dataclass
class GopReport:
    """One coded GoP."""

    first_frame: int
    frames: int
    gaussians: int
    bytes: int
    psnr: float
    ms_ssim: float | None
    seconds: float
    stream_bytes: dict[str, int] = field(default_factory=dict)


@dataclass
class EncodeSummary:
    """What an encode produced: the file's real size and the decoder's reconstruction quality."""

    path: str
    frames: int
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float | None
    seconds: float
    device: str
    gops: list[GopReport]


@dataclass(frozen=True)
class Rung:
    """One step of the --bpp ladder: deformation network, its precision, and colour codebooks."""

    model: ModelConfig
    network_bits: int
    rvq_stages: int
    codebook_size: int


RUNGS: list[Rung] = [
    Rung(ModelConfig(), 8, 2, 64),
    Rung(ModelConfig(log2_table_size=8, width=64), 8, 2, 64),
    Rung(ModelConfig(log2_table_size=7, levels=6, width=32), 8, 2, 32),
    Rung(ModelConfig(log2_table_size=6, levels=4, width=16), 6, 2, 16),
    Rung(ModelConfig(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1), 6, 1, 16),
    Rung(ModelConfig(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1), 4, 1, 16),
    Rung(ModelConfig(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1), 3, 1, 8),
]
"""From the paper's configuration (71,813 network weights, 8 bits, 2 x 64 colours) down to 589
weights at 3 bits and 8 colours; --bpp takes the largest rung whose fixed cost fits its budget."""

FIXED_SHARE = 0.35
"""Largest share of a GoP's bits the network, codebooks and side information may take under --bpp."""


class RateModel:
    """First estimates of what a GoP costs: fixed bits (network, codebooks, side information) plus
    bits per Gaussian. The encoder replaces both by the measured values of the GoPs it has coded."""

    min_gaussians = 16
    """Never fewer Gaussians than this."""

    @staticmethod
    def bits_per_weight(network_bits: int) -> float:
        """A P-bit network symbol after entropy coding: about P bits, as the trained weights of the
        small networks spread over the quantizer's whole range (6.1 bits at P = 6, 2.8 at P = 3,
        measured on carphone); large hash tables, mostly untouched, cost less."""
        return float(network_bits)

    @staticmethod
    def bits_per_gaussian(rung: Rung) -> float:
        """~19 bits of position and ~18 of Cholesky symbols when Gaussians are many, more when they
        are few (wider position gaps, histograms), plus the colour indices. Kept on the high side:
        a first GoP that underspends leaves its bits to the next, one that overspends takes them."""
        return 48.0 + rung.rvq_stages * np.log2(rung.codebook_size)

    @staticmethod
    def fixed_bits(rung: Rung) -> float:
        """Network symbols, then PARAMS (head, Cholesky quantizer, codebooks, tensor scales) and
        stream framing (section 8 of bitstream_spec.md)."""
        sizes = tensor_sizes(rung.model)
        side_bytes = 35 + 6 * rung.rvq_stages * rung.codebook_size + 4 * len(sizes) + 3 * (8 + rung.rvq_stages)
        return sum(sizes) * RateModel.bits_per_weight(rung.network_bits) + 8 * side_bytes


def settings_for_budget(bits: float) -> Rung:
    """The largest rung of RUNGS whose fixed cost fits FIXED_SHARE of `bits` (per GoP)."""
    for rung in RUNGS:
        if RateModel.fixed_bits(rung) <= FIXED_SHARE * bits:
            return rung
    return RUNGS[-1]


def encode(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    bpp: float | None = None,
    gaussians: int | None = None,
    preset_name: str = "fast",
    gop_size: int = 10,
    device: str | None = None,
    seed: int = 0,
    quant: QuantConfig | None = None,
    model: ModelConfig | None = None,
    fit: FitConfig | None = None,
    reader_options: dict | None = None,
    quiet: bool = False,
    log=None,
    reconstruction: list | None = None,
) -> EncodeSummary:
    """Encodes a video into a .stgv file.

    Args:
        source: any video PyAV opens, raw .yuv (give size/fps/pix_fmt in reader_options), or a
            directory of PNGs.
        output: the .stgv path; written under a temporary name and renamed when complete.
        bpp: target bits per pixel of the whole file (mutually exclusive with `gaussians`).
        gaussians: fixed Gaussians per GoP.
        preset_name: training preset (fast, medium, paper).
        gop_size: frames per GoP.
        device: torch device; CUDA when present, else CPU.
        seed: seed of every random choice.
        quant: quantization settings (default QuantConfig()).
        model: deformation network (default: the paper's, or the --bpp ladder's choice).
        fit: training schedule instead of the preset's (its `gaussians` and `seed` are replaced
            by the arguments above when those are given).
        reader_options: size, fps, pix_fmt, crop, scale, max_frames for VideoReader.
        quiet: no progress bars.
        log: optional callable(str) for one line per coded GoP.
        reconstruction: if a list, each GoP's decoded frames [T, H, W, 3] uint8 are appended
            (what `stgv decode` will output, bit for bit, on this machine and device).

    Raises:
        ValueError, VideoError: for bad options or input.
    """
    start = time.perf_counter()
    if bpp is not None and gaussians is not None:
        raise ValueError("give --bpp or --gaussians, not both")
    if bpp is not None and not MIN_BPP <= bpp <= MAX_BPP:
        raise ValueError(f"--bpp {bpp} outside {MIN_BPP}..{MAX_BPP}")
    if gop_size < 1 or gop_size > 1000:
        raise ValueError(f"--gop {gop_size} outside 1..1000")
    fit = fit or preset(preset_name)
    fit = replace(fit, seed=seed, gaussians=gaussians if gaussians is not None else fit.gaussians)
    quant = quant or QuantConfig()
    target = default_device(device)
    options = reader_options or {}

    # A first pass counts the frames (containers' own counts are not reliable) and finds unreadable
    # input before any fitting; the second, in chunks(), holds one GoP of frames at a time.
    with VideoReader(source, **options) as reader:
        info = reader.info
        frame_count = sum(1 for _ in reader)
    if not frame_count:
        raise ValueError(f"{source}: has no frames")
    height, width = info.height, info.width
    gops = split_gops(frame_count, gop_size)
    total_bits = bpp * width * height * frame_count if bpp is not None else None
    rung = Rung(model or ModelConfig(), quant.network_bits, quant.rvq_stages, quant.codebook_size)
    if total_bits is not None:
        rung = settings_for_budget(total_bits / len(gops))
        rung = replace(rung, model=model or rung.model)
        quant = replace(quant, rvq_stages=rung.rvq_stages, codebook_size=rung.codebook_size, network_bits=rung.network_bits)
    model = unpack_model_config(pack_model_config(rung.model))  # exactly what the decoder will read
    header = FileHeader(width, height, info.fps.numerator, info.fps.denominator, frame_count, gop_size, pack_model_config(model))
    sizes = tensor_sizes(model)
    reports: list[GopReport] = []

    overhead_bits = 8 * (64 + len(header.config) + 24 * len(gops))  # header, index, chunk framing

    def chunks():
        with VideoReader(source, **options) as reader:
            yield from coded_gops(iter(reader))

    def coded_gops(stream):
        # Per GoP, bits split into a fixed part (network, side information) and a part per Gaussian
        # (positions, shape, colour indices); both are re-estimated from the GoPs already coded.
        spent_bits, fixed_bits, gaussian_bits, gaussian_count = overhead_bits, [], 0.0, 0
        for number, (first, count) in enumerate(gops):
            gop_start = time.perf_counter()
            read = list(itertools.islice(stream, count))
            if len(read) != count:
                raise VideoError(f"{source}: {first + len(read)} frames on a second reading, {frame_count} on the first")
            sources = np.stack(read)
            clip = torch.from_numpy(sources).to(target)
            gop_fit = fit
            if total_bits is not None:
                fixed = np.mean(fixed_bits) if fixed_bits else RateModel.fixed_bits(rung)
                per_gaussian = gaussian_bits / gaussian_count if gaussian_count else RateModel.bits_per_gaussian(rung)
                budget = (total_bits - spent_bits) * count / (frame_count - first)
                gop_fit = replace(fit, gaussians=max(RateModel.min_gaussians, int((budget - fixed) / per_gaussian)))
            label = f"GoP {number + 1}/{len(gops)}"
            fitted = fit_gop(clip, model, gop_fit, quiet=quiet, label=label)
            record = finetune(fitted.model, clip.float() / 255.0, quant, seed=seed, quiet=quiet, label=f"{label} QAT")
            payload = encode_gop(record)
            # Closed loop: the reported reconstruction is the decoder's, from the payload's symbols.
            decoded = decode_gop(payload, sizes)
            recon = render_gop(gop_model(decoded, model, target), count, height, width)
            streams = stream_sizes(payload)
            report = GopReport(
                first, count, decoded.means.shape[0], len(payload),
                float(np.mean([psnr(r, s) for r, s in zip(recon, sources)])), ms_ssim(recon, sources),
                time.perf_counter() - gop_start, streams,
            )  # fmt: skip
            reports.append(report)
            if reconstruction is not None:
                reconstruction.append(recon)
            spent_bits += 8 * len(payload)
            fixed_bytes = streams["hash"] + streams["mlp"] + streams["side"]
            fixed_bits.append(8 * fixed_bytes)
            gaussian_bits += 8 * (len(payload) - fixed_bytes)
            gaussian_count += report.gaussians
            if log is not None:
                log(f"{label}: {report.gaussians} Gaussians, {len(payload)} bytes, PSNR {report.psnr:.2f} dB, {report.seconds:.1f} s")
            yield payload

    write_stgv(output, header, chunks())
    size = Path(output).stat().st_size
    quality = [r.ms_ssim for r in reports]
    return EncodeSummary(
        path=str(output),
        frames=frame_count,
        width=width,
        height=height,
        bytes=size,
        bpp=size * 8 / (frame_count * width * height),
        psnr=float(np.average([r.psnr for r in reports], weights=[r.frames for r in reports])),
        ms_ssim=None if None in quality else float(np.average(quality, weights=[r.frames for r in reports])),
        seconds=time.perf_counter() - start,
        device=str(target),
        gops=reports,
    )
