"""fit_gop on a synthetic moving pattern: it learns the motion, reproducibly."""

import pytest
import torch

from stgvcodec.config import FitConfig, ModelConfig, preset
from stgvcodec.train.gop_fit import fit_gop
from tests.clips import moving_pattern

SMALL = FitConfig(init_steps=150, deform_steps=300, gaussians=150, lr_network=5e-3, lr_network_final=5e-4)


@pytest.fixture(scope="module")
def clip():
    return torch.from_numpy(moving_pattern(5, 24, 32))


@pytest.fixture(scope="module")
def fitted(clip):
    return fit_gop(clip, ModelConfig(width=32), SMALL, quiet=True)


def test_short_fit_reaches_stated_quality(fitted):
    """The moving square defeats a static fit; the deformation must recover most of it."""
    assert fitted.psnr > 26.0
    assert fitted.psnr > fitted.static_psnr + 2.0
    assert len(fitted.frame_psnr) == 5 and fitted.ms_ssim is None  # 24x32 is below MS-SSIM's minimum
    assert fitted.steps == 450


def test_fit_is_deterministic_on_cpu(clip, fitted):
    again = fit_gop(clip, ModelConfig(width=32), SMALL, quiet=True)
    assert again.frame_psnr == fitted.frame_psnr
    for a, b in zip(again.model.parameters(), fitted.model.parameters()):
        assert torch.equal(a, b)


def test_multiframe_initialisation_and_single_frame_gop(clip):
    fit = FitConfig(init_steps=20, deform_steps=20, gaussians=50, init="multiframe", frames_per_step=3)
    result = fit_gop(clip[:1], ModelConfig(width=16), fit, quiet=True)
    assert len(result.frame_psnr) == 1
    result = fit_gop(clip, ModelConfig(width=16, encoding="plane"), fit, quiet=True)
    assert len(result.frame_psnr) == 5


def test_cholesky_factor_scales_the_cholesky_steps_alone(clip):
    """One stage-1 Adam step moves each value by about its learning rate: the Cholesky factors by
    lr_cholesky_factor times what positions and colours move."""
    start = fit_gop(clip, ModelConfig(width=8), FitConfig(init_steps=0, deform_steps=0, gaussians=40), quiet=True)
    moved = {}
    for factor in (1.0, 10.0):
        fit = FitConfig(init_steps=1, deform_steps=0, gaussians=40, lr_cholesky_factor=factor)
        model = fit_gop(clip, ModelConfig(width=8), fit, quiet=True).model.gaussians
        moved[factor] = [(getattr(model, name) - getattr(start.model.gaussians, name)).abs()
                         for name in ("means", "cholesky", "colors")]  # fmt: skip
    assert torch.equal(moved[1.0][0], moved[10.0][0]) and torch.equal(moved[1.0][2], moved[10.0][2])
    stepped = moved[1.0][1] > 0.5 * fit.lr_gaussians  # values with a gradient: Adam's first step is ~lr
    assert stepped.sum() > 20
    assert torch.allclose(moved[10.0][1][stepped], 10.0 * moved[1.0][1][stepped], rtol=1e-3)


def test_presets_scale_gaussians_with_resolution():
    fast = preset("fast")
    assert fast.count(640, 1280) == 4 * fast.count(320, 640)
    assert preset("paper").count(640, 1280) == 20_000
    assert preset("fast", gaussians=77).count(10, 10) == 77
    with pytest.raises(ValueError, match="unknown preset"):
        preset("turbo")
