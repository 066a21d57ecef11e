"""Warm starts: resizing Gaussians to another count, and choosing warm or cold on the key frame."""

from dataclasses import replace

import pytest
import torch

from stgvcodec.config import FitConfig, ModelConfig
from stgvcodec.model import Gaussians
from stgvcodec.train.gop_fit import fit_gop
from stgvcodec.train.warm import COLD_MARGIN_DB, choose_start, resize_gaussians, usefulness
from tests.clips import moving_pattern

HEIGHT, WIDTH = 24, 32


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(3)


@pytest.fixture(scope="module")
def clip():
    return torch.from_numpy(moving_pattern(5, HEIGHT, WIDTH))


@pytest.fixture(scope="module")
def fitted(clip):
    """Canonical Gaussians fitted to the clip's key frame (stage 1 only)."""
    fit = FitConfig(init_steps=100, deform_steps=0, gaussians=120)
    return fit_gop(clip[:1], ModelConfig(width=16), fit, quiet=True).model.gaussians


def _mse(gaussians: Gaussians, image: torch.Tensor) -> float:
    with torch.no_grad():
        return torch.mean((gaussians.render(HEIGHT, WIDTH) - image) ** 2).item()


def test_fewer_keeps_the_most_useful_in_order(fitted):
    kept = resize_gaussians(fitted, 50, torch.zeros(HEIGHT, WIDTH, 3), _generator())
    assert len(kept) == 50
    scores = usefulness(fitted)
    chosen = torch.sort(torch.argsort(scores, descending=True, stable=True)[:50]).values
    assert torch.equal(kept.means, fitted.means[chosen]) and torch.equal(kept.colors, fitted.colors[chosen])
    assert usefulness(kept).min() >= scores[[i for i in range(len(fitted)) if i not in chosen.tolist()]].max()
    assert len(fitted) == 120  # the given Gaussians are not changed


def test_usefulness_is_colour_times_area():
    g = Gaussians(torch.zeros(3, 2), torch.tensor([[1.0, 0.5, 2.0], [2.0, 0.0, 2.0], [1.0, 0.0, -1.0]]),
                  torch.tensor([[1.0, 0.0, 0.0], [0.5, -0.5, 0.0], [0.0, 0.0, 0.0]]))  # fmt: skip
    assert usefulness(g).tolist() == pytest.approx([2.0 * torch.pi * 2.0, 2.0 * torch.pi * 4.0, 0.0])


def test_more_go_where_the_error_is():
    """Black Gaussians on a black frame with one bright square: every new one lands in the square."""
    image = torch.zeros(HEIGHT, WIDTH, 3)
    image[4:12, 18:28] = 0.8
    black = Gaussians(torch.rand(30, 2, generator=_generator()) * 2 - 1, torch.tensor([2.0, 0.0, 2.0]).expand(30, 3),
                      torch.zeros(30, 3))  # fmt: skip
    grown = resize_gaussians(black, 50, image, _generator())
    assert len(grown) == 50
    assert torch.equal(grown.means[:30], black.means) and torch.equal(grown.colors[:30], black.colors)
    x = (grown.means[30:, 0] + 1) / 2 * WIDTH
    y = (grown.means[30:, 1] + 1) / 2 * HEIGHT
    assert ((x > 18) & (x < 28) & (y > 4) & (y < 12)).all()
    assert (grown.colors[30:] > 0).all()
    assert _mse(grown, image) < 0.5 * _mse(black, image)


def test_more_never_makes_the_image_worse(fitted, clip):
    key = clip[0].float() / 255
    grown = resize_gaussians(fitted, 200, key, _generator())
    assert len(grown) == 200 and torch.isfinite(grown.colors).all()
    assert _mse(grown, key) <= _mse(fitted, key) * (1 + 1e-5)
    again = resize_gaussians(fitted, 200, key, _generator())
    assert torch.equal(again.means, grown.means) and torch.equal(again.colors, grown.colors)


def test_warm_within_a_shot_cold_after_a_cut(fitted, clip):
    """The next key frame of the same shot starts warm; a different picture (a cut) starts cold."""
    nearby = clip[2].float() / 255
    warm = choose_start(fitted, nearby, 120, _generator())
    assert warm.warm and warm.warm_psnr >= warm.cold_psnr + COLD_MARGIN_DB
    cut = 1.0 - nearby.flip(0)
    cold = choose_start(fitted, cut, 120, _generator())
    assert not cold.warm and cold.warm_psnr < cold.cold_psnr + COLD_MARGIN_DB
    fresh = choose_start(None, cut, 120, _generator())
    assert torch.equal(cold.gaussians.means, fresh.gaussians.means) and fresh.warm_psnr is None


def test_generator_state_does_not_depend_on_the_choice(fitted, clip):
    key = clip[2].float() / 255
    states = []
    for start in (fitted, None):
        generator = _generator()
        choose_start(start, key, 120, generator)  # same count: resizing draws nothing
        states.append(torch.rand(4, generator=generator))
    assert torch.equal(*states)


def test_fit_from_a_start(fitted, clip):
    fit = FitConfig(init_steps=40, deform_steps=30, warm_init_steps=10, warm_deform_steps=20, gaussians=90,
                    lr_network=5e-3, lr_network_final=5e-4)  # fmt: skip
    first = fit_gop(clip, ModelConfig(width=16), fit, start=fitted, quiet=True)
    assert first.warm and first.steps == 30 and len(first.model.gaussians) == 90
    again = fit_gop(clip, ModelConfig(width=16), fit, start=fitted, quiet=True)
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
    cut = torch.from_numpy(255 - moving_pattern(5, HEIGHT, WIDTH)[:, ::-1].copy())
    cold = fit_gop(cut, ModelConfig(width=16), fit, start=fitted, quiet=True)
    assert not cold.warm and cold.steps == 70
    bigger = fit_gop(clip, ModelConfig(width=16), replace(fit, gaussians=160), start=fitted, quiet=True)
    assert bigger.warm and len(bigger.model.gaussians) == 160


def test_a_fresh_start_takes_its_own_count(fitted, clip):
    """A GoP planned as predicted keeps `count` Gaussians when it starts warm; after a cut it is a
    key GoP and starts with the key GoP's count instead."""
    nearby = clip[2].float() / 255
    warm = choose_start(fitted, nearby, 120, _generator(), cold_count=200)
    assert warm.warm and len(warm.gaussians) == 120 and len(warm.kept) == 120
    cold = choose_start(fitted, 1.0 - nearby.flip(0), 120, _generator(), cold_count=200)
    assert not cold.warm and len(cold.gaussians) == 200 and cold.kept is None
