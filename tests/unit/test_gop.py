"""GoP splitting, the deformation field and the GoP model."""

import pytest
import torch

from stgvcodec.config import ModelConfig
from stgvcodec.model import DeformationField, Gaussians, GopModel, frame_times, split_gops
from stgvcodec.render.synthetic import random_gaussians


@pytest.mark.parametrize(
    "frames,size,expected",
    [
        (132, 10, [10] * 12 + [12]),
        (130, 10, [10] * 13),
        (1, 10, [1]),
        (4, 10, [4]),
        (15, 10, [10, 5]),
        (14, 10, [14]),
        (7, 1, [1] * 7),
    ],
)
def test_split_gops(frames, size, expected):
    gops = split_gops(frames, size)
    assert [count for _, count in gops] == expected
    assert [start for start, _ in gops] == [sum(expected[:k]) for k in range(len(expected))]


def test_split_gops_rejects_empty():
    with pytest.raises(ValueError):
        split_gops(0, 10)


def test_frame_times():
    assert frame_times(1) == [0.0]
    assert frame_times(5) == [0.0, 0.25, 0.5, 0.75, 1.0]


def _model(encoding: str, count: int = 40) -> GopModel:
    torch.manual_seed(0)
    means, cholesky, colors = random_gaussians(count, 16, 24, seed=1)
    return GopModel(Gaussians(means, cholesky, colors), ModelConfig(encoding=encoding))


@pytest.mark.parametrize("encoding", ["hash", "plane", "positional"])
def test_untrained_field_is_the_identity(encoding):
    model = _model(encoding)
    times = torch.tensor([0.0, 0.3, 1.0])
    means, cholesky, colors = model.deformed(times)
    assert means.shape == (3, 40, 2) and cholesky.shape == (3, 40, 3) and colors.shape == (3, 40, 3)
    g = model.gaussians
    for t in range(3):
        assert torch.equal(means[t], g.means) and torch.equal(colors[t], g.colors) and torch.equal(cholesky[t], g.cholesky)
    frames = model.render(times, 16, 24)
    assert frames.shape == (3, 16, 24, 3)
    torch.testing.assert_close(frames[1], g.render(16, 24), rtol=0, atol=0)


@pytest.mark.parametrize("encoding", ["hash", "plane", "positional"])
def test_gradients_reach_every_part(encoding):
    model = _model(encoding)
    frames = model.render(torch.tensor([0.0, 1.0]), 16, 24)
    # Zero heads pass no gradient to the layers before them on the first step, but the heads and
    # the Gaussians get one; after one step of the heads everything does.
    (frames - 0.5).pow(2).mean().backward()
    for name in ("head_mu", "head_c"):
        assert getattr(model.deformation, name).weight.grad.abs().sum() > 0, name
    assert model.gaussians.means.grad.abs().sum() > 0
    with torch.no_grad():
        model.deformation.head_mu.weight.normal_(std=1e-3)
        model.deformation.head_c.weight.normal_(std=1e-3)
    model.zero_grad()
    model.render(torch.tensor([0.0, 1.0]), 16, 24).pow(2).mean().backward()
    for name, parameter in model.deformation.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_parameter_counts_of_the_paper_configuration():
    field = DeformationField(ModelConfig())
    hidden = 8 * 2 + 8 * 4 + 13
    mlp = hidden * 128 + 128 + 128 * 128 + 128 + 128 * 2 + 2 + 128 * 3 + 3
    grids = sum(p.numel() for p in (field.spatial.params, field.temporal.params))
    assert sum(p.numel() for p in field.parameters()) == mlp + grids
