"""Every compiled backend against the reference: forward values bit for bit, and all three gradients.

The forward pass is normative (bitstream_spec.md section 12: the weight polynomial, the grouping
of s, the ascending order of the sum), so every backend must return the reference's float32 image
exactly. Gradients are sums over many pixels in another order:
    |got - ref| <= 1e-4 * max|ref| + 1e-3 |ref|, per tensor.
Cases are small because the reference is dense and, without CUDA, Triton runs interpreted.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from stgvcodec.render import BackendUnavailable, rasterize
from stgvcodec.render.synthetic import random_gaussians

BACKENDS = ["cpu", "triton"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    name = request.param
    if name == "triton" and importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    return name


def _device(backend: str) -> str:
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


def _compare(backend, means, cholesky, colors, height, width, seed=0):
    """Renders with `backend` and the reference; checks image and gradients of a random linear loss."""
    device = _device(backend)
    inputs = [t.detach().to(device).requires_grad_(True) for t in (means, cholesky, colors)]
    reference = [t.detach().cpu().requires_grad_(True) for t in (means, cholesky, colors)]
    got = rasterize(*inputs, height, width, backend=backend)
    ref = rasterize(*reference, height, width, backend="reference")
    assert torch.equal(got.detach().cpu(), ref.detach()), _first_difference(got.detach().cpu(), ref.detach())
    assert torch.isfinite(got).all()

    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed))
    (got * weights.to(device)).sum().backward()
    (ref * weights).sum().backward()
    for name, g, r in zip(("means", "cholesky", "colors"), inputs, reference):
        assert torch.isfinite(g.grad).all(), name
        scale = r.grad.abs().max().item() if r.grad.numel() else 0.0
        torch.testing.assert_close(g.grad.cpu(), r.grad, atol=1e-4 * scale + 1e-7, rtol=1e-3, msg=lambda m: f"{name}: {m}")
    return got


def _first_difference(got, ref) -> str:
    where = (got != ref).nonzero()
    if not len(where):
        return "equal"
    index = tuple(where[0].tolist())
    return f"{len(where)} samples differ; first at {index}: {got[index].item()!r} vs reference {ref[index].item()!r}"


@pytest.mark.parametrize("size_scale", [0.6, 1.0, 2.5])
def test_realistic(backend, size_scale):
    """Sizes like a fitted frame: each pixel under several overlapping Gaussians."""
    _compare(backend, *random_gaussians(400, 40, 56, size_scale=size_scale, seed=1), 40, 56)


def test_random_uniform(backend):
    gen = torch.Generator().manual_seed(2)
    means = torch.rand(150, 2, generator=gen) * 2 - 1
    cholesky = torch.rand(150, 3, generator=gen) * torch.tensor([4.0, 4.0, 4.0]) + torch.tensor([0.5, -2.0, 0.5])
    colors = torch.rand(150, 3, generator=gen) * 0.4 - 0.1
    _compare(backend, means, cholesky, colors, 33, 47)


def test_batch(backend):
    means, cholesky, colors = random_gaussians(120, 24, 40, batch=4, seed=3)
    got = _compare(backend, means, cholesky, colors, 24, 40)
    assert got.shape == (4, 24, 40, 3)
    single = rasterize(means[2].to(got.device), cholesky[2].to(got.device), colors[2].to(got.device), 24, 40, backend=backend)
    torch.testing.assert_close(got[2].detach(), single, atol=1e-6, rtol=1e-6)


def test_batch_of_one(backend):
    _compare(backend, *random_gaussians(60, 16, 16, batch=1, seed=4), 16, 16)


def test_outside_the_frame(backend):
    """Gaussians partly outside (centres near and beyond the edges) and wholly outside."""
    means = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.05, 0.0], [0.0, -1.1], [-3.0, 0.0], [0.0, 5.0], [0.2, 0.1]])
    cholesky = torch.tensor([[3.0, 1.0, 2.0]] * 6 + [[2.0, 0.0, 2.0]])
    colors = torch.rand(7, 3, generator=torch.Generator().manual_seed(5))
    _compare(backend, means, cholesky, colors, 20, 30)


def test_whole_frame_gaussian(backend):
    means = torch.tensor([[0.1, -0.2], [0.5, 0.5]])
    cholesky = torch.tensor([[60.0, 10.0, 45.0], [2.0, 0.0, 2.0]])
    colors = torch.tensor([[0.3, 0.5, 0.7], [0.2, 0.1, 0.0]])
    image = _compare(backend, means, cholesky, colors, 37, 61)
    assert (image[..., 2] > 0.1).all()


def test_degenerate_sigma(backend):
    """det(Sigma) = 0 contributes nothing; no NaN in the image or any gradient."""
    means = torch.tensor([[0.0, 0.0], [0.1, 0.1], [-0.2, 0.3], [0.3, -0.3]])
    cholesky = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.5, 1.5]])
    colors = torch.full((4, 3), 0.5)
    image = _compare(backend, means, cholesky, colors, 16, 16)
    alone = rasterize(means[3:].to(image.device), cholesky[3:].to(image.device), colors[3:].to(image.device), 16, 16, backend=backend)
    torch.testing.assert_close(image.detach(), alone)


def test_huge_and_needle_gaussians(backend):
    """Extents far beyond the frame (even overflowing float32) and needle-thin ellipses."""
    means = torch.tensor([[0.0, 0.0], [0.1, -0.1], [0.2, 0.3], [-0.3, 0.2], [0.5, 0.5]])
    cholesky = torch.tensor([[1e18, 0.0, 1e18], [1e19, 1e19, 1e3], [3e17, -1e18, 2.0], [0.05, 0.0, 0.05], [40.0, 39.9, 0.2]])
    colors = torch.full((5, 3), 0.1)
    _compare(backend, means, cholesky, colors, 12, 14)


def test_zero_gaussians(backend):
    empty = torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0, 3)
    image = _compare(backend, *empty, 5, 7)
    assert image.shape == (5, 7, 3) and (image == 0).all()


@pytest.mark.parametrize("height,width", [(1, 1), (1, 9), (13, 1), (359, 641)])
def test_odd_sizes(backend, height, width):
    count = 30 if height * width > 1000 else 8
    _compare(backend, *random_gaussians(count, height, width, size_scale=0.5, seed=6), height, width)


def test_clamp_has_no_gradient_where_saturated(backend):
    means = torch.zeros(1, 2, requires_grad=True)
    cholesky = torch.tensor([[3.0, 0.0, 3.0]], requires_grad=True)
    colors = torch.tensor([[5.0, 5.0, 5.0]], requires_grad=True)
    device = _device(backend)
    image = rasterize(*(t.to(device) for t in (means, cholesky, colors)), 9, 9, backend=backend)
    assert image[4, 4, 0] == 1.0
    image[4, 4].sum().backward()
    assert (colors.grad == 0).all() and (means.grad == 0).all()


def test_deterministic_forward(backend):
    args = [t.to(_device(backend)) for t in random_gaussians(300, 32, 32, seed=7)]
    first = rasterize(*args, 32, 32, backend=backend)
    assert torch.equal(first, rasterize(*args, 32, 32, backend=backend))


def test_auto_picks_cpu_for_cpu_tensors():
    args = random_gaussians(50, 12, 12, seed=8)
    assert torch.equal(rasterize(*args, 12, 12), rasterize(*args, 12, 12, backend="cpu"))


def test_bad_arguments():
    means, cholesky, colors = random_gaussians(5, 8, 8)
    with pytest.raises(ValueError, match="unknown render backend"):
        rasterize(means, cholesky, colors, 8, 8, backend="opengl")
    with pytest.raises(ValueError, match="cholesky must have shape"):
        rasterize(means, cholesky[:, :2], colors, 8, 8)
    with pytest.raises(ValueError, match="float32"):
        rasterize(means.double(), cholesky.double(), colors.double(), 8, 8, backend="cpu")
    with pytest.raises(ValueError, match="image size"):
        rasterize(means, cholesky, colors, 0, 8)
    with pytest.raises(BackendUnavailable, match="cpu"):
        rasterize(means.to("meta"), cholesky.to("meta"), colors.to("meta"), 8, 8, backend="cpu")
