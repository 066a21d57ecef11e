"""From stored Gaussian parameters to the per-Gaussian quantities the kernels use.

Every backend starts from the same projection, written once in PyTorch, so the chain
rule from (centre, conic) back to (means, cholesky) is autograd's and identical for all
backends. The kernels only see pixel-space centres, conics, colours and extents::

    means [.., N, 2] (NDC) --> centres [.., N, 2] (pixels)
    cholesky [.., N, 3]    --> conics  [.., N, 3] (a, b, c of Sigma^-1)
                           --> extents [.., N, 2] (half-sizes of the cut-off ellipse's box,
                                                   negative for Gaussians that contribute nothing)
    colors [.., N, 3]      --> colors  [.., N, 3] (0 for Gaussians that contribute nothing)

Which Gaussians contribute is decided here, once, for every backend: any float input (NaN, inf,
huge, denormal) leaves the projection either a Gaussian with finite centre, conic, colour and
extents, or one that is skipped.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .weight import CUTOFF


MIN_DET = 1e-12
"""Sigma with det(Sigma) = (l1 * l3)^2 at or below this (pixels^4) counts as degenerate."""


class Projected(NamedTuple):
    """Per-Gaussian render inputs in pixel units, all contiguous, in the dtype of the inputs."""

    centres: Tensor  # [.., N, 2] (x, y) in pixels; pixel (i, j) has its centre at (j + 0.5, i + 0.5)
    conics: Tensor  # [.., N, 3] (a, b, c) with Sigma^-1 = [[a, b], [b, c]]
    colors: Tensor  # [.., N, 3] RGB weights
    extents: Tensor  # [.., N, 2] half-width and half-height of the box holding s <= CUTOFF; < 0: skip


def project(means: Tensor, cholesky: Tensor, colors: Tensor, height: int, width: int) -> Projected:
    """Maps NDC means and Cholesky factors to pixel-space centres, conics and extents.

    Args:
        means: [.., N, 2] positions in normalised device coordinates, x then y, [-1, 1] is the frame.
        cholesky: [.., N, 3] (l1, l2, l3) with L = [[l1, 0], [l2, l3]] and Sigma = L L^T in pixels^2.
        colors: [.., N, 3] RGB weights.
        height: image height H in pixels.
        width: image width W in pixels.

    Returns:
        Projected. A Gaussian contributes nothing when det(Sigma) <= MIN_DET, or when its conic,
        Sigma's diagonal (hence its extents), its pixel-space centre or its colour is not finite
        in the inputs' dtype. Such a Gaussian gets centre (0, 0), conic (1, 0, 1), colour 0 and
        extents -1: no kernel visits it, and its gradients are 0, never NaN.
    """
    scale = means.new_tensor([width / 2.0, height / 2.0])
    centres = (means + 1.0) * scale

    valid = _contributes(centres, cholesky, colors)
    keep = valid.unsqueeze(-1)
    # Skipped Gaussians go through the differentiable path with harmless values (L = I), so their
    # gradients are 0, not NaN; torch.where passes the others' values and gradients unchanged.
    centres = torch.where(keep, centres, 0.0)
    colors = torch.where(keep, colors, 0.0)
    cholesky = torch.where(keep, cholesky, cholesky.new_tensor([1.0, 0.0, 1.0]))
    conics = _conics(cholesky)
    l1, l2, l3 = cholesky.detach().unbind(-1)

    # The ellipse s <= CUTOFF spans sqrt(2 CUTOFF Sigma_xx) and sqrt(2 CUTOFF Sigma_yy) around its centre.
    sigma_diag = torch.stack((l1 * l1, l2 * l2 + l3 * l3), dim=-1)
    # Finite even when 2 CUTOFF Sigma overflows: an extent only bounds the ellipse's box.
    extents = torch.sqrt(2.0 * CUTOFF * sigma_diag).clamp(max=torch.finfo(sigma_diag.dtype).max)
    extents = torch.where(keep, extents, -1.0)
    return Projected(centres.contiguous(), conics.contiguous(), colors.contiguous(), extents.contiguous())


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
def _contributes(centres: Tensor, cholesky: Tensor, colors: Tensor) -> Tensor:
    """[.., N] bool: Sigma is positive definite (det > MIN_DET), and conic, Sigma's diagonal,
    centre and colour are finite."""
    l1, l2, l3 = cholesky.unbind(-1)
    det = (l1 * l3) ** 2
    finite = torch.isfinite(_conics(cholesky)).all(-1) & torch.isfinite(l2 * l2 + l3 * l3) & torch.isfinite(l1 * l1)
    finite &= torch.isfinite(centres).all(-1) & torch.isfinite(colors).all(-1)
    return (det > MIN_DET) & finite
