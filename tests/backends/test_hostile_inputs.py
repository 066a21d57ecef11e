"""Every backend given floats no fit produces: NaN, inf, huge and denormal values.

The network computes the means and colours the renderer sees, so a valid file can hand it any
float. Each backend must stay inside its buffers and compute the reference's function: a
Gaussian with a non-finite centre, Sigma diagonal or colour, or a degenerate Sigma, contributes
nothing (bitstream_spec.md, section 12), and finite huge values are rendered as they are.

Tolerances: images and gradients of the valid Gaussians |got - want| <= 1e-6 + 1e-5 |want|
(one backend with and without the skipped Gaussians: the same sums, in an order that may differ
for the reference's einsum).
"""

from __future__ import annotations

import importlib
import importlib.util
import math

import pytest
import torch

from stgvcodec.render import projection, rasterize
from stgvcodec.render.synthetic import random_gaussians

# Triton's interpreter computes with numpy, which warns about the NaNs these tests feed it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)

BACKENDS = ["reference", "cpu", "triton"]
HEIGHT, WIDTH = 19, 23
NAN, INF = math.nan, math.inf


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "triton" and importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    return request.param


def _device(backend: str) -> str:
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


def _ndc_x(pixels: float) -> float:
    """The NDC x of a centre `pixels` from the left edge."""
    return pixels * 2.0 / WIDTH - 1.0


# One Gaussian each (mean, Cholesky, colour) that must contribute nothing.
SKIPPED = {
    "NaN centre x": ([NAN, 0.1], [2.0, 0.3, 2.0], [0.5, 0.2, 0.1]),
    "NaN centre y": ([0.1, NAN], [2.0, 0.3, 2.0], [0.5, 0.2, 0.1]),
    "inf centre x": ([INF, 0.0], [2.0, 0.0, 2.0], [0.5, 0.2, 0.1]),
    "-inf centre y": ([0.0, -INF], [2.0, 0.0, 2.0], [0.5, 0.2, 0.1]),
    "centre overflowing in pixels": ([3e38, 3e38], [2.0, 0.0, 2.0], [0.5, 0.2, 0.1]),
    "centre 2e21 pixels right": ([_ndc_x(2e21), 0.0], [3.0, 1.0, 2.0], [0.5, 0.2, 0.1]),
    "centre 2e21 pixels below": ([0.0, 2e21], [3.0, 1.0, 2.0], [0.5, 0.2, 0.1]),
    "centre -2e21 pixels, huge Sigma": ([-2e21, -2e21], [1e18, 0.0, 1e18], [0.5, 0.2, 0.1]),
    "NaN Cholesky": ([0.0, 0.0], [NAN, 0.0, 2.0], [0.5, 0.2, 0.1]),
    "inf Cholesky": ([0.0, 0.0], [2.0, INF, 2.0], [0.5, 0.2, 0.1]),
    "Sigma overflowing": ([0.0, 0.0], [2e19, 0.0, 2.0], [0.5, 0.2, 0.1]),
    "denormal Cholesky": ([0.0, 0.0], [1e-40, 0.0, 1e-40], [0.5, 0.2, 0.1]),
    "zero Cholesky": ([0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.2, 0.1]),
    "NaN colour": ([0.0, 0.0], [2.0, 0.0, 2.0], [NAN, 0.2, 0.1]),
    "inf colour": ([0.0, 0.0], [2.0, 0.0, 2.0], [0.5, -INF, 0.1]),
}


def _render(backend, means, cholesky, colors):
    """Image and the gradients of a fixed random linear loss, all on the CPU."""
    device = _device(backend)
    inputs = [t.detach().to(device).requires_grad_(True) for t in (means, cholesky, colors)]
    image = rasterize(*inputs, HEIGHT, WIDTH, backend=backend)
    weights = torch.randn(image.shape, generator=torch.Generator().manual_seed(0)).to(device)
    (image * weights).sum().backward()
    return image.detach().cpu(), [t.grad.cpu() for t in inputs]


@pytest.mark.parametrize("name", list(SKIPPED))
def test_skipped_gaussian_changes_nothing(backend, name):
    """Interleaved with valid Gaussians, the bad one leaves the image and the valid ones' gradients
    as they are without it, and gets zero gradients itself."""
    means, cholesky, colors = random_gaussians(12, HEIGHT, WIDTH, seed=3)
    bad = [torch.tensor([values]) for values in SKIPPED[name]]
    at = 5
    mixed = [torch.cat((t[:at], b, t[at:])) for t, b in zip((means, cholesky, colors), bad)]

    want, want_grads = _render(backend, means, cholesky, colors)
    got, got_grads = _render(backend, *mixed)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    for g, w in zip(got_grads, want_grads):
        assert torch.isfinite(g).all()
        assert (g[at] == 0).all()
        torch.testing.assert_close(torch.cat((g[:at], g[at + 1 :])), w, atol=1e-6, rtol=1e-5)


def test_all_bad_gaussians_at_once_in_a_batch(backend):
    """Every bad kind together, several times over, in a batch: a black image, finite gradients."""
    means, cholesky, colors = (torch.tensor([list(v[k]) for v in SKIPPED.values()] * 3) for k in range(3))
    stacked = [torch.stack((t, t.flip(0))) for t in (means, cholesky, colors)]
    image, grads = _render(backend, *stacked)
    assert image.shape == (2, HEIGHT, WIDTH, 3) and (image == 0).all()
    assert all(torch.isfinite(g).all() and (g == 0).all() for g in grads)


def test_huge_finite_gaussians_render_as_the_reference(backend):
    """Finite extremes that contribute: Sigma wider than float32 extents, centres far outside with
    Gaussians wide enough to reach the frame, denormal colours."""
    means = torch.tensor([[_ndc_x(-1e6), 0.0], [0.2, 1e4], [0.1, -0.1], [-0.4, 0.3]])
    cholesky = torch.tensor([[1e7, 0.0, 1e7], [30.0, 0.0, 2e5], [1e19, 1e19, 1e3], [2.0, 0.5, 1.0]])
    colors = torch.tensor([[0.1, 0.2, 0.3], [0.2, 0.1, 0.0], [0.05, 0.05, 0.05], [1e-40, 1e-39, 0.4]])
    got, got_grads = _render(backend, means, cholesky, colors)
    want, want_grads = _render("reference", means, cholesky, colors)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert (got[..., 0] > 0.04).all()  # the wide ones cover the frame
    for g, w in zip(got_grads, want_grads):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, w, atol=1e-4 * w.abs().max().item() + 1e-7, rtol=1e-3)


def test_overflowing_sums_stay_in_range(backend):
    """Colours near the float32 limit overflow the sum (inf - inf = NaN): pixels still in [0, 1]."""
    count = 16
    means = torch.zeros(count, 2)
    cholesky = torch.tensor([[4.0, 0.0, 4.0]]).expand(count, 3)
    colors = torch.tensor([[3e38, -3e38, 3e38], [-3e38, 3e38, 3e38]]).repeat(count // 2, 1)
    image, grads = _render(backend, means, cholesky, colors)
    assert torch.isfinite(image).all() and (image >= 0).all() and (image <= 1).all()
    assert (image[HEIGHT // 2, WIDTH // 2, 2] == 1).all()  # +inf clamps to 1


@pytest.mark.parametrize("batch", [None, 3])
def test_zero_gaussians_render_black(backend, batch):
    shape = (0,) if batch is None else (batch, 0)
    image, grads = _render(backend, torch.zeros(*shape, 2), torch.zeros(*shape, 3), torch.zeros(*shape, 3))
    assert image.shape == (*shape[:-1], HEIGHT, WIDTH, 3) and (image == 0).all()
    assert [g.shape for g in grads] == [(*shape, 2), (*shape, 3), (*shape, 3)]


KERNEL_BACKENDS = ["cpu", "triton"]


@pytest.mark.parametrize("name", KERNEL_BACKENDS)
def test_kernels_called_directly_stay_in_bounds(name):
    """The kernels themselves, without project(): garbage centres, extents and conics next to one
    valid Gaussian. Those below all contribute nothing whatever the backend (s is NaN or
    enormous, or the Gaussian is skipped), so the image is the valid Gaussian's alone."""
    if name == "triton" and importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    module = importlib.import_module(f"stgvcodec.render.{name}")
    module.check(torch.device(_device(name)))
    kernel = module.KERNEL
    rows = [  # (centre x, centre y), (a, b, c), (extent x, extent y)
        ((NAN, 5.0), (1.0, 0.0, 1.0), (3.0, 3.0)),
        ((5.0, INF), (1.0, 0.0, 1.0), (3.0, 3.0)),
        ((-INF, -INF), (1.0, 0.0, 1.0), (INF, INF)),
        ((2e21, 5.0), (1.0, 0.0, 1.0), (3.0, 3.0)),
        ((5.0, 2e21), (1.0, 0.0, 1.0), (3.0, 3.0)),
        ((-2e21, -2e21), (1.0, 0.0, 1.0), (1e30, 1e30)),
        ((3e38, 3e38), (1.0, 0.0, 1.0), (3e38, 3e38)),
        ((5.0, 5.0), (NAN, 0.0, 1.0), (3.0, 3.0)),
        ((5.0, 5.0), (1.0, NAN, 1.0), (INF, INF)),
        ((5.0, 5.0), (INF, 0.0, INF), (3.0, 3.0)),
        ((5.0, 5.0), (1.0, 0.0, 1.0), (NAN, 3.0)),
        ((5.0, 5.0), (1.0, 0.0, 1.0), (3.0, NAN)),
        ((5.0, 5.0), (1.0, 0.0, 1.0), (-1.0, 3.0)),
    ]
    means, cholesky, colors = (t[None] for t in random_gaussians(1, HEIGHT, WIDTH, seed=4))
    valid = projection.project(means, cholesky, colors, HEIGHT, WIDTH)
    garbage = [torch.tensor([[row[k] for row in rows]]) for k in range(3)]
    paint = torch.full((1, len(rows), 3), 0.7)
    device = _device(name)
    bad = (garbage[0], garbage[1], paint, garbage[2])  # Projected's order: centres, conics, colours, extents
    args = [torch.cat((v, g), dim=1).to(device).contiguous() for v, g in zip(valid, bad)]
    alone = [t.to(device) for t in valid]

    image = kernel.forward(*args, HEIGHT, WIDTH)
    torch.testing.assert_close(image, kernel.forward(*alone, HEIGHT, WIDTH), atol=1e-6, rtol=1e-6)
    grad_image = torch.randn(1, HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(1)).to(device)
    grads = kernel.backward(*args, HEIGHT, WIDTH, grad_image)
    alone_grads = kernel.backward(*alone, HEIGHT, WIDTH, grad_image)
    for g, w in zip(grads, alone_grads):
        assert g.shape[:2] == (1, 1 + len(rows))
        torch.testing.assert_close(g[:, :1], w, atol=1e-6, rtol=1e-6)
