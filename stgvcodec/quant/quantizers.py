"""Quantizers with straight-through gradients, and what the stream stores of each.

    positions  x -> fp16(x)                                   (16-bit floats, exact in the stream)
    cholesky   l -> q = clamp(round((l - beta) / gamma), 0, 255), l^ = q gamma + beta
               gamma, beta per channel, learned (8-bit asymmetric, the paper's eq. for l_n)
    tensors    w -> q = clamp(round(w / s), -127, 127), w^ = q s, s = max|w| / 127 per tensor
               (hash tables and MLP weights; symmetric so the symbols peak at 0)
    colours    residual VQ (colours.py)

Dequantization is float32 arithmetic written once here and used by encoder and decoder alike.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

CHOLESKY_LEVELS = 255
"""Largest Cholesky symbol: 8 bits."""
TENSOR_LEVELS = 127
"""Largest magnitude of a hash-table or MLP symbol: 8 bits, symmetric."""


def round_ste(x: Tensor) -> Tensor:
    """round(x) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def fp16_ste(x: Tensor) -> Tensor:
    """x rounded to float16 and back, identity backward."""
    return x + (x.half().float() - x).detach()


class CholeskyQuantizer(nn.Module):
    """8-bit asymmetric quantizer of the Cholesky vector with learned per-channel scale and offset."""

    def __init__(self, cholesky: Tensor):
        super().__init__()
        low, high = cholesky.detach().min(0).values, cholesky.detach().max(0).values
        self.gamma = nn.Parameter(torch.clamp((high - low) / CHOLESKY_LEVELS, min=1e-6))  # [3]
        self.beta = nn.Parameter(low.clone())  # [3]

    def symbols(self, cholesky: Tensor) -> Tensor:
        """[N, 3] -> int symbols in [0, 255] (no gradient)."""
        with torch.no_grad():
            return torch.clamp(torch.round((cholesky - self.beta) / self.gamma), 0, CHOLESKY_LEVELS).long()

    def forward(self, cholesky: Tensor) -> Tensor:
        """Fake-quantized Cholesky vector; gradients reach cholesky (straight through), gamma and beta."""
        q = torch.clamp(round_ste((cholesky - self.beta) / self.gamma), 0, CHOLESKY_LEVELS)
        return q * self.gamma + self.beta


def dequantize_cholesky(symbols: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """[N, 3] symbols -> float32 Cholesky vector q * gamma + beta (gamma, beta float32 [3])."""
    return symbols.astype(np.float32) * gamma.astype(np.float32) + beta.astype(np.float32)


def tensor_scale(weight: Tensor) -> Tensor:
    """Per-tensor step of the symmetric 8-bit quantizer, float32 (1 for an all-zero tensor)."""
    peak = weight.detach().abs().max()
    return torch.where(peak > 0, peak / TENSOR_LEVELS, torch.ones_like(peak)).float()


def fake_quantize_tensor(weight: Tensor) -> Tensor:
    """Symmetric 8-bit quantization of a weight tensor, straight-through gradients."""
    scale = tensor_scale(weight)
    return torch.clamp(round_ste(weight / scale), -TENSOR_LEVELS, TENSOR_LEVELS) * scale


def quantize_tensor(weight: Tensor) -> tuple[np.ndarray, np.float32]:
    """Symbols (int32, in [-127, 127]) and float32 scale of a tensor, flattened in row-major order."""
    scale = tensor_scale(weight)
    symbols = torch.clamp(torch.round(weight.detach() / scale), -TENSOR_LEVELS, TENSOR_LEVELS)
    return symbols.cpu().numpy().astype(np.int32).ravel(), np.float32(scale.item())


def dequantize_tensor(symbols: np.ndarray, scale: np.float32, shape: tuple[int, ...]) -> np.ndarray:
    """float32 symbols * scale, reshaped."""
    return (symbols.astype(np.float32) * np.float32(scale)).reshape(shape)
