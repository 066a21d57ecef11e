"""Gaussians.from_image, and fitting Gaussians to one image (the key-frame stage)."""

import pytest
import torch

from stgvcodec.config import FitConfig, ModelConfig
from stgvcodec.model import Gaussians
from stgvcodec.render import rasterize_sum
from stgvcodec.train.gop_fit import fit_gop
from tests.clips import moving_pattern


@pytest.mark.parametrize("count,height,width", [(1, 1, 1), (1, 40, 30), (7, 3, 50), (500, 20, 20), (3000, 8, 8)])
def test_init_is_finite_and_covers_the_frame(count, height, width):
    image = torch.rand(height, width, 3, generator=torch.Generator().manual_seed(0))
    model = Gaussians.from_image(image, count, torch.Generator().manual_seed(0))
    assert len(model) == count
    for tensor in (model.means, model.cholesky, model.colors):
        assert torch.isfinite(tensor).all()
    assert model.means.min() >= -1 and model.means.max() <= 1
    assert torch.isfinite(model.render(height, width)).all()


def test_fit_improves_a_real_pattern():
    image = torch.from_numpy(moving_pattern(1, 24, 32))

    def fit(steps: int) -> float:
        return fit_gop(image, ModelConfig(), FitConfig(init_steps=steps, deform_steps=0, gaussians=200), quiet=True).psnr

    start, fitted = fit(0), fit(150)
    assert fitted > 27.0 and fitted > start + 5.0
    assert fit(150) == fitted  # seeded and deterministic on CPU


@pytest.mark.parametrize("count,height,width", [(1, 1, 1), (7, 3, 50), (500, 20, 20), (3000, 8, 8)])
def test_gradient_layout_is_finite_and_inside_the_frame(count, height, width):
    image = torch.rand(height, width, 3, generator=torch.Generator().manual_seed(0))
    model = Gaussians.from_gradients(image, count, torch.Generator().manual_seed(0))
    assert len(model) == count
    for tensor in (model.means, model.cholesky, model.colors):
        assert torch.isfinite(tensor).all()
    assert model.means.min() >= -1 and model.means.max() <= 1
    flat = Gaussians.from_gradients(torch.full((height, width, 3), 0.5), count, torch.Generator().manual_seed(0))
    assert torch.isfinite(flat.colors).all() and (flat.colors > 0).all()  # no gradient at all: uniform


def test_gradient_layout_puts_small_gaussians_on_detail():
    """Stripes on the right half, flat on the left: 70% of the draws follow the stripes' gradient."""
    image = torch.full((32, 64, 3), 0.5)
    image[:, 32:, :] = (torch.arange(32) // 2 % 2).float()[None, :, None]
    model = Gaussians.from_gradients(image, 400, torch.Generator().manual_seed(1))
    right = model.means[:, 0] > 0
    assert right.sum() > 0.75 * 400  # 0.7 + 0.3 / 2 expected
    assert model.cholesky[right, 0].mean() < 0.6 * model.cholesky[~right, 0].mean()
    again = Gaussians.from_gradients(image, 400, torch.Generator().manual_seed(1))
    assert torch.equal(again.means, model.means)


def _explicit_least_squares(gaussians: Gaussians, image: torch.Tensor) -> torch.Tensor:
    """[N, 3] least-squares colours from the render matrix built column by column (one Gaussian,
    colour 1, per render), in float64."""
    height, width = image.shape[:2]
    means, cholesky = gaussians.means.detach(), gaussians.cholesky.detach()
    columns = []
    for n in range(len(gaussians)):
        colours = torch.zeros_like(gaussians.colors.detach())
        colours[n] = 1.0
        columns.append(rasterize_sum(means, cholesky, colours, height, width)[..., 0])
    matrix = torch.stack(columns, dim=-1).reshape(height * width, -1).double()
    return torch.linalg.lstsq(matrix, image.reshape(-1, 3).double()).solution


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_colour_solve_reaches_the_least_squares_colours(backend):
    """With as many passes as unknowns per channel, CGLS reaches the explicit solution; before that
    each pass lowers the error."""
    generator = torch.Generator().manual_seed(1)
    image = torch.from_numpy(moving_pattern(1, 12, 14))[0].float() / 255.0
    gaussians = Gaussians.from_gradients(image, 24, generator)
    before = gaussians.colors.detach().clone()
    means, cholesky = gaussians.means.detach().double(), gaussians.cholesky.detach().double()

    def mse(colours: torch.Tensor) -> float:  # float64, reference renderer
        rendered = rasterize_sum(means, cholesky, colours.detach().double(), 12, 14, "reference")
        return torch.mean((rendered - image.double()) ** 2).item()

    errors = [mse(gaussians.solve_colours(image, passes, backend).colors) for passes in (0, 2, 4, 8)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    solved = gaussians.solve_colours(image, 3 * len(gaussians), backend)
    best = _explicit_least_squares(gaussians, image)
    assert mse(solved.colors) <= mse(best) * (1 + 1e-4)
    assert torch.allclose(solved.colors.double(), best, atol=1e-2)  # float32 passes on a poorly conditioned system
    assert torch.equal(gaussians.colors.detach(), before)  # the original is left alone
    assert torch.equal(solved.means, gaussians.means) and torch.equal(solved.cholesky, gaussians.cholesky)


def test_colour_solve_raises_a_fresh_starts_psnr():
    image = torch.from_numpy(moving_pattern(1, 24, 32))[0].float() / 255.0

    def start_mse(passes: int) -> float:
        fit = FitConfig(init_steps=0, deform_steps=0, gaussians=150, layout="gradients", colour_solve=passes)
        start = fit_gop(image[None], ModelConfig(width=16), fit, quiet=True).model.gaussians
        with torch.no_grad():
            return torch.mean((start.render(24, 32) - image) ** 2).item()

    assert start_mse(8) < 0.5 * start_mse(0)
