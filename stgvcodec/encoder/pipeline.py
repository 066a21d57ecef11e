"""Coding one GoP: fit -> QAT -> payload -> closed-loop decode.

    frames [T, H, W, 3] uint8 --fit_gop--> GopModel --finetune (QAT)--> GopRecord --encode_gop--> payload
    payload --decode_gop--> gop_model --render_gop--> reconstruction (what the decoder will show)

The reported reconstruction is the decoder's, rebuilt from the payload's symbols, so on one
machine and device `stgv decode` reproduces it bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..bitstream.gop import decode_gop, encode_gop, stream_sizes
from ..config import FitConfig, ModelConfig
from ..decode import gop_model, render_gop, tensor_sizes
from ..metrics import ms_ssim, psnr
from ..quant.qat import QuantConfig, finetune
from ..train.gop_fit import fit_gop


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

    @property
    def fixed_bytes(self) -> int:
        """Bytes that do not grow with the Gaussians: network and side information."""
        return self.stream_bytes["hash"] + self.stream_bytes["mlp"] + self.stream_bytes["side"]


@dataclass
class CodedGop:
    """A GoP's payload, what the decoder will show for it, and the report."""

    payload: bytes
    reconstruction: np.ndarray
    """[T, H, W, 3] uint8."""
    report: GopReport


def code_gop(
    sources: np.ndarray,
    first_frame: int,
    model: ModelConfig,
    fit: FitConfig,
    quant: QuantConfig,
    device: torch.device,
    *,
    seed: int = 0,
    quiet: bool = False,
    label: str = "GoP",
) -> CodedGop:
    """Fits, quantizes and codes one GoP, and decodes its payload as the decoder will.

    Args:
        sources: the GoP's frames [T, H, W, 3] uint8.
        first_frame: index of the GoP's first frame in the video (for the report).
        model: the deformation network (as the decoder will read it from the header).
        fit: the training schedule, with the GoP's Gaussian count.
        quant: quantization settings; the colour codebooks never hold more colours than there are
            Gaussians (k-means cannot initialise more centres than points).
        device: where training and the closed-loop render run.
        seed: seed of QAT's random choices.
        quiet: no progress bars.
        label: progress bar label.
    """
    start = time.perf_counter()
    count, height, width = sources.shape[:3]
    clip = torch.from_numpy(sources).to(device)
    fitted = fit_gop(clip, model, fit, quiet=quiet, label=label)
    gaussians = fitted.model.gaussians.means.shape[0]
    quant = replace(quant, codebook_size=min(quant.codebook_size, gaussians))
    record = finetune(fitted.model, clip.float() / 255.0, quant, seed=seed, quiet=quiet, label=f"{label} QAT")
    payload = encode_gop(record)
    decoded = decode_gop(payload, tensor_sizes(model))
    reconstruction = render_gop(gop_model(decoded, model, device), count, height, width)
    report = GopReport(
        first_frame, count, decoded.means.shape[0], len(payload),
        float(np.mean([psnr(r, s) for r, s in zip(reconstruction, sources)])), ms_ssim(reconstruction, sources),
        time.perf_counter() - start, stream_sizes(payload),
    )  # fmt: skip
    return CodedGop(payload, reconstruction, report)
