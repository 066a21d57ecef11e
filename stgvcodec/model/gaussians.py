"""A set of 2D Gaussians: NDC positions, Cholesky factors in pixels, colours; no opacity."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..render import Backend, rasterize, rasterize_sum


class Gaussians(nn.Module):
    """N Gaussians as trainable parameters.

    Attributes:
        means: [N, 2] NDC positions (x, y); [-1, 1] spans the frame.
        cholesky: [N, 3] (l1, l2, l3), L = [[l1, 0], [l2, l3]], Sigma = L L^T in pixels^2.
        colors: [N, 3] RGB weights of the sum renderer.
    """

    def __init__(self, means: Tensor, cholesky: Tensor, colors: Tensor):
        super().__init__()
        self.means = nn.Parameter(means.detach().clone())
        self.cholesky = nn.Parameter(cholesky.detach().clone())
        self.colors = nn.Parameter(colors.detach().clone())

    def __len__(self) -> int:
        return self.means.shape[0]

    @classmethod
    def from_image(cls, image: Tensor, count: int, generator: torch.Generator | None = None) -> Gaussians:
        """Spreads `count` round Gaussians over an image, coloured by the pixels under them.

        Positions are jittered on a grid so the frame is covered evenly; every Gaussian gets
        the same standard deviation, about the grid spacing, and a colour that makes the sum
        of overlapping weights reproduce the pixel beneath it. All values are finite for any
        image of at least one pixel and any count >= 1.

        Args:
            image: [H, W, 3] float in [0, 1].
            count: N >= 1.
            generator: source of the jitter (CPU generator).
        """
        height, width = image.shape[:2]
        cols = max(1, round(math.sqrt(count * width / height)))
        rows = math.ceil(count / cols)
        cell = torch.arange(count)
        jitter = torch.rand(count, 2, generator=generator)
        x = ((cell % cols).float() + jitter[:, 0]) / cols
        y = ((cell // cols).float() + jitter[:, 1]) / rows
        means = torch.stack((x, y), dim=-1) * 2.0 - 1.0

        spacing = math.sqrt(height * width / count)
        sigma = max(0.8 * spacing, 0.5)
        cholesky = torch.tensor([sigma, 0.0, sigma]).expand(count, 3)

        # A pixel sees weights summing to about 2 pi sigma^2 N / (H W) (the cut-off drops ~0.4%).
        coverage = 2.0 * math.pi * sigma * sigma * count / (height * width) * (1.0 - 1.0 / 255.0)
        px = ((x * width).long()).clamp(0, width - 1)
        py = ((y * height).long()).clamp(0, height - 1)
        colors = image[py, px].float().cpu() / max(coverage, 1.0)
        device = image.device
        return cls(means.to(device), cholesky.to(device), colors.to(device))

    @classmethod
    def from_gradients(cls, image: Tensor, count: int, generator: torch.Generator | None = None) -> Gaussians:
        """Places `count` round Gaussians where an image has detail (content-adaptive).

        Each position is a pixel drawn, without repeats while there are enough pixels, with
        probability 0.7 * g / sum(g) + 0.3 / (H W), g the pixel's gradient magnitude (central
        differences summed over channels), then jittered inside the pixel: edges get dense small
        Gaussians, flat areas sparse large ones, and no area none. A Gaussian's standard deviation
        is 0.8 times the local spacing 1 / sqrt(count p) pixels, so the local coverage, and with it
        the colour that reproduces the pixel beneath, is the same everywhere, as in from_image.

        Args:
            image: [H, W, 3] float in [0, 1].
            count: N >= 1.
            generator: source of the draws (CPU generator).
        """
        height, width = image.shape[:2]
        pixels = image.detach().float().cpu()
        padded = torch.nn.functional.pad(pixels.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")[0]
        dx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]).abs().sum(0)
        dy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]).abs().sum(0)
        gradient = (dx + dy).flatten().double()
        total = gradient.sum()
        uniform = torch.full_like(gradient, 1.0 / gradient.numel())
        p = 0.7 * gradient / total + 0.3 * uniform if total > 0 else uniform
        drawn = torch.multinomial(p, count, replacement=count > p.numel(), generator=generator)
        jitter = torch.rand(count, 2, generator=generator)
        x = ((drawn % width).float() + jitter[:, 0]) / width
        y = ((drawn // width).float() + jitter[:, 1]) / height
        means = torch.stack((x, y), dim=-1) * 2.0 - 1.0

        spacing = (1.0 / (count * p[drawn])).sqrt().float()  # pixels between neighbours here
        sigma = (0.8 * spacing).clamp(min=0.5)
        cholesky = torch.stack((sigma, torch.zeros_like(sigma), sigma), dim=-1)
        coverage = (2.0 * math.pi * sigma * sigma * count * p[drawn].float() * (1.0 - 1.0 / 255.0)).clamp(min=1.0)
        colors = pixels.reshape(-1, 3)[drawn] / coverage[:, None]
        device = image.device
        return cls(means.to(device), cholesky.to(device), colors.to(device))

    def solve_colours(self, image: Tensor, iterations: int, backend: Backend = "auto") -> Gaussians:
        """The same Gaussians with colours fitted to `image` [H, W, 3] by least squares, their
        positions and shapes held: `iterations` conjugate-gradient passes (CGLS) on
        min_c |A c - image|^2 from the current colours, A c = rasterize_sum(means, cholesky, c),
        each channel on its own. A pass costs one render (A p) and its adjoint (A^T r, the
        gradient of <A c, r> in c, exact since the sum is linear in the colours). The clamp of
        rasterize() is left out: the least-squares sum of a picture in [0, 1] stays close to it.
        Sums are taken in float64 so the result does not follow torch's thread count. Never
        changes `self`.
        """
        height, width = image.shape[:2]
        means, cholesky = self.means.detach(), self.cholesky.detach()
        target = image.detach().to(means)

        def forward(colours: Tensor) -> Tensor:
            return rasterize_sum(means, cholesky, colours, height, width, backend)

        def adjoint(residual: Tensor) -> Tensor:
            colours = torch.zeros_like(self.colors.detach(), requires_grad=True)
            with torch.enable_grad():
                (gradient,) = torch.autograd.grad(forward(colours), colours, grad_outputs=residual)
            return gradient

        def norms(values: Tensor) -> Tensor:  # [3] squared norm per channel
            return (values.double() ** 2).reshape(-1, 3).sum(0)

        with torch.no_grad():
            colours = self.colors.detach().clone()
            residual = target - forward(colours)
            step_dir = gradient = adjoint(residual)
            gamma = norms(gradient)
            for _ in range(iterations):
                image_dir = forward(step_dir)
                curvature = norms(image_dir)
                if not bool((gamma > 0).any()) or not bool((curvature > 0).any()):
                    break
                alpha = torch.where(curvature > 0, gamma / curvature.clamp(min=1e-300), 0.0).to(colours)
                colours = colours + alpha * step_dir
                residual = residual - alpha * image_dir
                gradient = adjoint(residual)
                gamma, previous = norms(gradient), gamma
                beta = torch.where(previous > 0, gamma / previous.clamp(min=1e-300), 0.0).to(colours)
                step_dir = gradient + beta * step_dir
        return Gaussians(means, cholesky, colours)

    def render(self, height: int, width: int, backend: Backend = "auto") -> Tensor:
        """[H, W, 3] image in [0, 1], differentiable in every parameter."""
        return rasterize(self.means, self.cholesky, self.colors, height, width, backend=backend)
