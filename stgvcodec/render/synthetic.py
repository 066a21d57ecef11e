"""Random Gaussian sets for tests and benchmarks.

"realistic" imitates what fitting an image produces: N Gaussians spread over the frame,
sizes log-normally spread around the spacing sqrt(H W / N), anisotropic and rotated, so a
pixel is covered by a handful of them; colours small enough that the sum stays mostly in [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def random_gaussians(
    count: int,
    height: int,
    width: int,
    *,
    batch: int | None = None,
    size_scale: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draws `count` Gaussians the way a fitted frame has them.

    Args:
        count: N, Gaussians per set.
        height: image height in pixels.
        width: image width in pixels.
        batch: B; None returns unbatched [N, *] tensors.
        size_scale: multiplies every standard deviation (2.0 makes each Gaussian cover 4x the area).
        seed: seed of a private generator.
        device: device of the returned tensors.
        dtype: float32 or float64.

    Returns:
        means [(B,) N, 2] in NDC (some slightly outside [-1, 1]), cholesky [(B,) N, 3] in pixels,
        colors [(B,) N, 3].
    """
    gen = torch.Generator().manual_seed(seed)
    shape = (batch or 1, count)
    spacing = math.sqrt(height * width / max(count, 1))
    means = torch.rand(*shape, 2, generator=gen) * 2.2 - 1.1
    sigma = spacing * size_scale * torch.exp(0.4 * torch.randn(*shape, 2, generator=gen)) * 0.8
    angle = torch.rand(*shape, generator=gen) * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Sigma = R diag(sigma^2) R^T, then its lower Cholesky factor.
    sxx = (cos * sigma[..., 0]) ** 2 + (sin * sigma[..., 1]) ** 2
    syy = (sin * sigma[..., 0]) ** 2 + (cos * sigma[..., 1]) ** 2
    sxy = cos * sin * (sigma[..., 0] ** 2 - sigma[..., 1] ** 2)
    l1 = torch.sqrt(sxx)
    l2 = sxy / l1
    l3 = torch.sqrt(torch.clamp(syy - l2 * l2, min=1e-6))
    cholesky = torch.stack((l1, l2, l3), dim=-1)
    colors = torch.rand(*shape, 3, generator=gen) * 0.35 - 0.05
    out = tuple(t.to(device=device, dtype=dtype) for t in (means, cholesky, colors))
    return out if batch is not None else tuple(t[0] for t in out)
