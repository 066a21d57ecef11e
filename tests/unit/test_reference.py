"""The reference renderer: the math of the module docstring, and its gradients by finite differences."""

import math

import pytest
import torch

from stgvcodec.render import rasterize
from stgvcodec.render.projection import CUTOFF
from stgvcodec.render.reference import MAX_PAIRS
from stgvcodec.render import BackendUnavailable


def test_single_gaussian_matches_formula():
    """One pixel by hand: centre, Sigma = L L^T, exp(-s), and the ln 255 cut-off (the weight is the
    spec's polynomial, within 3e-6 of exp; tests/backends/test_normative_render.py pins its bits)."""
    means = torch.tensor([[0.0, 0.0]], dtype=torch.float64)  # pixel-space centre (5, 4) in 10x8
    cholesky = torch.tensor([[2.0, 1.0, 1.5]], dtype=torch.float64)
    colors = torch.tensor([[0.2, 0.4, 0.6]], dtype=torch.float64)
    image = rasterize(means, cholesky, colors, 8, 10, backend="reference")
    sigma = torch.tensor([[4.0, 2.0], [2.0, 1.0 + 2.25]], dtype=torch.float64)
    inverse = torch.linalg.inv(sigma)
    for i in range(8):
        for j in range(10):
            d = torch.tensor([j + 0.5 - 5.0, i + 0.5 - 4.0], dtype=torch.float64)
            s = 0.5 * d @ inverse @ d
            w = math.exp(-s) if s <= math.log(255) else 0.0
            torch.testing.assert_close(image[i, j], colors[0] * w, rtol=3e-6, atol=1e-15)


def test_cutoff_boundary_is_inside():
    """A pixel at s exactly ln 255 keeps weight 1/255; just beyond, zero."""
    width = 2
    for factor, expected in ((1.0, 1 / 255), (1.0001, 0.0)):
        # Isotropic sigma: s = d^2 / (2 sigma^2) at the pixel centre (0.5, 0.5) from a centre shifted in x.
        sigma = 1.0
        dx = math.sqrt(2 * CUTOFF) * sigma * factor
        centre_x = 0.5 - dx
        means = torch.tensor([[centre_x / width * 2 - 1, 0.0]], dtype=torch.float64)
        image = rasterize(means, torch.tensor([[sigma, 0.0, sigma]], dtype=torch.float64),
                          torch.ones(1, 3, dtype=torch.float64), 1, width, backend="reference")
        assert image[0, 0, 0].item() == pytest.approx(expected, rel=3e-6, abs=1e-12)


def test_gradients_match_finite_differences():
    """float64 autograd of the full chain (NDC -> pixels, Cholesky -> conic, clamp) vs central differences."""
    gen = torch.Generator().manual_seed(0)
    means = (torch.rand(6, 2, generator=gen, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    cholesky = (torch.rand(6, 3, generator=gen, dtype=torch.float64) * 2 + torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)).requires_grad_(True)
    colors = (torch.rand(6, 3, generator=gen, dtype=torch.float64) * 0.3).requires_grad_(True)
    torch.autograd.gradcheck(
        lambda m, l, c: rasterize(m, l, c, 9, 11, backend="reference"), (means, cholesky, colors), eps=1e-6, atol=1e-6, rtol=1e-4
    )


def test_refuses_large_images():
    n = MAX_PAIRS // (64 * 64) + 1
    args = torch.zeros(n, 2), torch.ones(n, 3), torch.zeros(n, 3)
    with pytest.raises(BackendUnavailable, match="small images"):
        rasterize(*args, 64, 64, backend="reference")
