"""The contract between rasterize() and the compiled backends, and the autograd glue around it.

A kernel backend implements two functions over projected Gaussians (see projection.py), for a
batch of B parameter sets with the same N:

    forward(centres, conics, colors, extents, H, W) -> image [B, H, W, 3]
        image[b, i, j] = sum_n colors[b, n] * w,  w = weight(s) (weight.py; ~exp(-s), 0 past CUTOFF),
        s = 0.5 * (a dx^2 + c dy^2) + b dx dy,  dx = (j + 0.5) - x_n,  dy = (i + 0.5) - y_n,
        Gaussians with a negative or NaN extent, or a non-finite centre, skipped. No clamping:
        rasterize() clamps afterwards. The forward is normative: float32, one rounding per
        operation in the order written, no fused multiply-add, and each pixel's sum taken in
        ascending n starting from 0, so every backend returns the reference's image bit for bit.

Kernels never index memory with a value derived from an unchecked float: whatever floats they are
given (NaN, inf, huge, denormal), they read and write only inside their tensors. project() hands
them only finite centres, conics and colours; a kernel called directly with others may compute
NaN pixels, never touch memory outside its buffers.

    backward(centres, conics, colors, extents, H, W, grad_image)
        -> (grad_centres [B, N, 2], grad_conics [B, N, 3], grad_colors [B, N, 3])

All tensors are float32, contiguous, on the kernel's device. Skipped Gaussians get zero gradients.
The boundary s == CUTOFF is inside (weight 1/255), and the weight's jump there has no gradient;
elsewhere d w / d s = -w, exp's derivative.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


class KernelBackend(Protocol):
    def forward(
        self, centres: Tensor, conics: Tensor, colors: Tensor, extents: Tensor, height: int, width: int
    ) -> Tensor: ...

    def backward(
        self,
        centres: Tensor,
        conics: Tensor,
        colors: Tensor,
        extents: Tensor,
        height: int,
        width: int,
        grad_image: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]: ...


class RasterizeSum(torch.autograd.Function):
    """Differentiable unclamped sum render through a KernelBackend."""

    @staticmethod
    def forward(ctx, backend, centres, conics, colors, extents, height, width):  # noqa: D102
        ctx.backend, ctx.size = backend, (height, width)
        ctx.save_for_backward(centres, conics, colors, extents)
        return backend.forward(centres, conics, colors, extents, height, width)

    @staticmethod
    def backward(ctx, grad_image):  # noqa: D102
        centres, conics, colors, extents = ctx.saved_tensors
        grads = ctx.backend.backward(centres, conics, colors, extents, *ctx.size, grad_image.contiguous())
        return (None, *grads, None, None, None)
