"""Coding one GoP: fit -> QAT -> payload -> closed-loop decode.

    frames [T, H, W, 3] uint8 (+ optional reference: the previous CodedGop) --fit_gop-->
        GopModel --finetune (QAT)--> GopRecord --encode_gop--> payload           (quantize_gop)
    payload --decode_gop--> gop_model --render_gop--> reconstruction (what the decoder will show)

With a reference the fit starts from its canonical Gaussians (a warm start); if `predict` allows
it and the warm start is taken, the GoP is coded as a predicted GoP: its kept Gaussians as
residuals against the reference, pulled back to it during fit and QAT (train/anchor.py), and
when it has only a few new Gaussians (QuantConfig.inherit_below), those quantized with the
reference's Cholesky quantizer and codebooks (inherited, not coded again). A GoP whose fit starts
cold (the key frame is better drawn from scratch: a cut) is a key GoP.

The reported reconstruction is the decoder's, rebuilt from the payload's symbols, so on one
machine and device `stgv decode` reproduces it bit for bit. The decoded model and canonical
Gaussians are returned too: they are the warm start and reference of the next GoP, exactly as a
decoder (or a resumed encode) rebuilds them from the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..bitstream.gop import decode_gop, encode_gop, keep_counts, stream_sizes
from ..config import FitConfig, ModelConfig
from ..decode import Canonical, canonical_gaussians, gop_model, render_gop, tensor_sizes
from ..metrics import ms_ssim, psnr
from ..model import GopModel
from ..quant.prediction import residual_steps
from ..quant.qat import PredictedRows, QuantConfig, finetune
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
    predicted: bool = False
    """True: coded against the previous GoP; False: a key GoP."""
    reference_gaussians: int = 0
    """Gaussians of the reference of a predicted GoP (0 for a key GoP)."""
    kept: int = 0
    """Of them, how many the GoP keeps (copied or updated); the rest of its Gaussians are new."""
    copied: int = 0
    """Of the kept, how many are copied unchanged."""

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
    canonical: Canonical
    """Its canonical Gaussians and quantizers as the decoder computes them (a predicted GoP's reference)."""

    @property
    def predicted(self) -> bool:
        return self.report.predicted


def quantize_gop(
    fitted: GopModel,
    clip: torch.Tensor,
    model: ModelConfig,
    quant: QuantConfig,
    device: torch.device,
    *,
    predicted: PredictedRows | None = None,
    reference: Canonical | None = None,
    seed: int = 0,
    quiet: bool = False,
    label: str = "GoP QAT",
) -> tuple[bytes, GopModel, Canonical]:
    """QAT-finetunes a fitted model on `clip` [T, H, W, 3] uint8 (changing `fitted`), codes it, and
    returns the payload, and the model and canonical Gaussians the decoder rebuilds from it.

    Args:
        predicted, reference: for a predicted GoP, how the model continues the reference, and the
            reference's canonical Gaussians as the decoder has them.
    """
    record = finetune(fitted, clip.float() / 255.0, quant, predicted=predicted, seed=seed, quiet=quiet, label=label)
    payload = encode_gop(record)
    parsed = decode_gop(
        payload, tensor_sizes(model), reference=predicted.reference_count if predicted is not None else None,
        quantizers=reference.quantizers if predicted is not None else None,
    )  # fmt: skip
    canonical = canonical_gaussians(parsed, reference, size=(clip.shape[2], clip.shape[1]))
    return payload, gop_model(parsed, model, device, canonical), canonical


def code_gop(
    sources: np.ndarray,
    first_frame: int,
    model: ModelConfig,
    fit: FitConfig,
    quant: QuantConfig,
    device: torch.device,
    *,
    reference: CodedGop | None = None,
    predict: bool = False,
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
        reference: the previous GoP as coded, whose decoded canonical Gaussians the fit begins
            from (fit_gop's warm start); None codes the GoP on its own.
        predict: code the GoP against `reference` when the fit starts warm (a predicted GoP);
            False always makes a key GoP.
        seed: seed of QAT's random choices.
        quiet: no progress bars.
        label: progress bar label.
    """
    began = time.perf_counter()
    count, height, width = sources.shape[:3]
    clip = torch.from_numpy(sources).to(device)
    start = reference.model.gaussians if reference is not None else None
    fitted = fit_gop(clip, model, fit, start=start, predict=predict, quiet=quiet, label=label)
    predicted = None
    if fitted.anchor is not None:
        new = len(fitted.model.gaussians) - fitted.anchor.rows
        inherited = reference.canonical.quantizers if new < quant.inherit_below else None
        predicted = PredictedRows(fitted.anchor, fitted.kept, len(reference.canonical), residual_steps(height, width), inherited)
    payload, decoded, canonical = quantize_gop(
        fitted.model, clip, model, quant, device, predicted=predicted,
        reference=reference.canonical if predicted is not None else None, seed=seed, quiet=quiet, label=f"{label} QAT",
    )  # fmt: skip
    reconstruction = render_gop(decoded, count, height, width)
    report = GopReport(
        first_frame, count, len(decoded.gaussians), len(payload),
        float(np.mean([psnr(r, s) for r, s in zip(reconstruction, sources)])), ms_ssim(reconstruction, sources),
        time.perf_counter() - began, stream_sizes(payload, predicted is not None), predicted is not None,
    )  # fmt: skip
    if predicted is not None:
        report.reference_gaussians, report.kept, report.copied = keep_counts(payload)
    return CodedGop(payload, reconstruction, report, decoded, canonical)
