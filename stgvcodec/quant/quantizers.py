"""Quantizers with straight-through gradients, and what the stream stores of each.

    positions  x -> k = 32768 + round(x S W / 2), x^ = 2 (k - 32768) / (S W)   (NDC x on an axis of
               W pixels, a grid of S steps per pixel: 16-bit keys, PositionGrid)
    cholesky   l -> q = clamp(round((l - beta) / gamma), 0, 2^b - 1), l^ = q gamma + beta
               gamma, beta per channel, learned (b-bit asymmetric, the paper's eq. for l_n with
               b = 8; the stream holds any symbols in 0..255, so b <= 8 is the encoder's choice)
    tensors    w -> q = clamp(round(w / s), -m, m), w^ = q s, s = max|w| / m per tensor rounded
               up to a float16 (the stream holds s as float16), m = 2^(P-1) - 1 for P bits
               (8 by default; hash tables and MLP weights; symmetric so the symbols peak at 0)
    colours    residual VQ (colours.py)

Dequantization is float32 arithmetic written once here and used by encoder and decoder alike.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..bitstream.gop import MAX_TENSOR_BITS, MIN_TENSOR_BITS, keys_to_means, network_levels

CHOLESKY_BITS = 8
"""Default precision b of the Cholesky symbols (the paper's)."""
MAX_CHOLESKY_BITS = 8
"""The stream's Cholesky symbols are bytes."""
TENSOR_BITS = 8
"""Default precision P of hash-table and MLP symbols."""


def tensor_levels(bits: int) -> int:
    """Largest magnitude of a P-bit symmetric symbol: 2^(P-1) - 1 (127 for 8 bits)."""
    if not MIN_TENSOR_BITS <= bits <= MAX_TENSOR_BITS:
        raise ValueError(f"network precision {bits} bits outside {MIN_TENSOR_BITS}..{MAX_TENSOR_BITS}")
    return network_levels(bits)


def round_ste(x: Tensor) -> Tensor:
    """round(x) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


POSITION_GRID = 4
"""Default S, the position grid's steps per pixel (a quarter pixel). Carphone at --bpp 0.05 (the
decoded file of 4b71d28's rate-distortion run, new Gaussians' positions moved onto the grid without
retraining): 25.645 dB with float16 positions, 25.643 dB at S = 8, 25.633 dB at S = 4, 25.587 dB at
S = 2, while their streams took 5,024, 3,296, 2,898 and 2,526 of the file's 18,956 bytes."""
GRID_ORIGIN = 32768
"""The key of the frame's centre (NDC 0)."""


class PositionGrid(nn.Module):
    """Positions on a grid of S steps per pixel (bitstream_spec.md, section 8.1): the key of an NDC
    value x on an axis of W pixels is 32768 + round(x * S * W / 2), clamped to 0..65535, and a key
    stands for float32(2 (key - 32768)) / float32(S * W), one IEEE float32 division. A module, so
    that its steps move with the model it quantizes (`.to(device)`)."""

    def __init__(self, grid: int, width: int, height: int):
        super().__init__()
        self.grid = grid
        self.register_buffer("units", torch.tensor([grid * width, grid * height], dtype=torch.float32))  # steps across the frame

    @staticmethod
    def fitting(grid: int, width: int, height: int) -> int:
        """The largest S <= grid whose keys reach the frame's edges and a margin of a quarter of it
        (S * size * 1.25 / 2 <= 32767), at least 1."""
        return max(1, min(grid, int(2 * 32767 / (1.25 * max(width, height)))))

    def keys(self, means: Tensor) -> Tensor:
        """[N, 2] NDC -> int64 keys (no gradient)."""
        with torch.no_grad():
            return torch.clamp(torch.round(means * (self.units / 2)), -GRID_ORIGIN, GRID_ORIGIN - 1).long() + GRID_ORIGIN

    def values(self, keys: Tensor) -> Tensor:
        """int keys -> float32 NDC, as the decoder computes them."""
        return (2 * (keys - GRID_ORIGIN)).float() / self.units

    def forward(self, means: Tensor) -> Tensor:
        """The positions moved onto the grid; gradients pass straight through."""
        return means + (self.values(self.keys(means)) - means).detach()


def dequantize_positions(keys: np.ndarray, grid: int, width: int, height: int) -> np.ndarray:
    """[N, 2] position keys -> float32 NDC: on the grid of S = `grid` steps per pixel, or float16
    keys when grid is 0 (versions 2 to 4)."""
    if grid == 0:
        return keys_to_means(keys).astype(np.float32)
    units = np.array([grid * width, grid * height], np.float32)
    return (2 * (np.asarray(keys, np.int64) - GRID_ORIGIN)).astype(np.float32) / units


class CholeskyQuantizer(nn.Module):
    """b-bit asymmetric quantizer of the Cholesky vector with learned per-channel scale and offset."""

    def __init__(self, cholesky: Tensor, bits: int = CHOLESKY_BITS):
        super().__init__()
        if not 1 <= bits <= MAX_CHOLESKY_BITS:
            raise ValueError(f"Cholesky precision {bits} bits outside 1..{MAX_CHOLESKY_BITS}")
        self.levels = (1 << bits) - 1
        low, high = cholesky.detach().min(0).values, cholesky.detach().max(0).values
        self.gamma = nn.Parameter(torch.clamp((high - low) / self.levels, min=1e-6))  # [3]
        self.beta = nn.Parameter(low.clone())  # [3]

    @classmethod
    def fixed(cls, gamma: np.ndarray, beta: np.ndarray, bits: int = CHOLESKY_BITS) -> CholeskyQuantizer:
        """A quantizer with the given float32 step and offset, not learned (a predicted GoP's
        inherited one)."""
        quantizer = cls(torch.zeros(1, 3), bits)
        with torch.no_grad():
            quantizer.gamma.copy_(torch.from_numpy(np.asarray(gamma, np.float32)))
            quantizer.beta.copy_(torch.from_numpy(np.asarray(beta, np.float32)))
        quantizer.requires_grad_(False)
        return quantizer

    def symbols(self, cholesky: Tensor) -> Tensor:
        """[N, 3] -> int symbols in [0, 2^b - 1] (no gradient)."""
        with torch.no_grad():
            return torch.clamp(torch.round((cholesky - self.beta) / self.gamma), 0, self.levels).long()

    def forward(self, cholesky: Tensor) -> Tensor:
        """Fake-quantized Cholesky vector; gradients reach cholesky (straight through), gamma and beta."""
        q = torch.clamp(round_ste((cholesky - self.beta) / self.gamma), 0, self.levels)
        return q * self.gamma + self.beta


def dequantize_cholesky(symbols: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """[N, 3] symbols -> float32 Cholesky vector q * gamma + beta (gamma, beta float32 [3])."""
    return symbols.astype(np.float32) * gamma.astype(np.float32) + beta.astype(np.float32)


MAX_TENSOR_SCALE = 65504.0
"""Largest float16."""


def tensor_scale(weight: Tensor, bits: int = TENSOR_BITS) -> Tensor:
    """Per-tensor step of the symmetric P-bit quantizer: the smallest float16 at or above
    max|w| / m (1 for an all-zero tensor), as float32. Rounding up keeps every weight within
    [-m s, m s]; a step beyond the largest float16 is clipped to it."""
    peak = weight.detach().abs().max()
    scale = torch.where(peak > 0, peak / tensor_levels(bits), torch.ones_like(peak)).float().clamp(max=MAX_TENSOR_SCALE)
    half = scale.half()
    up = (half.view(torch.int16) + 1).view(torch.float16)  # the next float16 (positive values)
    return torch.where(half.float() < scale, up, half).float()


def fake_quantize_tensor(weight: Tensor, bits: int = TENSOR_BITS) -> Tensor:
    """Symmetric P-bit quantization of a weight tensor, straight-through gradients."""
    scale, levels = tensor_scale(weight, bits), tensor_levels(bits)
    return torch.clamp(round_ste(weight / scale), -levels, levels) * scale


def quantize_tensor(weight: Tensor, bits: int = TENSOR_BITS) -> tuple[np.ndarray, np.float32]:
    """Symbols (int32, in [-m, m], m = 2^(P-1) - 1) and float32 scale of a tensor, flattened in
    row-major order."""
    scale, levels = tensor_scale(weight, bits), tensor_levels(bits)
    symbols = torch.clamp(torch.round(weight.detach() / scale), -levels, levels)
    return symbols.cpu().numpy().astype(np.int32).ravel(), np.float32(scale.item())


def dequantize_tensor(symbols: np.ndarray, scale: np.float32, shape: tuple[int, ...]) -> np.ndarray:
    """float32 symbols * scale, reshaped."""
    return (symbols.astype(np.float32) * np.float32(scale)).reshape(shape)
