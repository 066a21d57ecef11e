"""From stored Gaussian parameters to the per-Gaussian quantities the kernels use.

Every backend starts from the same projection, written once in PyTorch, so the chain
rule from (centre, conic) back to (means, cholesky) is autograd's and identical for all
backends. The kernels only see pixel-space centres, conics, colours and extents::

    means [.., N, 2] (NDC) --> centres [.., N, 2] (pixels)
    cholesky [.., N, 3]    --> conics  [.., N, 3] (a, b, c of Sigma^-1)
                           --> extents [.., N, 2] (half-sizes of the cut-off ellipse's box,
                                                   negative for Gaussians that contribute nothing)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

CUTOFF = math.log(255.0)
"""A Gaussian's weight is zero where s = 0.5 d^T Sigma^-1 d exceeds ln 255 (weight < 1/255)."""

MIN_DET = 1e-12
"""Sigma with det(Sigma) = (l1 * l3)^2 at or below this (pixels^4) counts as degenerate."""


class Projected(NamedTuple):
    """Per-Gaussian render inputs in pixel units, all float32 and contiguous."""

    centres: Tensor  # [.., N, 2] (x, y) in pixels; pixel (i, j) has its centre at (j + 0.5, i + 0.5)
    conics: Tensor  # [.., N, 3] (a, b, c) with Sigma^-1 = [[a, b], [b, c]]
    extents: Tensor  # [.., N, 2] half-width and half-height of the box holding s <= CUTOFF; < 0: skip


def project(means: Tensor, cholesky: Tensor, height: int, width: int) -> Projected:
    """Maps NDC means and Cholesky factors to pixel-space centres, conics and extents.

    Args:
        means: [.., N, 2] positions in normalised device coordinates, x then y, [-1, 1] is the frame.
        cholesky: [.., N, 3] (l1, l2, l3) with L = [[l1, 0], [l2, l3]] and Sigma = L L^T in pixels^2.
        height: image height H in pixels.
        width: image width W in pixels.

    Returns:
        Projected. Degenerate Gaussians (det(Sigma) <= MIN_DET, or any non-finite value in
        their conic) get a harmless conic (1, 0, 1) and extents -1: they contribute nothing, and
        no NaN reaches the gradients.
    """
    scale = means.new_tensor([width / 2.0, height / 2.0])
    centres = (means + 1.0) * scale

    valid = _contributes(cholesky)
    # Invalid Gaussians go through the differentiable path with L = I, so their gradients are 0, not NaN.
    cholesky = torch.where(valid.unsqueeze(-1), cholesky, cholesky.new_tensor([1.0, 0.0, 1.0]))
    conics = _conics(cholesky)
    l1, l2, l3 = cholesky.detach().unbind(-1)

    # The ellipse s <= CUTOFF spans sqrt(2 CUTOFF Sigma_xx) and sqrt(2 CUTOFF Sigma_yy) around its centre.
    sigma_diag = torch.stack((l1 * l1, l2 * l2 + l3 * l3), dim=-1)
    # Finite even when 2 CUTOFF Sigma overflows: an extent only bounds the ellipse's box.
    extents = torch.sqrt(2.0 * CUTOFF * sigma_diag).clamp(max=torch.finfo(sigma_diag.dtype).max)
    extents = torch.where(valid.unsqueeze(-1), extents, -1.0)
    return Projected(centres.contiguous(), conics.contiguous(), extents.contiguous())


def _conics(cholesky: Tensor) -> Tensor:
    """[.., N, 3] Cholesky factors -> [.., N, 3] conics (a, b, c) of Sigma^-1 = [[a, b], [b, c]].

    Sigma^-1 = L^-T L^-1 with L^-1 = [[p, 0], [q, r]], p = 1 / l1, r = 1 / l3, q = -l2 p r,
    so a = p^2 + q^2, b = q r, c = r^2 (no cancellation, unlike inverting Sigma itself).
    """
    l1, l2, l3 = cholesky.unbind(-1)
    p, r = 1.0 / l1, 1.0 / l3
    q = -l2 * p * r
    return torch.stack((p * p + q * q, q * r, r * r), dim=-1)


@torch.no_grad()
def _contributes(cholesky: Tensor) -> Tensor:
    """[.., N] bool: Sigma is positive definite (det > MIN_DET) and its conic and extents are finite."""
    l1, l2, l3 = cholesky.unbind(-1)
    det = (l1 * l3) ** 2
    finite = torch.isfinite(_conics(cholesky)).all(-1) & torch.isfinite(l2 * l2 + l3 * l3) & torch.isfinite(l1 * l1)
    return (det > MIN_DET) & finite
