"""Fitting one GoP: key-frame (or multi-frame) initialisation, then joint deformation training.

    frames [T, H, W, 3], optional start Gaussians (another GoP's canonical ones)
      start: choose_start (train/warm.py): the start resized to the GoP's count, or
             Gaussians.from_image (or from_gradients: FitConfig.layout) of frame 0 when there is none
             or it misses the key frame (a cut)
      stage 1: --Adam, L2 on frame 0 (keyframe) or all frames, init_steps (warm_init_steps
               after a warm start)--> canonical
      stage 2: GopModel(canonical, DeformationField) --Adam, L2 on all frames--> fitted GoP model

Frames are drawn from shuffled epochs, so every frame is seen equally often. Gaussians train at
`lr_gaussians` in stage 1 and decay exponentially from it to `lr_gaussians_final` over stage 2,
their Cholesky factors at `lr_cholesky_factor` times those rates; encodings and MLP decay from
`lr_network` to `lr_network_final`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from ..config import FitConfig, ModelConfig
from ..decode import render_gop
from ..metrics import ms_ssim, psnr, to_uint8
from ..model import Gaussians, GopModel, frame_times
from ..render import Backend
from .anchor import Anchor
from .warm import choose_start


@dataclass
class GopFit:
    """A fitted GoP and how well it reproduces its frames (8-bit output against 8-bit source)."""

    model: GopModel
    psnr: float
    """Mean over frames of per-frame PSNR, dB."""
    ms_ssim: float | None
    """Mean MS-SSIM, None below its minimum size."""
    static_psnr: float
    """Mean PSNR of the canonical Gaussians alone (stage 1) shown at every frame."""
    seconds: float
    steps: int
    frame_psnr: list[float] = field(default_factory=list)
    warm: bool = False
    """True when stage 1 started from the given Gaussians, False for a fresh initialisation."""
    warm_psnr: float | None = None
    """PSNR (dB) of the given Gaussians, resized, on the key frame before training; None without them."""
    cold_psnr: float | None = None
    """PSNR (dB) of a fresh grid initialisation on the key frame before training."""
    kept: Tensor | None = None
    """After a warm start, the rows of the start that the model's first len(kept) Gaussians copy
    (their order kept); the Gaussians after them are new. None after a cold start."""
    anchor: Anchor | None = None
    """With `predict`: the start's values of those rows, which the fit pulled its rows back to."""


class _FrameSampler:
    """Draws frame indices from reshuffled epochs: all frames equally often."""

    def __init__(self, count: int, generator: torch.Generator):
        self.count, self.generator, self.queue = count, generator, []

    def draw(self, k: int) -> list[int]:
        while len(self.queue) < k:
            self.queue += torch.randperm(self.count, generator=self.generator).tolist()
        drawn, self.queue = self.queue[:k], self.queue[k:]
        return drawn


def fit_gop(
    frames: Tensor,
    model_config: ModelConfig,
    fit: FitConfig,
    *,
    start: Gaussians | None = None,
    predict: bool = False,
    backend: Backend = "auto",
    quiet: bool = False,
    label: str = "GoP",
) -> GopFit:
    """Fits a GoP model to `frames` [T, H, W, 3] uint8 or float in [0, 1] (on the training device).

    Args:
        start: Gaussians to begin stage 1 from (a warm start), typically the previous GoP's
            canonical Gaussians as decoded; resized to `fit.count(...)`, and ignored when they
            reproduce the key frame no better than a fresh initialisation (train/warm.py). None:
            a fresh initialisation; the fit then depends on `frames` and `fit` alone.
        predict: after a warm start, pull the Gaussians copied from `start` back to their values
            there after every step (train/anchor.py, strength `fit.anchor_strength`), so that a
            predicted GoP codes few of them as changed.
    """
    began = time.perf_counter()
    torch.manual_seed(fit.seed)
    generator = torch.Generator().manual_seed(fit.seed)
    if frames.dtype == torch.uint8:
        frames = frames.float() / 255.0
    count, height, width = frames.shape[:3]
    times = torch.tensor(frame_times(count), device=frames.device)
    sampler = _FrameSampler(count, generator)
    per_step = min(fit.frames_per_step, count)
    choice = choose_start(
        start, frames[0], fit.count(height, width), generator, backend, fit.layout, fit.cold_gaussians, fit.colour_solve
    )
    gaussians = choice.gaussians
    anchor = Anchor.of(gaussians, len(choice.kept), fit.anchor_strength) if predict and choice.warm else None
    init_steps = fit.warm_init_steps if choice.warm else fit.init_steps
    deform_steps = fit.warm_deform_steps if choice.warm and fit.warm_deform_steps is not None else fit.deform_steps
    bar = tqdm(total=init_steps + deform_steps, desc=label, unit="step", disable=quiet, leave=False)

    optimizer = torch.optim.Adam(_gaussian_groups(gaussians, fit))
    for _ in range(init_steps):
        index = [0] if fit.init == "keyframe" else sampler.draw(per_step)
        loss = torch.mean((gaussians.render(height, width, backend)[None] - frames[index]) ** 2)
        _step(optimizer, loss, bar, "init")
        if anchor is not None:
            anchor.pull(gaussians, optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"])

    with torch.no_grad():
        static = to_uint8(gaussians.render(height, width, backend))
    sources = to_uint8(frames)
    static_psnr = sum(psnr(static, source) for source in sources) / count

    model = GopModel(gaussians, model_config).to(frames.device)
    optimizer = torch.optim.Adam(
        [*_gaussian_groups(gaussians, fit), {"params": model.deformation.parameters(), "lr": fit.lr_network}]
    )
    gaussians_decay = (fit.lr_gaussians_final / fit.lr_gaussians) ** (1.0 / max(deform_steps, 1))
    network_decay = (fit.lr_network_final / fit.lr_network) ** (1.0 / max(deform_steps, 1))
    decays = (gaussians_decay, gaussians_decay, network_decay)
    for _ in range(deform_steps):
        index = sampler.draw(per_step)
        loss = torch.mean((model.render(times[index], height, width, backend) - frames[index]) ** 2)
        _step(optimizer, loss, bar, "deform")
        if anchor is not None:
            anchor.pull(gaussians, optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"])
        for group, decay in zip(optimizer.param_groups, decays):
            group["lr"] *= decay
    bar.close()

    decoded = render_gop(model, count, height, width, backend)
    frame_psnr = [psnr(d, s) for d, s in zip(decoded, sources)]
    return GopFit(
        model=model,
        psnr=sum(frame_psnr) / count,
        ms_ssim=ms_ssim(decoded, sources),
        static_psnr=static_psnr,
        seconds=time.perf_counter() - began,
        steps=init_steps + deform_steps,
        frame_psnr=frame_psnr,
        warm=choice.warm,
        warm_psnr=choice.warm_psnr,
        cold_psnr=choice.cold_psnr,
        kept=choice.kept,
        anchor=anchor,
    )


def _gaussian_groups(gaussians: Gaussians, fit: FitConfig) -> list[dict]:
    """Adam parameter groups of the Gaussians: positions and colours at `lr_gaussians`, the
    Cholesky factors (in pixels) at `lr_cholesky_factor` times it."""
    return [
        {"params": [gaussians.means, gaussians.colors], "lr": fit.lr_gaussians},
        {"params": [gaussians.cholesky], "lr": fit.lr_gaussians * fit.lr_cholesky_factor},
    ]


def _step(optimizer: torch.optim.Optimizer, loss: Tensor, bar: tqdm, stage: str) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    bar.update()
    if bar.n % 100 == 1 and not bar.disable:
        bar.set_postfix(stage=stage, psnr=f"{-10.0 * torch.log10(loss.detach()).item():.2f}dB", refresh=False)
