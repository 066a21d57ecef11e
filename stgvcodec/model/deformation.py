"""The deformation field: canonical position and time -> (delta position, delta colour).

    mu (NDC) --(mu + 1) / 2--> x in [0, 1]^2
    "hash":       f = [G2D(x), G3D(x, t), gamma(t)]
    "plane":      f = [P_xy(x), P_xt(x, t), P_yt(x, t), gamma(t)]
    "positional": f = [gamma_K(x), gamma(t)]
    h = ReLU(W2 ReLU(W1 f + b1) + b2);  dmu = head_mu(h), dc = head_c(h)

The heads start at zero, so an untrained field leaves every Gaussian at its canonical state.

Training evaluates the MLP in float32 (fast). The decoder evaluates it with `exact=True`: each
layer's sums in float64, rounded once to float32, which no summation order can change in practice,
so a decoder written from bitstream_spec.md (section 11) reproduces the offsets bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .encoding import FrequencyEncoding, HashGrid, PlaneEncoding


class DeformationField(nn.Module):
    """Predicts per-Gaussian, per-time offsets of position (NDC) and colour."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.time_encoding = FrequencyEncoding(1, config.time_frequencies)
        if config.encoding == "hash":
            grid = dict(
                levels=config.levels,
                log2_table_size=config.log2_table_size,
                base_resolution=config.base_resolution,
                per_level_scale=config.per_level_scale,
            )
            self.spatial = HashGrid(2, features=config.spatial_features, **grid)
            self.temporal = HashGrid(3, features=config.temporal_features, **grid)
            features = self.spatial.output_dim + self.temporal.output_dim
        elif config.encoding == "plane":
            self.planes = PlaneEncoding(config.plane_resolution, config.plane_time_resolution, config.plane_features)
            features = self.planes.output_dim
        elif config.encoding == "positional":
            self.position_encoding = FrequencyEncoding(2, config.position_frequencies)
            features = self.position_encoding.output_dim
        else:
            raise ValueError(f"unknown encoding {config.encoding!r}; choose hash, plane or positional")
        width = config.width
        self.mlp = nn.Sequential(
            nn.Linear(features + self.time_encoding.output_dim, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
        )
        self.head_mu = nn.Linear(width, 2)
        self.head_c = nn.Linear(width, 3)
        for head in (self.head_mu, self.head_c):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, means: Tensor, times: Tensor, exact: bool = False) -> tuple[Tensor, Tensor]:
        """Offsets for every Gaussian at every time.

        Args:
            means: [N, 2] canonical positions in NDC.
            times: [T] frame times in [0, 1].
            exact: evaluate the MLP as the decoder does: float64 sums rounded to float32 per layer.

        Returns:
            dmu [T, N, 2] (NDC) and dc [T, N, 3].
        """
        count, steps = means.shape[0], times.shape[0]
        inputs = self.mlp_input(means, times)
        if exact:
            first, second = self.mlp[0], self.mlp[2]
            hidden = _exact_linear(_exact_linear(inputs, first).relu(), second).relu()
            dmu, dc = _exact_linear(hidden, self.head_mu), _exact_linear(hidden, self.head_c)
        else:
            hidden = self.mlp(inputs)
            dmu, dc = self.head_mu(hidden), self.head_c(hidden)
        return dmu.view(steps, count, 2), dc.view(steps, count, 3)

    def mlp_input(self, means: Tensor, times: Tensor) -> Tensor:
        """The MLP's input [f_n(t), gamma(t)]: [T * N, D], time-major (row t * N + n)."""
        count, steps = means.shape[0], times.shape[0]
        # The field reads canonical positions without differentiating through them (as deformable
        # Gaussian methods do), so every encoding variant trains the positions the same way.
        xy = ((means.detach() + 1.0) * 0.5).clamp(0.0, 1.0)  # [N, 2]
        t = times.view(steps, 1, 1).expand(steps, count, 1)  # [T, N, 1]
        xyt = torch.cat((xy.expand(steps, count, 2), t), dim=-1).reshape(-1, 3)  # [T*N, 3]
        # Sizes are spelled out, not -1: with N = 0 (a GoP without Gaussians) -1 is ambiguous.
        gamma = self.time_encoding(times.view(steps, 1))  # [T, 13]
        gamma = gamma[:, None, :].expand(steps, count, gamma.shape[-1]).reshape(steps * count, gamma.shape[-1])
        encoding = self.config.encoding
        if encoding == "hash":
            spatial = self.spatial(xy)  # [N, L*F2], the same for every time
            spatial = spatial.expand(steps, *spatial.shape).reshape(steps * count, spatial.shape[-1])
            features = [spatial, self.temporal(xyt)]
        elif encoding == "plane":
            features = [self.planes(xyt)]
        else:
            encoded = self.position_encoding(xy)
            features = [encoded.expand(steps, *encoded.shape).reshape(steps * count, encoded.shape[-1])]
        return torch.cat((*features, gamma), dim=-1)


def _exact_linear(x: Tensor, layer: nn.Linear) -> Tensor:
    """float32(b + W x) with the products and their sum in float64.

    float32 products are exact in float64, and a float64 sum of at most a few hundred of them is
    within about 1e-14 relative of the exact sum, so rounding it to float32 gives the same value
    in any summation order but for near-ties of probability about 1e-7 per output.
    """
    wide = torch.addmm(layer.bias.double(), x.double(), layer.weight.double().t())
    return wide.to(x.dtype)
