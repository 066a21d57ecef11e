"""Residual vector quantization of the canonical colours (training side only).

vector-quantize-pytorch's ResidualVQ learns M codebooks of B colours (k-means initialised,
EMA-updated, commitment weight 0.1). The stream stores only the codebooks, as multiples of a
float16 step (quantize_codebooks), and the indices [N, M]; a colour is the float32 sum over
stages k = 0..M-1 of codebook_k[index_k], added in stage order (dequantize_colours), so the
decoder needs no vector-quantize-pytorch.
A predicted GoP that inherits its reference's codebooks quantizes with them as they are
(FixedRVQ: greedy nearest entry stage by stage, nothing learned).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..bitstream.gop import CODEBOOK_LEVELS


CODEBOOK_STEP = 1.0 / 256
"""Default step of the stored codebook values: about a tenth of an 8-bit level (RMS) per stage."""


def quantize_codebooks(codebooks: np.ndarray, step: float) -> np.ndarray:
    """[M, B, 3] codebooks rounded to multiples of `step` (a float16), as float32 values."""
    step32 = np.float32(step)
    symbols = np.clip(np.round(np.asarray(codebooks, np.float32) / step32), -CODEBOOK_LEVELS, CODEBOOK_LEVELS)
    return symbols.astype(np.float32) * step32


class ColourRVQ(nn.Module):
    """Residual VQ of [N, 3] colours with straight-through gradients."""

    def __init__(self, stages: int, codebook_size: int, decay: float = 0.99, step: float = CODEBOOK_STEP):
        super().__init__()
        self.step = step
        from vector_quantize_pytorch import ResidualVQ

        self.rvq = ResidualVQ(
            dim=3,
            num_quantizers=stages,
            codebook_size=codebook_size,
            kmeans_init=True,
            kmeans_iters=10,
            decay=decay,
            commitment_weight=0.1,
            # The codebooks are plain colours added stage by stage; a rotation of the gradient
            # buys nothing in 3 dimensions and would make the straight-through path less direct.
            rotation_trick=False,
        )

    def forward(self, colors: Tensor) -> tuple[Tensor, Tensor]:
        """Quantized colours [N, 3] (straight-through) and the commitment loss (scalar)."""
        quantized, _, loss = self.rvq(colors[None])
        return quantized[0], loss.sum()

    @torch.no_grad()
    def export(self, colors: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Indices [N, M] int32 and float32 codebooks [M, B, 3] of the colours, as the stream stores
        them: the indices the fine-tuning used, and the learned codebooks rounded to multiples of
        the step. (Assigning the colours again to the rounded codebooks moves the colours near a tie
        to another entry, a whole codebook distance, where the fine-tuning had settled them against
        the first: carphone's key GoP at --bpp 0.05 lost 0.18 dB that way, 0.017 dB to the rounding.)"""
        was_training = self.rvq.training
        self.rvq.eval()
        _, indices, _ = self.rvq(colors[None])
        self.rvq.train(was_training)
        codebooks = quantize_codebooks(self.rvq.codebooks.detach().cpu().numpy(), self.step)
        return indices[0].cpu().numpy().astype(np.int32), codebooks


class FixedRVQ(nn.Module):
    """Residual VQ of [N, 3] colours with given codebooks [M, B, 3] (float32 values, as decoded),
    straight-through gradients and the same commitment weight as ColourRVQ."""

    def __init__(self, codebooks: np.ndarray, commitment: float = 0.1):
        super().__init__()
        self.register_buffer("codebooks", torch.from_numpy(np.asarray(codebooks, np.float32).copy()))
        self.commitment = commitment

    def _assign(self, colors: Tensor) -> tuple[Tensor, Tensor]:
        """Indices [N, M] (each stage's nearest entry to what the stages before left) and the
        quantized colours [N, 3], summed in stage order as dequantize_colours does."""
        residual, quantized, indices = colors.detach(), torch.zeros_like(colors), []
        for book in self.codebooks:
            index = torch.cdist(residual, book).argmin(dim=-1)
            indices.append(index)
            quantized = quantized + book[index]
            residual = colors.detach() - quantized
        return torch.stack(indices, dim=-1), quantized

    def forward(self, colors: Tensor) -> tuple[Tensor, Tensor]:
        """Quantized colours [N, 3] (straight-through) and the commitment loss (scalar)."""
        _, quantized = self._assign(colors)
        loss = self.commitment * torch.mean((colors - quantized) ** 2)
        return colors + (quantized - colors).detach(), loss

    @torch.no_grad()
    def export(self, colors: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Indices [N, M] int32 and the codebooks [M, B, 3] (exactly those given, float32)."""
        indices, _ = self._assign(colors)
        return indices.cpu().numpy().astype(np.int32), self.codebooks.cpu().numpy()


def dequantize_colours(indices: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """[N, M] indices and [M, B, 3] codebooks (float16 or float32 values) -> [N, 3] float32, summed
    in stage order."""
    colours = np.zeros((indices.shape[0], 3), np.float32)
    for stage in range(codebooks.shape[0]):
        colours += codebooks[stage].astype(np.float32)[indices[:, stage]]
    return colours
