"""HashGrid on the CPU: fused numba kernels for the forward pass and the table gradient.

The torch path (`HashGrid.forward_torch`) spends most of its time dispatching many small
int64/float64 ops; these kernels do the same arithmetic in two fused passes:

    forward:   prange over blocks of BLOCK points: per level, pos -> vertex and weights ->
               2^d corners, features summed corner by corner into out[p, l * F + f]
    backward:  prange over levels (each owns its own slice of the table, so no two threads
               write the same entry): corner by corner, point by point,
               grad[(O_l + index) * F + f] += weight * grad_out[p, l * F + f]

The forward is bit-for-bit the torch path (and bitstream_spec.md 11.1): pos rounded once to
float32 from the float64 value scale * x + 0.5, weights multiplied in dimension order, corners
summed in corner order starting from corner 0's term, every product and sum rounded to float32.
So these kernels run without fastmath: contracting a multiply and an add into an FMA, or
reordering the sum, would change the decoder's output. The backward adds in the order torch's
`index_add_` does (corner-major, points in order within a corner), so its result does not
depend on the number of threads either.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; HashGrid falls back to torch
    numba = None

_UINT32_MASK = 0xFFFFFFFF


def available() -> bool:
    """Whether the kernels can run (numba importable)."""
    return numba is not None


BLOCK = 128
"""Points per task of the forward pass: long enough inner loops, enough tasks to share out."""

if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)
    _pjit = numba.njit(cache=True, nogil=True, parallel=True)

    @_jit
    def _locate(x, first, count, scale, primes, strides, dense, vertex_terms, factors):
        """Per point (first .. first + count - 1) and dim: both vertices' index terms and weights.

        vertex_terms[b, i, j] is the index term of point first + j's lower (b = 0) or upper
        (b = 1) vertex along dim i: `c * res^i` on a dense level, `c * prime_i` on a hashed
        one; factors[b, i, j] its weight factor, `1 - frac` or `frac`. A NaN coordinate gets
        vertex 0 and a NaN fraction, so every weight of the level is NaN as in the torch path
        and no undefined float-to-int conversion reaches an index.
        """
        dims = x.shape[1]
        for i in range(dims):
            multiplier = strides[i] if dense else primes[i]
            for j in range(count):
                v = x[first + j, i]
                # torch's clamp(0, 1), NaN kept: NaN fails both comparisons.
                if v < np.float32(0.0):
                    v = np.float32(0.0)
                elif v > np.float32(1.0):
                    v = np.float32(1.0)
                pos = np.float32(np.float64(scale) * np.float64(v) + 0.5)
                floor = np.floor(pos)
                frac = pos - floor
                lower = np.int64(floor) if pos == pos else np.int64(0)
                vertex_terms[0, i, j] = lower * multiplier
                vertex_terms[1, i, j] = (lower + 1) * multiplier
                factors[0, i, j] = np.float32(1.0) - frac
                factors[1, i, j] = frac

    @_jit
    def _corners(k, count, dense, table_size, vertex_terms, factors, index, weight):
        """index[j], weight[j]: corner k's table entry (within the level) and d-linear weight."""
        dims = vertex_terms.shape[1]
        mask = table_size - 1 if (table_size & (table_size - 1)) == 0 else -1
        b0 = k & 1
        for j in range(count):
            weight[j] = factors[b0, 0, j]
            index[j] = vertex_terms[b0, 0, j]
        for i in range(1, dims):
            b = (k >> i) & 1
            if dense:
                for j in range(count):
                    weight[j] = weight[j] * factors[b, i, j]
                    index[j] = index[j] + vertex_terms[b, i, j]
            else:
                for j in range(count):
                    weight[j] = weight[j] * factors[b, i, j]
                    index[j] = index[j] ^ vertex_terms[b, i, j]
        # (index & 0xFFFFFFFF) % table_size, as a mask for power-of-two tables (every hashed
        # level of a tcnn grid); the modulo is for the rest.
        if mask >= 0:
            for j in range(count):
                index[j] = index[j] & (_UINT32_MASK & mask)
        else:
            for j in range(count):
                index[j] = (index[j] & _UINT32_MASK) % table_size

    @_pjit
    def _forward(x, table, features, scales, strides, primes, dense, table_sizes, offsets, out):
        """out [P, L * F] = the grid's features of points x [P, d] (float32, unclamped)."""
        points, dims = x.shape
        levels = scales.shape[0]
        blocks = (points + BLOCK - 1) // BLOCK
        for block in numba.prange(blocks):
            first = block * BLOCK
            count = min(BLOCK, points - first)
            vertex_terms = np.empty((2, dims, BLOCK), np.int64)
            factors = np.empty((2, dims, BLOCK), np.float32)
            index = np.empty(BLOCK, np.int64)
            weight = np.empty(BLOCK, np.float32)
            acc = np.empty((features, BLOCK), np.float32)
            for level in range(levels):
                _locate(x, first, count, scales[level], primes, strides[level], dense[level], vertex_terms, factors)
                base = offsets[level]
                for k in range(1 << dims):
                    _corners(k, count, dense[level], table_sizes[level], vertex_terms, factors, index, weight)
                    for f in range(features):
                        if k == 0:
                            for j in range(count):
                                acc[f, j] = weight[j] * table[(base + index[j]) * features + f]
                        else:
                            for j in range(count):
                                acc[f, j] = acc[f, j] + weight[j] * table[(base + index[j]) * features + f]
                for j in range(count):
                    for f in range(features):
                        out[first + j, level * features + f] = acc[f, j]

    @_pjit
    def _backward(x, grad_out, features, scales, strides, primes, dense, table_sizes, offsets, grad):
        """grad [E * F] (zeroed by the caller) += the table gradient of grad_out [P, L * F]."""
        points, dims = x.shape
        levels = scales.shape[0]
        for level in numba.prange(levels):
            vertex_terms = np.empty((2, dims, points), np.int64)
            factors = np.empty((2, dims, points), np.float32)
            index = np.empty(points, np.int64)
            weight = np.empty(points, np.float32)
            _locate(x, 0, points, scales[level], primes, strides[level], dense[level], vertex_terms, factors)
            base = offsets[level]
            # The level's columns of grad_out, contiguous: the 2^d corner passes read them again.
            upstream = np.empty((points, features), np.float32)
            for j in range(points):
                for f in range(features):
                    upstream[j, f] = grad_out[j, level * features + f]
            for k in range(1 << dims):
                _corners(k, points, dense[level], table_sizes[level], vertex_terms, factors, index, weight)
                for j in range(points):
                    row = (base + index[j]) * features
                    for f in range(features):
                        grad[row + f] += weight[j] * upstream[j, f]


class GridGeometry:
    """A HashGrid's per-level constants as the arrays the kernels read."""

    def __init__(self, levels, dims: int, features: int, primes: tuple[int, ...]):
        self.dims = dims
        self.features = features
        self.scales = np.array([lv.scale for lv in levels], dtype=np.float32)
        self.strides = np.array([[lv.resolution**i for i in range(dims)] for lv in levels], dtype=np.int64)
        self.primes = np.array(primes[:dims], dtype=np.int64)
        self.dense = np.array([lv.dense for lv in levels], dtype=np.bool_)
        self.table_sizes = np.array([lv.table_size for lv in levels], dtype=np.int64)
        self.offsets = np.array([lv.offset for lv in levels], dtype=np.int64)
        self.output_dim = len(levels) * features

    def arrays(self) -> tuple:
        return (self.features, self.scales, self.strides, self.primes, self.dense, self.table_sizes, self.offsets)


class HashGridFunction(torch.autograd.Function):
    """HashGrid's encoding of CPU float32 points, differentiable in the flat table only."""

    @staticmethod
    def forward(ctx, x: Tensor, params: Tensor, geometry: GridGeometry) -> Tensor:
        # x: [P, d] float32 (clamped in the kernel); params: [E * F] float32. Returns [P, L * F].
        x = x.detach().contiguous()
        out = torch.empty(x.shape[0], geometry.output_dim, dtype=torch.float32)
        if x.shape[0]:
            _forward(x.numpy(), params.detach().contiguous().numpy(), *geometry.arrays(), out.numpy())
        ctx.save_for_backward(x)
        ctx.geometry = geometry
        ctx.entries = params.numel()
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        (x,) = ctx.saved_tensors
        grad = torch.zeros(ctx.entries, dtype=torch.float32)
        if x.shape[0]:
            grad_out = grad_out.to(torch.float32).contiguous()
            _backward(x.numpy(), grad_out.numpy(), *ctx.geometry.arrays(), grad.numpy())
        return None, grad, None


def encode(x: Tensor, params: Tensor, geometry: GridGeometry) -> Tensor:
    """The grid's features of `x` [P, d] (any float dtype, CPU) with table `params` (CPU float32).

    Returns:
        [P, L * F] float32, equal bit for bit to the torch path of `HashGrid.forward`.
    """
    return HashGridFunction.apply(x.detach().float(), params, geometry)
