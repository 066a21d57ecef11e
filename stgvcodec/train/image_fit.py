"""Fitting Gaussians to one image with an L2 loss (the key-frame stage of a GoP).

    image [H, W, 3] --Gaussians.from_image--> Gaussians --Adam on MSE(render, image)--> Gaussians
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from ..metrics import psnr, to_uint8
from ..model import Gaussians
from ..render import Backend


@dataclass(frozen=True)
class ImageFitConfig:
    """How to fit Gaussians to one image."""

    gaussians: int = 2000
    """Number of Gaussians N."""
    steps: int = 1000
    """Adam steps, one full-image render each."""
    lr: float = 7e-3
    """Learning rate of every Gaussian parameter (the paper's value)."""
    seed: int = 0
    """Seed of the initial positions' jitter."""
    backend: Backend = "auto"
    """Render backend."""


def fit_image(image: Tensor, config: ImageFitConfig, *, quiet: bool = False) -> tuple[Gaussians, float]:
    """Fits Gaussians to an image.

    Args:
        image: [H, W, 3] float32 in [0, 1], on the device to train on.
        config: the fit's settings.
        quiet: no progress bar.

    Returns:
        The fitted Gaussians and the PSNR (dB) of their 8-bit render against the 8-bit image.
    """
    height, width = image.shape[:2]
    generator = torch.Generator().manual_seed(config.seed)
    model = Gaussians.from_image(image, config.gaussians, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    bar = tqdm(range(config.steps), desc="fit", unit="step", disable=quiet, leave=False)
    for step in bar:
        loss = torch.mean((model.render(height, width, config.backend) - image) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            bar.set_postfix(psnr=f"{-10.0 * torch.log10(loss.detach()).item():.2f}dB")
    bar.close()
    with torch.no_grad():
        final = to_uint8(model.render(height, width, config.backend))
    return model, psnr(final, to_uint8(image))
