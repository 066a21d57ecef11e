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


MS_SSIM_MIN_SIDE = 161
"""pytorch-msssim's five scales with an 11-pixel window need both sides > 160 pixels."""


def ms_ssim(decoded: np.ndarray, source: np.ndarray) -> float | None:
    """Mean MS-SSIM over frames [T, H, W, 3] (or one [H, W, 3]) uint8, data_range 1.0.

    Returns None when a side is below MS_SSIM_MIN_SIDE, where MS-SSIM is undefined.
    """
    if min(decoded.shape[-3:-1]) < MS_SSIM_MIN_SIDE:
        return None
    from pytorch_msssim import ms_ssim as _ms_ssim

    def planes(frames: np.ndarray) -> Tensor:
        return torch.from_numpy(frames.reshape(-1, *frames.shape[-3:])).permute(0, 3, 1, 2).double() / 255.0

    values = _ms_ssim(planes(decoded), planes(source), data_range=1.0, size_average=False)
    return float(values.mean())


def ms_ssim_skip_reason(height: int, width: int) -> str | None:
    """Why MS-SSIM is not reported for this size, or None when it is."""
    if min(height, width) < MS_SSIM_MIN_SIDE:
        return f"MS-SSIM needs both sides >= {MS_SSIM_MIN_SIDE} px, frame is {width}x{height}"
    return None
