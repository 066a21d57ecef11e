"""Feature encodings of the deformation field.

```
  mu (x, y) in [0, 1]^2      --> HashGrid(2)        --> f_s       [P, 8 * 2]  \
  (x, y, t) in [0, 1]^3      --> HashGrid(3)        --> f_d       [P, 8 * 4]   +--> concat --> MLP
  t in [0, 1]                --> FrequencyEncoding  --> gamma(t)  [P, 13]     /
  (x, y, t)  (ablation)      --> PlaneEncoding      --> f_p       [P, 3 * 8]
```

`HashGrid` follows tiny-cuda-nn (tcnn) exactly: level sizes, index function and the flat
parameter layout are tcnn's, so `tinycudann.Encoding` can replace it with the same parameters
(see `HashGrid.tcnn_config`). The tcnn sources that fix each convention are
`include/tiny-cuda-nn/common_device.h` (`grid_scale`, `grid_resolution`, `pos_fract`,
`grid_index`, `coherent_prime_hash`) and `include/tiny-cuda-nn/encodings/grid.h`
(`GridEncodingTemplated` constructor, `kernel_grid`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

# tcnn's coherent_prime_hash factors; the first is 1 so neighbouring x share cache lines.
_HASH_PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)
_UINT32_MASK = 0xFFFFFFFF
# tcnn caps the dense size of a level at std::numeric_limits<uint32_t>::max() / 2.
_MAX_DENSE_ENTRIES = 0xFFFFFFFF // 2
# tcnn's default initialisation of grid parameters: uniform in [-1e-4, 1e-4].
_INIT_RANGE = 1e-4


@dataclass(frozen=True)
class GridLevel:
    """One resolution level of a `HashGrid`, laid out as tcnn lays it out."""

    scale: float
    """float32 value of `exp2f(l * log2f(b)) * N_min - 1`; positions map to `x * scale + 0.5`."""
    resolution: int
    """Grid vertices per axis, `ceil(scale) + 1`."""
    table_size: int
    """Entries of this level: `min(next_multiple(resolution^d, 8), 2^log2_table_size)`."""
    offset: int
    """Index of the level's first entry in the flat table (running sum of table sizes)."""
    dense: bool
    """True when `resolution^d <= table_size`: vertices are indexed densely, not hashed."""


def level_scale(level: int, per_level_scale: float, base_resolution: int) -> float:
    """tcnn's `grid_scale` evaluated in float32, as its host code does.

    `exp2f(level * log2f(b)) * base_resolution - 1.0f`. With b = 1.5 the exact scales of levels
    1 to 4 are the integers 23, 35, 53 and 80, so one ulp decides `ceil(scale)` and with it the
    table sizes. log2f and exp2f are evaluated correctly rounded (through float64), which is what
    glibc returns for these arguments; numpy's float32 exp2 is one ulp low at level 4.

    Args:
        level: level index l >= 0.
        per_level_scale: b, the growth factor between levels (taken as float32).
        base_resolution: N_min, vertices per axis at level 0.

    Returns:
        The level's scale, a float32 value held in a Python float.
    """
    log2_scale = np.float32(math.log2(np.float32(per_level_scale)))
    exponent = np.float32(level) * log2_scale
    growth = np.float32(2.0 ** float(exponent))
    return float(growth * np.float32(base_resolution) - np.float32(1.0))


def grid_levels(
    dims: int, levels: int, log2_table_size: int, base_resolution: int, per_level_scale: float
) -> tuple[GridLevel, ...]:
    """Per-level geometry and table layout of a tcnn hash grid (`GridEncodingTemplated`).

    tcnn rounds the dense size up to a multiple of 8 first and then caps it at the hash table
    size; the order only matters for tables smaller than 8 entries.
    """
    result = []
    offset = 0
    for level in range(levels):
        scale = level_scale(level, per_level_scale, base_resolution)
        resolution = math.ceil(scale) + 1
        vertices = resolution**dims
        aligned = -(-min(vertices, _MAX_DENSE_ENTRIES) // 8) * 8
        table_size = min(aligned, 2**log2_table_size)
        # grid_index hashes exactly when hashmap_size < stride, the stride being resolution^d.
        result.append(GridLevel(scale, resolution, table_size, offset, vertices <= table_size))
        offset += table_size
    return tuple(result)


class HashGrid(nn.Module):
    """Multiresolution hash encoding (Instant-NGP) with tiny-cuda-nn's conventions.

    Per level l, a point x in [0, 1]^d lands at `pos = x * scale_l + 0.5` (tcnn's `pos_fract`);
    its 2^d surrounding vertices `floor(pos) + {0, 1}^d` are looked up in the level's table and
    blended with d-linear weights from `pos - floor(pos)`. A vertex c indexes the table densely,
    `sum_i c_i * res_l^i`, when the whole grid fits, and otherwise by the XOR hash
    `(c_0 * 1) ^ (c_1 * 2654435761) ^ (c_2 * 805459861)` in uint32; either index is taken modulo
    the level's table size. Vertices may reach `res_l` (pos goes up to scale + 0.5); tcnn does
    not clamp them, so a dense index can wrap into the next row, and so does this module.

    Inputs are clamped to [0, 1]; tcnn does not clamp, so only in-range inputs match it.

    Attributes:
        params: [total_entries * features] the flat table; entry e of level l holds its
            features at `params[(offset_l + e) * features + f]`, tcnn's layout.
        output_dim: levels * features.
    """

    def __init__(
        self,
        dims: int,
        levels: int = 8,
        features: int = 2,
        log2_table_size: int = 10,
        base_resolution: int = 16,
        per_level_scale: float = 1.5,
    ):
        super().__init__()
        if not 1 <= dims <= len(_HASH_PRIMES):
            raise ValueError(f"HashGrid supports 1 to {len(_HASH_PRIMES)} input dims, got {dims}")
        self.dims = dims
        self.features = features
        self.log2_table_size = log2_table_size
        self.base_resolution = base_resolution
        self.per_level_scale = per_level_scale
        self.output_dim = levels * features
        self._levels = grid_levels(dims, levels, log2_table_size, base_resolution, per_level_scale)

        entries = self._levels[-1].offset + self._levels[-1].table_size
        self.params = nn.Parameter(torch.empty(entries * features).uniform_(-_INIT_RANGE, _INIT_RANGE))

        # Derived from the configuration, so kept out of the state dict. The scales are stored as
        # float32 bit patterns in an integer buffer so that module.half() / .double() leave them exact.
        scales = np.array([lv.scale for lv in self._levels], dtype=np.float32)
        self.register_buffer("_scale_bits", torch.from_numpy(scales.view(np.int32)), persistent=False)
        strides = [[lv.resolution**i for i in range(dims)] for lv in self._levels]
        self.register_buffer("_strides", torch.tensor(strides, dtype=torch.int64), persistent=False)
        primes = torch.tensor(_HASH_PRIMES[:dims], dtype=torch.int64)
        self.register_buffer("_primes", primes, persistent=False)
        self.register_buffer("_table_size", self._level_tensor("table_size"), persistent=False)
        self.register_buffer("_offset", self._level_tensor("offset"), persistent=False)
        self.register_buffer("_dense", self._level_tensor("dense").bool(), persistent=False)
        self.register_buffer("_lower_upper", torch.tensor([0, 1]), persistent=False)
        self._geometry = None  # the CPU kernels' copy of the level constants, built at first use

    def _level_tensor(self, field: str) -> Tensor:
        return torch.tensor([int(getattr(lv, field)) for lv in self._levels], dtype=torch.int64)

    @property
    def levels(self) -> int:
        return len(self._levels)

    def level_info(self) -> tuple[GridLevel, ...]:
        """Scale, resolution, table size, offset and dense flag of every level."""
        return self._levels

    def tcnn_config(self) -> dict:
        """The tinycudann encoding config that computes the same function with the same params.

        To swap in tcnn (when it is installed; it is not a dependency)::

            enc = tinycudann.Encoding(grid.dims, grid.tcnn_config(), dtype=torch.float32)
            enc.params.data.copy_(grid.params.data)   # identical flat layout

        tcnn's output is level-major like ours; it sums the corners in another order, so outputs
        agree to float32 rounding. tcnn accepts 1, 2, 4 or 8 features per level, and older
        releases only 2 or 3 input dims.
        """
        return {
            "otype": "HashGrid",
            "n_levels": self.levels,
            "n_features_per_level": self.features,
            "log2_hashmap_size": self.log2_table_size,
            "base_resolution": self.base_resolution,
            "per_level_scale": self.per_level_scale,
            "interpolation": "Linear",
            "hash": "CoherentPrime",
        }

    def forward(self, x: Tensor) -> Tensor:
        """Encodes points.

        CPU float32 tables go through the fused numba kernels of `hashgrid_cpu` (loaded at the
        first call), which compute the same bits as `forward_torch`; STGV_HASHGRID=torch in the
        environment keeps every grid on the torch path.

        Args:
            x: [P, dims] float coordinates in [0, 1] (clamped); no gradient flows to them.

        Returns:
            [P, levels * features] in the dtype of `params`; level l's features at
            columns l * features ... (l + 1) * features - 1.
        """
        if (
            self.params.dtype == torch.float32
            and self.params.device.type == "cpu"
            and x.device.type == "cpu"
            and os.environ.get("STGV_HASHGRID", "auto") != "torch"
        ):
            from . import hashgrid_cpu

            if hashgrid_cpu.available():
                if x.ndim != 2 or x.shape[1] != self.dims:
                    raise ValueError(f"expected [P, {self.dims}] coordinates, got {tuple(x.shape)}")
                if self._geometry is None:
                    self._geometry = hashgrid_cpu.GridGeometry(self._levels, self.dims, self.features, _HASH_PRIMES)
                return hashgrid_cpu.encode(x, self.params, self._geometry)
        return self.forward_torch(x)

    def forward_torch(self, x: Tensor) -> Tensor:
        """`forward` in torch ops, on any device and dtype: the reference of the CPU kernels."""
        index, weight = self._corner_entries(x)  # [L, C, P] each
        # Gathering feature-major keeps the points innermost in the blend; forward plus backward
        # measured about 1.5x faster on CPU than gathering [entries, F] rows.
        table = self.params.view(-1, self.features).t()  # [F, entries]
        values = table.index_select(1, index.view(-1)).view(self.features, *index.shape)
        terms = (weight.to(table.dtype) * values).unbind(2)  # C x [F, L, P]
        # Corners are summed one add at a time, in corner order (bitstream_spec.md 11.1):
        # Tensor.sum over the 8 corners of a 3D grid changes its order for the last P mod 32
        # points (ATen's SIMD tail), so its result depended on the point count and the CPU.
        # (unbind, not indexing: its backward stacks the 2^d gradients in one op.)
        blended = terms[0]
        for term in terms[1:]:
            blended = blended + term
        return blended.permute(2, 1, 0).reshape(x.shape[0], self.output_dim)

    def corners(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Flat table entries and d-linear weights of every corner of every level.

        Corner k takes the upper vertex along dim i where bit i of k is set (tcnn's order).

        Args:
            x: [P, dims] coordinates in [0, 1].

        Returns:
            index: [P, L, 2^dims] int64 entry (row of `params.view(-1, features)`).
            weight: [P, L, 2^dims] float32 interpolation weights.
        """
        index, weight = self._corner_entries(x)
        return index.permute(2, 0, 1), weight.permute(2, 0, 1)

    @torch.no_grad()
    def _corner_entries(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """`corners` laid out [L, 2^dims, P]: points innermost keeps every elementwise loop long."""
        if x.ndim != 2 or x.shape[1] != self.dims:
            raise ValueError(f"expected [P, {self.dims}] coordinates, got {tuple(x.shape)}")
        levels, points = self.levels, x.shape[0]
        x = x.detach().float().clamp(0.0, 1.0).t().contiguous()  # [d, P]
        scale = self._scale_bits.view(torch.float32).double().view(levels, 1, 1)
        # tcnn: pos = fmaf(scale, x, 0.5f). The float64 product of two floats is exact, and so is
        # adding 0.5 while x * scale >= 2^-6, so one rounding to float32 reproduces the fused
        # multiply-add (below that, a double rounding could move frac by one ulp).
        pos = (scale * x.double() + 0.5).float()  # [L, d, P]
        lower = pos.floor()
        frac = pos - lower
        vertex = lower.long().unsqueeze(2) + self._lower_upper.view(1, 1, 2, 1)  # [L, d, 2, P]
        dense_terms = vertex * self._strides.view(levels, self.dims, 1, 1)
        hash_terms = vertex * self._primes.view(1, self.dims, 1, 1)
        weight_terms = torch.stack((1.0 - frac, frac), dim=2)

        # Dims combine by broadcasting over [L, 2, ..., 2, P] with dim i on the i-th axis from
        # the right of the 2s, so corner k's bit i selects dim i's upper vertex. Weights multiply
        # in dim order, as tcnn's float32 `weight *= ...` does.
        dense_index, hash_index, weight = dense_terms[:, 0], hash_terms[:, 0], weight_terms[:, 0]
        for dim in range(1, self.dims):
            shape = (levels, 2) + (1,) * dim + (points,)
            dense_index = dense_terms[:, dim].view(shape) + dense_index.unsqueeze(1)
            hash_index = hash_terms[:, dim].view(shape) ^ hash_index.unsqueeze(1)
            weight = weight.unsqueeze(1) * weight_terms[:, dim].view(shape)
        corners = (levels, 2**self.dims, points)
        dense_index, hash_index = dense_index.reshape(corners), hash_index.reshape(corners)

        # int64 products wrap modulo 2^64, so masking to 32 bits gives tcnn's uint32 arithmetic.
        per_level = (levels, 1, 1)
        index = torch.where(self._dense.view(per_level), dense_index, hash_index) & _UINT32_MASK
        index = index % self._table_size.view(per_level) + self._offset.view(per_level)
        return index, weight.reshape(corners)


class FrequencyEncoding(nn.Module):
    """NeRF positional encoding gamma(p), no parameters.

    Output order: p (all dims), then for k = 0..K-1: sin(2^k pi p) (all dims), cos(2^k pi p)
    (all dims). For dims = 1 and K = 6 this is DESIGN.md's 13-value gamma(t).

    Attributes:
        output_dim: dims * (2 K + 1), or dims * 2 K without the input.
    """

    def __init__(self, dims: int, frequencies: int = 6, include_input: bool = True):
        super().__init__()
        self.dims = dims
        self.frequencies = frequencies
        self.include_input = include_input
        self.output_dim = dims * (2 * frequencies + int(include_input))
        bands = (2.0 ** torch.arange(frequencies, dtype=torch.float64)) * math.pi
        self.register_buffer("bands", bands.float(), persistent=False)

    def forward(self, p: Tensor) -> Tensor:
        """Encodes values.

        Args:
            p: [P, dims] float.

        Returns:
            [P, output_dim], same dtype as p.
        """
        angles = p.unsqueeze(-2) * self.bands.to(p.dtype).unsqueeze(-1)  # [P, K, dims], one rounding
        # sin and cos through float64, rounded once: the correctly rounded float32 values (but for
        # ties closer than float64's error, vanishingly rare), where float32 sin and cos differ in
        # the last bit between libraries and devices.
        wide = angles.double()
        waves = torch.stack((wide.sin(), wide.cos()), dim=-2).to(p.dtype).flatten(1)  # [P, K * 2 * dims]
        return torch.cat((p, waves), dim=-1) if self.include_input else waves


class PlaneEncoding(nn.Module):
    """Multi-plane (xy, xt, yt) features of the deformable-2DGS predecessor.

    Each plane is sampled bilinearly with align_corners semantics: coordinate 0 hits the first
    texel centre and 1 the last (`_sample_plane` gives the float32 steps, bitstream_spec.md 11.2). Planes start uniform in [-1e-4, 1e-4] like the hash tables, so a
    zero-initialised head still starts at the identity deformation.

    Parameter count: F (R^2 + 2 R T); the defaults (R 64, T 16, F 8) give 49,152, against
    13,952 + 32,768 = 46,720 for the paper's 2D (F 2) and 3D (F 4) hash grids together. The
    planes spend their budget on a fixed 64 x 64 spatial grid, the hash grids on eight
    resolutions up to 274 vertices per axis, sharing entries by hashing.

    Attributes:
        xy: [F, R, R] plane indexed [f, y, x].
        xt: [F, T, R] plane indexed [f, t, x].
        yt: [F, T, R] plane indexed [f, t, y].
        output_dim: 3 * F, ordered xy, xt, yt.
    """

    def __init__(self, resolution: int = 64, time_resolution: int = 16, features: int = 8):
        super().__init__()
        self.features = features
        self.output_dim = 3 * features
        self.xy = nn.Parameter(_small_uniform(features, resolution, resolution))
        self.xt = nn.Parameter(_small_uniform(features, time_resolution, resolution))
        self.yt = nn.Parameter(_small_uniform(features, time_resolution, resolution))

    def forward(self, xyt: Tensor) -> Tensor:
        """Encodes space-time points.

        Args:
            xyt: [P, 3] (x, y, t) in [0, 1] (clamped).

        Returns:
            [P, 3 * features]: xy features, then xt, then yt.
        """
        x, y, t = xyt.detach().clamp(0.0, 1.0).unbind(-1)
        pairs = ((self.xy, x, y), (self.xt, x, t), (self.yt, y, t))
        return torch.cat([_sample_plane(plane, u, v) for plane, u, v in pairs], dim=-1)


def _small_uniform(*shape: int) -> Tensor:
    return torch.empty(*shape).uniform_(-_INIT_RANGE, _INIT_RANGE)


def _sample_plane(plane: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Bilinear lookup of [F, H, W] at u (along W) and v (along H), both [P] in [0, 1] -> [P, F].

    In float32, one rounding per operation (bitstream_spec.md 11.2)::

        x = u * (W - 1);  x0 = min(floor(x), W - 2);  fx = x - x0     (and y, y0, fy from v, H)
        top    = P[y0, x0] * (1 - fx) + P[y0, x0 + 1] * fx
        bottom = P[y0 + 1, x0] * (1 - fx) + P[y0 + 1, x0 + 1] * fx
        value  = top * (1 - fy) + bottom * fy

    Differentiable in the plane (not in u and v).
    """
    features, height, width = plane.shape
    x = u.to(plane.dtype) * float(width - 1)
    y = v.to(plane.dtype) * float(height - 1)
    x0 = x.floor().clamp(max=width - 2)
    y0 = y.floor().clamp(max=height - 2)
    fx, fy = x - x0, y - y0
    gx, gy = 1.0 - fx, 1.0 - fy
    flat = plane.reshape(features, height * width)
    corner = y0.long() * width + x0.long()  # [P]

    def texel(offset: int) -> Tensor:
        return flat.index_select(1, corner + offset)  # [F, P]

    top = texel(0) * gx + texel(1) * fx
    bottom = texel(width) * gx + texel(width + 1) * fx
    return (top * gy + bottom * fy).t()
