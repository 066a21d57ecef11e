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


class GopModel(nn.Module):
    """Canonical Gaussians and their deformation; renders any time in [0, 1]."""

    def __init__(self, gaussians: Gaussians, config: ModelConfig):
        super().__init__()
        self.config = config
        self.gaussians = gaussians
        self.deformation = DeformationField(config)

    def deformed(self, times: Tensor, exact: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Gaussians at each time: means [T, N, 2], cholesky [T, N, 3], colors [T, N, 3].

        `exact`: the decoder's evaluation of the network (DeformationField.forward).
        """
        g = self.gaussians
        dmu, dc = self.deformation(g.means, times, exact)
        steps = times.shape[0]
        return g.means + dmu, g.cholesky.expand(steps, *g.cholesky.shape), g.colors + dc

    def render(self, times: Tensor, height: int, width: int, backend: Backend = "auto") -> Tensor:
        """Frames [T, H, W, 3] in [0, 1] at `times` [T]."""
        return rasterize(*self.deformed(times), height, width, backend=backend)
