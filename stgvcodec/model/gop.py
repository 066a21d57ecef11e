"""A GoP model: canonical Gaussians plus the deformation field that moves them over time.

    times [T] --DeformationField(mu, t)--> dmu, dc
    Gaussian n at time t: (mu_n + dmu, L_n, c_n + dc)  --rasterize--> frames [T, H, W, 3]
"""

from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from ..render import Backend, rasterize
from .deformation import DeformationField
from .gaussians import Gaussians


def split_gops(frame_count: int, gop_size: int = 10) -> list[tuple[int, int]]:
    """Splits a video into GoPs: (first frame, frame count) each.

    GoPs hold `gop_size` frames; a trailing remainder shorter than half a GoP joins the previous
    GoP, a longer one is a GoP of its own (132 frames -> 12 GoPs of 10 and one of 12).
    """
    if frame_count < 1 or gop_size < 1:
        raise ValueError(f"need at least one frame and a GoP size >= 1, got {frame_count} and {gop_size}")
    sizes = [gop_size] * (frame_count // gop_size)
    remainder = frame_count % gop_size
    if remainder and sizes and 2 * remainder < gop_size:
        sizes[-1] += remainder
    elif remainder:
        sizes.append(remainder)
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    return list(zip(starts, sizes))


def frame_times(count: int) -> list[float]:
    """Time of frame k of a GoP of `count` frames: k / max(count - 1, 1)."""
    return [k / max(count - 1, 1) for k in range(count)]


class GopModel(nn.Module):
    """Canonical Gaussians and their deformation; renders any time in [0, 1]."""

    def __init__(self, gaussians: Gaussians, config: ModelConfig):
        super().__init__()
        self.config = config
        self.gaussians = gaussians
        self.deformation = DeformationField(config)

    def deformed(self, times: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Gaussians at each time: means [T, N, 2], cholesky [T, N, 3], colors [T, N, 3]."""
        g = self.gaussians
        dmu, dc = self.deformation(g.means, times)
        steps = times.shape[0]
        return g.means + dmu, g.cholesky.expand(steps, *g.cholesky.shape), g.colors + dc

    def render(self, times: Tensor, height: int, width: int, backend: Backend = "auto") -> Tensor:
        """Frames [T, H, W, 3] in [0, 1] at `times` [T]."""
        return rasterize(*self.deformed(times), height, width, backend=backend)
