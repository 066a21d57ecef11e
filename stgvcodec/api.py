"""encode() and decode(): what the CLI and Python users call.

    checks (output is not the input and can be written, device, rate target) before any frame is read
    video --VideoReader, first pass--> frame count --split_gops--> GoPs; rate control (encoder/rate.py)
    video --VideoReader, second pass, one GoP of frames in memory at a time--> per GoP:
        Gaussians from rate control, key or predicted (encoder/plan.py: --keyint), the previous
        GoP's decoded model (warm start and reference) --code_gop (encoder/pipeline.py: fit, QAT,
        payload, closed-loop decode)--> payload --write_stgv--> .stgv (appears under its name when complete)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import get_args

import numpy as np
import torch

from .bitstream import Chunk, FileHeader, write_stgv
from .bitstream.model_config import CONFIG_BYTES, pack_model_config, unpack_model_config
from .config import Encoding, FitConfig, Init, ModelConfig, preset
from .decode import DecodeSummary, decode, default_device
from .encoder.pipeline import GopReport, code_gop
from .encoder.plan import DEFAULT_KEYINT, KeyPlan
from .encoder.rate import (
    DEFAULT_QUALITY,
    MAX_BPP,
    MAX_QUALITY,
    MIN_BPP,
    MIN_QUALITY,
    Rung,
    Video,
    rate_plan,
)
from .gop import split_gops
from .io import VideoError, VideoReader
from .io.reader import RAW_SUFFIX
from .io.outputs import OutputError, check_free_space, check_output
from .quant.qat import QuantConfig

__all__ = ["encode", "decode", "EncodeSummary", "DecodeSummary", "GopReport"]

STGV_SUFFIX = ".stgv"
"""The suffix `stgv encode` requires of its output."""
STDIN = "-"
"""The source that means standard input."""


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
    notes: list[str]
    """Targets that could not be met, in sentences (also given to `warn` as they are found)."""


def encode(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    bpp: float | None = None,
    gaussians: int | None = None,
    quality: float | None = None,
    preset_name: str = "fast",
    gop_size: int = 10,
    keyint: int = DEFAULT_KEYINT,
    device: str | None = None,
    seed: int = 0,
    quant: QuantConfig | None = None,
    model: ModelConfig | None = None,
    fit: FitConfig | None = None,
    encoding: Encoding | None = None,
    init: Init | None = None,
    reader_options: dict | None = None,
    quiet: bool = False,
    log=None,
    warn=None,
    reconstruction: list | None = None,
) -> EncodeSummary:
    """Encodes a video into a .stgv file.

    Args:
        source: any video PyAV opens, raw .yuv (give size/fps/pix_fmt in reader_options), a
            directory of PNGs, or "-": standard input (y4m, or raw frames with a size), copied to
            a temporary file first, since the encoder reads its input twice.
        output: the .stgv path (it must end in .stgv and must not be the source); written under a
            temporary name and renamed when complete.
        bpp: target bits per pixel of the whole file.
        gaussians: fixed Gaussians per GoP.
        quality: target PSNR in dB of each GoP's decoded frames. At most one of `bpp`, `gaussians`
            and `quality`; with none, `quality` is DEFAULT_QUALITY.
        preset_name: training preset (fast, medium, paper).
        gop_size: frames per GoP.
        keyint: the most frames from one key GoP's first frame to the next's: a GoP that would
            start later is a key GoP (encoder/plan.py). 1 makes every GoP a key GoP (no
            prediction). GoPs between key GoPs are predicted from the GoP before them where the
            previous Gaussians still fit the new key frame, and key GoPs where they do not (a cut).
        device: torch device; CUDA when present, else CPU.
        seed: seed of every random choice.
        quant: quantization settings (default QuantConfig()).
        model: deformation network (default: the paper's, or the --bpp ladder's choice).
        fit: training schedule instead of the preset's (its `gaussians` and `seed` are replaced
            by the arguments above when those are given).
        encoding: the deformation field's encoding, "hash" (STGV), "plane" (the multi-plane
            predecessor) or "positional" (D2GV); replaces `model`'s. Default: `model`'s, else hash.
            Under --bpp and --quality the network sizes come from that encoding's ladder
            (encoder.rate.ladder).
        init: stage 1 target, "keyframe" (KFCI) or "multiframe" (all frames of the GoP);
            replaces `fit`'s. Default: `fit`'s, else keyframe.
        reader_options: size, fps, pix_fmt, crop, scale, max_frames for VideoReader.
        quiet: no progress bars.
        log: optional callable(str) for one line per coded GoP.
        warn: callable(str) for targets that cannot be met, called before fitting and again at the
            end; default `warnings.warn`. The sentences are also in the summary's `notes`.
        reconstruction: if a list, each GoP's decoded frames [T, H, W, 3] uint8 are appended
            (what `stgv decode` will output, bit for bit, on this machine and device).

    Raises:
        ValueError, VideoError, OutputError: for bad options, input or output, before any fitting.
    """
    with contextlib.ExitStack() as stack:
        start = time.perf_counter()
        warn = warn or (lambda text: warnings.warn(text, stacklevel=3))
        _check_options(bpp, gaussians, quality, gop_size, keyint)
        _check_variant(encoding, init)
        if bpp is None and gaussians is None and quality is None and (fit is None or fit.gaussians is None):
            quality = DEFAULT_QUALITY
        _check_stgv_output(source, output)
        target = _usable_device(device)
        if str(source) == STDIN:
            source = stack.enter_context(_spooled_stdin(RAW_SUFFIX if (reader_options or {}).get("size") else ""))
        fit = fit or preset(preset_name)
        fit = replace(fit, seed=seed, gaussians=gaussians if gaussians is not None else fit.gaussians)
        fit = replace(fit, init=init or fit.init)
        quant = quant or QuantConfig()
        options = reader_options or {}

        # A first pass counts the frames (containers' own counts are not reliable) and finds unreadable
        # input before any fitting; the second, in coded_gops(), holds one GoP of frames at a time.
        with VideoReader(source, **options) as reader:
            info = reader.info
            frame_count = sum(1 for _ in reader)
        if not frame_count:
            raise VideoError(f"{source}: has no frames")
        height, width = info.height, info.width
        video = Video(width, height, frame_count, split_gops(frame_count, gop_size), CONFIG_BYTES)
        network = model or ModelConfig()
        network = replace(network, encoding=encoding or network.encoding)
        default = Rung(network, quant.network_bits, quant.rvq_stages, quant.codebook_size, quant.cholesky_bits)
        plan = KeyPlan(video.gops, keyint)
        rung, control = rate_plan(
            video, bpp=bpp, quality=quality, first_count=fit.count(height, width), default=default,
            model=network if model is not None else None, keys=plan.forced_keys(),
        )  # fmt: skip
        quant = replace(
            quant, rvq_stages=rung.rvq_stages, codebook_size=rung.codebook_size, network_bits=rung.network_bits,
            cholesky_bits=rung.cholesky_bits,
        )  # fmt: skip
        model = unpack_model_config(pack_model_config(rung.model))  # exactly what the decoder will read
        header = FileHeader(width, height, info.fps.numerator, info.fps.denominator, frame_count, gop_size, pack_model_config(model))
        notes = control.check()
        for note in notes:
            warn(note)
        check_free_space(output, _expected_bytes(bpp, video))  # the rest of check_output ran above
        reports: list[GopReport] = []

        def coded_gops():
            with VideoReader(source, **options) as reader:
                stream = iter(reader)
                previous = None  # each GoP's fit starts from the previous GoP as decoded
                for number, (first, count) in enumerate(video.gops):
                    read = list(itertools.islice(stream, count))
                    if len(read) != count:
                        raise VideoError(f"{source}: {first + len(read)} frames on a second reading, {frame_count} on the first")
                    label = f"GoP {number + 1}/{len(video.gops)}"
                    predict = plan.may_predict(number) and previous is not None
                    key_count = control.gaussians(first, count)
                    if predict:  # the count of a key GoP stays ready for a fit that starts afresh (a cut)
                        gop_fit = replace(fit, gaussians=control.gaussians(first, count, reference=len(previous.canonical)), cold_gaussians=key_count)
                    else:
                        gop_fit = replace(fit, gaussians=key_count)
                    coded = code_gop(
                        np.stack(read), first, model, gop_fit, quant, target,
                        reference=previous, predict=predict, seed=seed, quiet=quiet, label=label,
                    )  # fmt: skip
                    previous, report = coded, coded.report
                    plan.record(number, report.predicted)
                    control.record(report.gaussians, report.bytes, report.fixed_bytes, report.psnr, report=report)
                    reports.append(report)
                    if reconstruction is not None:
                        reconstruction.append(coded.reconstruction)
                    if log is not None:
                        kind = f"predicted ({report.copied} copied, {report.kept - report.copied} updated, {report.gaussians - report.kept} new)" if report.predicted else "key"
                        log(f"{label}: {kind}, {report.gaussians} Gaussians, {report.bytes} bytes, PSNR {report.psnr:.2f} dB, {report.seconds:.1f} s")
                    yield Chunk(coded.payload, report.predicted)

        write_stgv(output, header, coded_gops())
        size = Path(output).stat().st_size
        weights = [r.frames for r in reports]
        quality_db = float(np.average([r.psnr for r in reports], weights=weights))
        similarity = [r.ms_ssim for r in reports]
        summary = EncodeSummary(
            path=str(output),
            frames=frame_count,
            width=width,
            height=height,
            bytes=size,
            bpp=size * 8 / video.pixels,
            psnr=quality_db,
            ms_ssim=None if None in similarity else float(np.average(similarity, weights=weights)),
            seconds=time.perf_counter() - start,
            device=str(target),
            gops=reports,
            notes=notes,
        )
        shortfall = control.shortfall(summary.bpp, summary.psnr)
        if shortfall is not None:
            notes.append(shortfall)
            warn(shortfall)
        return summary


def _check_options(bpp: float | None, gaussians: int | None, quality: float | None, gop_size: int, keyint: int) -> None:
    """Raises ValueError, in one line, for a target, GoP size or key interval outside what encode() takes."""
    if sum(v is not None for v in (bpp, gaussians, quality)) > 1:
        raise ValueError("give one of --bpp, --gaussians and --quality, not several")
    if bpp is not None and not MIN_BPP <= bpp <= MAX_BPP:
        raise ValueError(f"--bpp {bpp} outside {MIN_BPP}..{MAX_BPP}")
    if quality is not None and not MIN_QUALITY <= quality <= MAX_QUALITY:
        raise ValueError(f"--quality {quality} outside {MIN_QUALITY:g}..{MAX_QUALITY:g} dB")
    if gaussians is not None and gaussians < 1:
        raise ValueError(f"--gaussians {gaussians} must be at least 1")
    if gop_size < 1 or gop_size > 1000:
        raise ValueError(f"--gop {gop_size} outside 1..1000")
    if keyint < 1:
        raise ValueError(f"--keyint {keyint} must be at least 1 frame")


def _check_variant(encoding: str | None, init: str | None) -> None:
    """Raises ValueError, in one line, for an encoding or initialisation that does not exist."""
    if encoding is not None and encoding not in get_args(Encoding):
        raise ValueError(f"--encoding {encoding!r}: choose one of {', '.join(get_args(Encoding))}")
    if init is not None and init not in get_args(Init):
        raise ValueError(f"--init {init!r}: choose one of {', '.join(get_args(Init))}")


@contextlib.contextmanager
def _spooled_stdin(suffix: str) -> Iterator[Path]:
    """Standard input copied to a temporary file (in TMPDIR), which the encoder can read twice.

    Errors about the copy name standard input, not the temporary file.
    """
    with tempfile.TemporaryDirectory(prefix="stgv-stdin-") as folder:
        spool = Path(folder) / f"stdin{suffix}"
        with open(spool, "wb") as file:
            shutil.copyfileobj(sys.stdin.buffer, file, 1 << 20)
        try:
            yield spool
        except VideoError as err:
            raise VideoError(str(err).replace(str(spool), "standard input")) from None


def _check_stgv_output(source: str | os.PathLike, output: str | os.PathLike) -> None:
    """Refuses an output that is the input or not a .stgv name, before any work.

    A video suffix almost always means `stgv decode` was meant; writing .stgv bytes into an
    `out.mp4` would leave a file no player opens.
    """
    check_output(output, (source,))
    if Path(output).suffix.lower() != STGV_SUFFIX:
        hint = " (to write a video from a .stgv file, use stgv decode)" if Path(output).suffix else ""
        raise OutputError(f"{output}: the encoded file must end in {STGV_SUFFIX}{hint}")


def _usable_device(device: str | None) -> torch.device:
    """The training device, checked now rather than after the first frames are read."""
    try:
        target = default_device(device)
        torch.empty(1, device=target)
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"--device {device}: not usable here ({str(err).strip().splitlines()[0]})") from None
    return target


def _expected_bytes(bpp: float | None, video: Video) -> int:
    """About how large the file will be: known under --bpp, else unknown (0, no check)."""
    return int(bpp * video.pixels / 8) if bpp is not None else 0
