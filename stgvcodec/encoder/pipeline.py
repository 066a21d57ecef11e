"""Coding one GoP: fit -> QAT -> payload -> closed-loop decode.

    frames [T, H, W, 3] uint8 (+ optional start Gaussians) --fit_gop--> GopModel
        --finetune (QAT)--> GopRecord --encode_gop--> payload                      (quantize_gop)
    payload --decode_gop--> gop_model --render_gop--> reconstruction (what the decoder will show)

The reported reconstruction is the decoder's, rebuilt from the payload's symbols, so on one
machine and device `stgv decode` reproduces it bit for bit. The decoded model is returned too:
its canonical Gaussians are the warm start of the next GoP, exactly as a decoder (or a resumed
encode) rebuilds them from the file.
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
from ..model import Gaussians, GopModel
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
    model: GopModel
    """The decoder's model of the GoP, rebuilt from `payload` (dequantized, on the training device)."""


def quantize_gop(
    fitted: GopModel,
    clip: torch.Tensor,
    model: ModelConfig,
    quant: QuantConfig,
    device: torch.device,
    *,
    seed: int = 0,
    quiet: bool = False,
    label: str = "GoP QAT",
) -> tuple[bytes, GopModel]:
    """QAT-finetunes a fitted model on `clip` [T, H, W, 3] uint8 (changing `fitted`), codes it, and
    returns the payload and the model the decoder rebuilds from it."""
    gaussians = fitted.gaussians.means.shape[0]
    quant = replace(quant, codebook_size=min(quant.codebook_size, gaussians))
    record = finetune(fitted, clip.float() / 255.0, quant, seed=seed, quiet=quiet, label=label)
    payload = encode_gop(record)
    return payload, gop_model(decode_gop(payload, tensor_sizes(model)), model, device)


def code_gop(
    sources: np.ndarray,
    first_frame: int,
    model: ModelConfig,
    fit: FitConfig,
    quant: QuantConfig,
    device: torch.device,
    *,
    start: Gaussians | None = None,
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
        start: Gaussians the fit begins from (fit_gop's warm start), typically the previous GoP's
            `CodedGop.model.gaussians`; None codes the GoP on its own.
        seed: seed of QAT's random choices.
        quiet: no progress bars.
        label: progress bar label.
    """
    began = time.perf_counter()
    count, height, width = sources.shape[:3]
    clip = torch.from_numpy(sources).to(device)
    fitted = fit_gop(clip, model, fit, start=start, quiet=quiet, label=label)
    qat_label = f"{label} QAT"
    payload, decoded = quantize_gop(fitted.model, clip, model, quant, device, seed=seed, quiet=quiet, label=qat_label)
    reconstruction = render_gop(decoded, count, height, width)
    report = GopReport(
        first_frame, count, len(decoded.gaussians), len(payload),
        float(np.mean([psnr(r, s) for r, s in zip(reconstruction, sources)])), ms_ssim(reconstruction, sources),
        time.perf_counter() - began, stream_sizes(payload),
    )  # fmt: skip
    return CodedGop(payload, reconstruction, report, decoded)
