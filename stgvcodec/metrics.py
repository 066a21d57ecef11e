"""Quality metrics on 8-bit output, as the evaluation protocol defines them."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def to_uint8(image: Tensor) -> np.ndarray:
    """[.., H, W, 3] float in [0, 1] -> uint8, rounding half up as the decoder does."""
    return torch.floor(image.detach().clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def psnr(decoded: np.ndarray, source: np.ndarray) -> float:
    """PSNR in dB of one 8-bit frame against its 8-bit source (inf when identical)."""
    mse = np.mean((decoded.astype(np.float64) - source.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
