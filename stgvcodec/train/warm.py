"""Warm starts: a GoP's canonical Gaussians begun from another GoP's, or from scratch after a cut.

    previous GoP's Gaussians --resize_gaussians(count, key frame)--> warm candidate
    key frame --Gaussians.from_image--> cold candidate
    choose_start: warm if it reproduces the key frame at least COLD_MARGIN_DB better than the cold
    candidate does, else cold

The encoder passes the previous GoP's canonical Gaussians as the decoder rebuilds them from the
file (stgvcodec.decode.gop_model), so a resumed encode can rebuild the same start, and any GoP
can still be coded on its own (without a start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import Layout
from ..model import Gaussians
from ..render import Backend, rasterize_sum

COLD_MARGIN_DB = 1.0
"""How much better than a fresh initialisation the previous GoP's Gaussians must reproduce the new
key frame, before any training, for a warm start. Both are measured on the key frame at no training
cost: one render each. Within a shot the previous Gaussians sit on the same edges and start ahead
(Bunny 320x160, 1,250 Gaussians: GoP 1's fitted canonical Gaussians give 21.5 dB on GoP 2's key
frame and 22.3 dB from GoP 2 on GoP 3's, against 19.0 and 18.9 dB for the fresh grid); after a cut
they draw the old picture and fall below the fresh grid, whose colours are sampled from the new
frame (tests/unit/test_warm.py builds such a cut).
The margin keeps a start that is barely ahead, whose shapes belong to another picture, from
spending the short warm stage 1 undoing them."""


@dataclass(frozen=True)
class StartChoice:
    """Which canonical Gaussians a fit starts from, and why."""

    gaussians: Gaussians
    warm: bool
    """True: resized from the given Gaussians; False: a fresh initialisation from the key frame."""
    warm_psnr: float | None
    """PSNR (dB, float render) of the resized given Gaussians on the key frame; None without them."""
    cold_psnr: float
    """PSNR (dB, float render) of a fresh grid initialisation on the key frame."""
    kept: Tensor | None = None
    """After a warm start, the rows of the given Gaussians that the first len(kept) Gaussians copy
    (kept_rows); the Gaussians after them are new. None after a cold start."""


def choose_start(
    start: Gaussians | None,
    key: Tensor,
    count: int,
    generator: torch.Generator,
    backend: Backend = "auto",
    layout: Layout = "grid",
    cold_count: int | None = None,
    colour_solve: int = 0,
) -> StartChoice:
    """The Gaussians a fit of key frame `key` [H, W, 3] (float, [0, 1]) begins from: `count` of
    them after a warm start, `cold_count` (default `count`) after a fresh one, since rate control
    prices a GoP that starts afresh as a key GoP (encoder/rate.py).

    The fresh initialisations (the grid that the rule measures, and FitConfig.layout's at the fresh
    count) are always drawn first, so `generator` is in the same state afterwards whichever start
    wins. The warm start is measured against a grid of the same count in every case: the rule asks
    whether the given Gaussians still show this picture (a "gradients" layout starts lower before
    training, its coverage uneven, but trains faster; more Gaussians would start higher without
    the picture having changed).
    """
    fresh = count if cold_count is None else cold_count
    grid = Gaussians.from_image(key, count, generator)
    if layout == "grid":
        cold = grid if fresh == count else Gaussians.from_image(key, fresh, generator)
    else:
        cold = Gaussians.from_gradients(key, fresh, generator)
    cold_psnr = _psnr(grid, key, backend)
    warm_psnr = None
    if start is not None:
        warm = resize_gaussians(start, count, key, generator, backend)
        warm_psnr = _psnr(warm, key, backend)
        if warm_psnr >= cold_psnr + COLD_MARGIN_DB:
            return StartChoice(warm, True, warm_psnr, cold_psnr, kept_rows(start, count))
    if colour_solve > 0:
        cold = cold.solve_colours(key, colour_solve, backend)
    return StartChoice(cold, False, warm_psnr, cold_psnr)


def usefulness(gaussians: Gaussians) -> Tensor:
    """[N] how much each Gaussian adds to the image: the integral of |colour| x weight over the
    plane, |c|_1 * 2 pi |l1 l3| (the weight's integral is 2 pi sqrt(det Sigma) = 2 pi |l1 l3|)."""
    l1, _, l3 = gaussians.cholesky.detach().unbind(-1)
    return gaussians.colors.detach().abs().sum(-1) * 2.0 * math.pi * (l1 * l3).abs()


def kept_rows(gaussians: Gaussians, count: int) -> Tensor:
    """[min(count, N)] ascending rows of `gaussians` that resize_gaussians keeps for `count`: all
    of them when they are not more than `count`, else the `count` most useful."""
    held = len(gaussians)
    if count >= held:
        return torch.arange(held, device=gaussians.means.device)
    return torch.sort(torch.argsort(usefulness(gaussians), descending=True, stable=True)[:count]).values


@torch.no_grad()
def resize_gaussians(
    gaussians: Gaussians, count: int, image: Tensor, generator: torch.Generator, backend: Backend = "auto"
) -> Gaussians:
    """`count` Gaussians made from `gaussians` for `image` [H, W, 3] float in [0, 1].

    Fewer: the least useful (usefulness()) are dropped; the rest keep their order.
    More: new round Gaussians go where the current ones miss `image` most, at pixels drawn with
    probability proportional to the absolute error; they take the residual's colour under them,
    scaled by the one factor that minimises the squared error of the sum (so adding them never
    makes the image worse), and the size of a grid of `count` Gaussians.
    Equal: copies. Never changes `gaussians`.
    """
    means, cholesky, colours = (p.detach().clone() for p in (gaussians.means, gaussians.cholesky, gaussians.colors))
    held = means.shape[0]
    if count <= held:
        keep = kept_rows(gaussians, count)
        return Gaussians(means[keep], cholesky[keep], colours[keep])

    height, width = image.shape[:2]
    added = count - held
    residual = image - gaussians.render(height, width, backend)  # [H, W, 3]
    error = residual.abs().sum(-1).flatten().cpu().double() + 1e-12  # never all zero
    pixels = torch.multinomial(error, added, replacement=added > error.numel(), generator=generator)
    rows, cols = pixels // width, pixels % width
    new_means = torch.stack(((cols + 0.5) / width, (rows + 0.5) / height), dim=-1) * 2.0 - 1.0
    sigma = max(0.8 * math.sqrt(height * width / count), 0.5)
    new_cholesky = torch.tensor([sigma, 0.0, sigma]).expand(added, 3)
    new_colours = residual.cpu()[rows, cols]
    device = image.device
    new = Gaussians(new_means.to(device), new_cholesky.to(device), new_colours.to(device))
    shape = rasterize_sum(new.means, new.cholesky, new.colors, height, width, backend)
    scale = (residual * shape).sum() / (shape * shape).sum().clamp(min=1e-12)
    return Gaussians(
        torch.cat((means, new.means)), torch.cat((cholesky, new.cholesky)), torch.cat((colours, new.colors * scale))
    )


def _psnr(gaussians: Gaussians, image: Tensor, backend: Backend) -> float:
    """PSNR in dB of the float render, clamped to [0, 1], against `image`."""
    with torch.no_grad():
        rendered = gaussians.render(image.shape[0], image.shape[1], backend)  # rasterize clamps to [0, 1]
    # float64: a float32 mean's rounding follows torch's thread count (seen in the 8th digit of the
    # PSNR); in float64 the warm/cold choice could differ between thread counts only on a margin
    # met to about 1e-12 dB, and encodes stay byte-identical across thread counts.
    mse = torch.mean((rendered.double() - image.double()) ** 2).item()
    return math.inf if mse == 0 else -10.0 * math.log10(mse)
