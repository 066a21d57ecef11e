"""projection.project: conics, extents and degenerate Gaussians."""

import torch

from stgvcodec.render.projection import CUTOFF, project


def _cholesky(count, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    l = torch.randn(count, 3, generator=gen, dtype=dtype) * 3.0
    return l


def test_conic_is_inverse_of_sigma():
    l = _cholesky(50)
    means = torch.zeros(50, 2, dtype=torch.float64)
    _, conics, _, _ = project(means, l, torch.ones(50, 3, dtype=torch.float64), 10, 10)
    lower = torch.zeros(50, 2, 2, dtype=torch.float64)
    lower[:, 0, 0], lower[:, 1, 0], lower[:, 1, 1] = l[:, 0], l[:, 1], l[:, 2]
    inverse = torch.linalg.inv(lower @ lower.transpose(1, 2))
    torch.testing.assert_close(conics[:, 0], inverse[:, 0, 0], rtol=1e-10, atol=0)
    torch.testing.assert_close(conics[:, 1], inverse[:, 0, 1], rtol=1e-10, atol=0)
    torch.testing.assert_close(conics[:, 2], inverse[:, 1, 1], rtol=1e-10, atol=0)


def test_centres_in_pixels():
    means = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    centres, _, _, _ = project(means, torch.ones(3, 3), torch.ones(3, 3), 20, 40)
    torch.testing.assert_close(centres, torch.tensor([[0.0, 0.0], [40.0, 20.0], [20.0, 10.0]]))


def test_extents_bound_the_cutoff_ellipse():
    """Every offset with s <= CUTOFF lies inside the extents, and the extents are tight."""
    l = _cholesky(20, seed=1)
    _, conics, _, extents = project(torch.zeros(20, 2, dtype=torch.float64), l, torch.ones(20, 3, dtype=torch.float64), 10, 10)
    angle = torch.linspace(0, 2 * torch.pi, 4001, dtype=torch.float64)
    for (a, b, c), (ex, ey) in zip(conics, extents):
        # Boundary of s = CUTOFF: d = sqrt(2 CUTOFF) * Sigma^(1/2) u over unit vectors u.
        inv = torch.tensor([[a, b], [b, c]])
        root = torch.linalg.cholesky(torch.linalg.inv(inv))
        d = (2 * CUTOFF) ** 0.5 * (root @ torch.stack((angle.cos(), angle.sin())))
        assert d[0].abs().max() <= ex * (1 + 1e-9) and d[1].abs().max() <= ey * (1 + 1e-9)
        assert d[0].abs().max() >= ex * (1 - 1e-5) and d[1].abs().max() >= ey * (1 - 1e-5)


def test_degenerate_gaussians_are_skipped_without_nan():
    l = torch.tensor(
        [[0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1e-7, 0.0, 1e-7], [2.0, 0.5, 1.0], [1e30, 0.0, 1e30]],
        requires_grad=True,
    )
    means = torch.zeros(6, 2, requires_grad=True)
    centres, conics, _, extents = project(means, l, torch.ones(6, 3), 8, 8)
    assert (extents[:5, 0] < 0).tolist() == [True, True, True, True, False]
    assert extents[5, 0] < 0
    (conics.sum() + centres.sum()).backward()
    assert torch.isfinite(l.grad).all() and torch.isfinite(means.grad).all()
    assert (l.grad[[0, 1, 2, 3, 5]] == 0).all()
