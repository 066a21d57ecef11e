"""The reference renderer: the normative sum render, written out in plain PyTorch.

It computes exactly what bitstream_spec.md section 12 states, in float32 bit for bit: s per
(pixel, Gaussian) pair with the spec's grouping, the normative weight (weight.py), and per pixel
the sum over Gaussians in ascending index order, starting from 0, each product and sum rounded
to float32. Differentiable by autograd (in float32 or float64); memory grows with H * W * N, so
it is for small images. It is the oracle the other backends are tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import BackendUnavailable
from .weight import CUTOFF32, weight

MAX_PAIRS = 1 << 27
"""Largest B * H * W * N the reference agrees to evaluate (about 0.5 GiB per float32 temporary)."""


def check(device: torch.device) -> None:
    """The reference runs on any device."""


def rasterize_sum(
    centres: Tensor, conics: Tensor, colors: Tensor, extents: Tensor, height: int, width: int
) -> Tensor:
    """Unclamped sum render, [B, N, *] projected Gaussians -> [B, H, W, 3]."""
    batch, count = centres.shape[:2]
    pairs = batch * height * width * count
    if pairs > MAX_PAIRS:
        raise BackendUnavailable(
            f"the reference renderer is for small images: B*H*W*N = {pairs} exceeds {MAX_PAIRS}; "
            "use backend='cpu' or 'triton'"
        )
    dtype, device = centres.dtype, centres.device
    ys = torch.arange(height, dtype=dtype, device=device) + 0.5
    xs = torch.arange(width, dtype=dtype, device=device) + 0.5
    dx = xs.view(1, 1, width, 1) - centres[:, None, None, :, 0]  # [B, 1, W, N]
    dy = ys.view(1, height, 1, 1) - centres[:, None, None, :, 1]  # [B, H, 1, N]
    a, b, c = (conics[:, None, None, :, k] for k in range(3))
    s = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # [B, H, W, N]
    # A non-finite centre makes s NaN or inf, never <= CUTOFF: skipped as the kernels skip it.
    inside = (s <= CUTOFF32) & (extents[:, None, None, :, 0] >= 0) & (extents[:, None, None, :, 1] >= 0)
    weights = torch.where(inside, weight(torch.where(inside, s, 0.0)), 0.0)
    # Ascending Gaussian order, one rounding per product and per sum: the spec's sum, not a matmul's.
    if count == 0:  # an empty sum, still part of the autograd graph
        return torch.einsum("bhwn,bnc->bhwc", weights, colors)
    image = colors.new_zeros(batch, height, width, 3)
    for n in range(count):
        image = image + weights[..., n, None] * colors[:, None, None, n, :]
    return image
