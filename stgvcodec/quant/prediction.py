"""Residual quantization of a predicted GoP's kept Gaussians against their reference.

    kept Gaussian x, reference value r, step s (per attribute):
        q = round((x - r) / s)        (an integer; 0 where the fit left x on r)
        x^ = float32(r + float32(q s))

The reference is the previous GoP's decoded Gaussians; only the decoder's own float32 values
serve, so x^ is reproducible bit for bit (bitstream_spec.md, section 8.3). The steps are fixed
fractions of a pixel and of the colour range (residual_steps): train/anchor.py keeps most values
exactly on their reference, so what the steps set is the precision of the values that move.
Dequantization here is written once and used by encoder and decoder alike.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..bitstream.gop import MAX_PREDICTED, MAX_RESIDUAL, RESIDUAL_ATTRIBUTES, Keep, Prediction
from .quantizers import round_ste

POSITION_STEP_PIXELS = 0.125
"""Residual step of a position, in pixels of the frame (converted to NDC per axis)."""
CHOLESKY_STEP = 0.125
"""Residual step of a Cholesky factor, in pixels."""
COLOUR_STEP = 1.0 / 128.0
"""Residual step of a colour weight."""


def residual_steps(height: int, width: int) -> np.ndarray:
    """[8] float32 steps in RESIDUAL_ATTRIBUTES order for a frame of this size, each rounded to
    the nearest float16 (the stream holds them as float16)."""
    ndc = 2.0 * POSITION_STEP_PIXELS
    steps = [ndc / width, ndc / height] + [CHOLESKY_STEP] * 3 + [COLOUR_STEP] * 3
    return np.asarray(steps, np.float16).astype(np.float32)


def split_attributes(means: Tensor, cholesky: Tensor, colors: Tensor) -> Tensor:
    """[K, 8]: position, Cholesky and colour side by side, in RESIDUAL_ATTRIBUTES order."""
    return torch.cat((means, cholesky, colors), dim=-1)


def fake_quantize_residual(values: Tensor, reference: Tensor, steps: Tensor) -> Tensor:
    """[K, 8] values seen through the residual quantizer: reference + step x round((v - r) / step),
    straight-through gradients to `values`."""
    q = torch.clamp(round_ste((values - reference) / steps), -MAX_RESIDUAL, MAX_RESIDUAL)
    return reference + q * steps


def residual_symbols(values: Tensor, reference: Tensor, steps: Tensor) -> np.ndarray:
    """[K, 8] int32 residual symbols of `values` against `reference`."""
    with torch.no_grad():
        q = torch.clamp(torch.round((values - reference) / steps), -MAX_RESIDUAL, MAX_RESIDUAL)
    return q.cpu().numpy().astype(np.int32)


def predict_gaussians(
    prediction: Prediction, reference: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept Gaussians of a predicted GoP, in reference order: (means [K, 2], cholesky [K, 3],
    colours [K, 3]) float32, from the reference's decoded (means, cholesky, colours).

    Raises:
        ValueError: naming the first updated Gaussian a value of which is not finite or exceeds
            MAX_PREDICTED (the caller words it as a bitstream error).
    """
    values = np.concatenate([np.asarray(r, np.float32) for r in reference], axis=-1)  # [N_ref, 8]
    keep = np.asarray(prediction.keep)
    updated = np.flatnonzero(keep == Keep.UPDATED)
    steps = np.asarray(prediction.steps, np.float32)
    changed = values[updated] + prediction.residuals.astype(np.float32) * steps  # two float32 roundings
    good = np.isfinite(changed) & (np.abs(changed) <= MAX_PREDICTED)
    if not good.all():
        row, column = np.argwhere(~good)[0]
        raise ValueError(
            f"updated Gaussian {int(updated[row])} of the reference: {RESIDUAL_ATTRIBUTES[column]} becomes "
            f"{float(changed[row, column]):.7g}, outside [-{MAX_PREDICTED:g}, {MAX_PREDICTED:g}]"
        )
    values[updated] = changed
    kept = values[keep != Keep.DROPPED]
    return kept[:, :2].copy(), kept[:, 2:5].copy(), kept[:, 5:].copy()
