"""Fitting one GoP: key-frame (or multi-frame) initialisation, then joint deformation training.

    frames [T, H, W, 3]
      stage 1: Gaussians.from_image(frame 0) --Adam, L2 on frame 0 (keyframe) or all frames--> canonical
      stage 2: GopModel(canonical, DeformationField) --Adam, L2 on all frames--> fitted GoP model

Frames are drawn from shuffled epochs, so every frame is seen equally often. Gaussians train at
`lr_gaussians` throughout; encodings and MLP decay exponentially from `lr_network` to
`lr_network_final` over stage 2.
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
    backend: Backend = "auto",
    quiet: bool = False,
    label: str = "GoP",
) -> GopFit:
    """Fits a GoP model to `frames` [T, H, W, 3] uint8 or float in [0, 1] (on the training device)."""
    start = time.perf_counter()
    torch.manual_seed(fit.seed)
    generator = torch.Generator().manual_seed(fit.seed)
    if frames.dtype == torch.uint8:
        frames = frames.float() / 255.0
    count, height, width = frames.shape[:3]
    times = torch.tensor(frame_times(count), device=frames.device)
    sampler = _FrameSampler(count, generator)
    per_step = min(fit.frames_per_step, count)
    bar = tqdm(total=fit.init_steps + fit.deform_steps, desc=label, unit="step", disable=quiet, leave=False)

    gaussians = Gaussians.from_image(frames[0], fit.count(height, width), generator)
    optimizer = torch.optim.Adam(gaussians.parameters(), lr=fit.lr_gaussians)
    for _ in range(fit.init_steps):
        index = [0] if fit.init == "keyframe" else sampler.draw(per_step)
        loss = torch.mean((gaussians.render(height, width, backend)[None] - frames[index]) ** 2)
        _step(optimizer, loss, bar, "init")

    with torch.no_grad():
        static = to_uint8(gaussians.render(height, width, backend))
    sources = to_uint8(frames)
    static_psnr = sum(psnr(static, source) for source in sources) / count

    model = GopModel(gaussians, model_config).to(frames.device)
    optimizer = torch.optim.Adam(
        [
            {"params": gaussians.parameters(), "lr": fit.lr_gaussians},
            {"params": model.deformation.parameters(), "lr": fit.lr_network},
        ]
    )
    decay = (fit.lr_network_final / fit.lr_network) ** (1.0 / max(fit.deform_steps, 1))
    for _ in range(fit.deform_steps):
        index = sampler.draw(per_step)
        loss = torch.mean((model.render(times[index], height, width, backend) - frames[index]) ** 2)
        _step(optimizer, loss, bar, "deform")
        optimizer.param_groups[1]["lr"] *= decay
    bar.close()

    decoded = render_gop(model, count, height, width, backend)
    frame_psnr = [psnr(d, s) for d, s in zip(decoded, sources)]
    return GopFit(
        model=model,
        psnr=sum(frame_psnr) / count,
        ms_ssim=ms_ssim(decoded, sources),
        static_psnr=static_psnr,
        seconds=time.perf_counter() - start,
        steps=fit.init_steps + fit.deform_steps,
        frame_psnr=frame_psnr,
    )


def _step(optimizer: torch.optim.Optimizer, loss: Tensor, bar: tqdm, stage: str) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    bar.update()
    if bar.n % 100 == 1 and not bar.disable:
        bar.set_postfix(stage=stage, psnr=f"{-10.0 * torch.log10(loss.detach()).item():.2f}dB", refresh=False)
