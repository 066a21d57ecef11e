"""CPU backend: numba kernels for the sum renderer, forward and backward.

Why numba: it compiles parallel loops at first use in a few seconds, caches them on disk,
needs no C++ toolchain on the user's machine and no build step at install time, and its
kernels read and write the torch tensors' memory directly through numpy views.

Work is split so no two threads write the same memory and nothing of size
(pixels x Gaussians) exists:

    forward:   Gaussians --bin by row strip--> strip lists --prange over (image, strip)-->
               each strip sums its Gaussians' ellipses, row span by row span, into its own rows
    backward:  prange over (image, Gaussian): each Gaussian walks its own ellipse, reading
               grad_image, and writes its 8 partial sums (colour 3, centre 2, conic 3)

Each row of an ellipse is visited only between the roots of s(dx) = CUTOFF (widened by a
sliver, the s <= CUTOFF test decides), so the work is close to the ellipse's area.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from . import BackendUnavailable
from .weight import COEFFICIENTS, CUTOFF, CUTOFF32, E0, U0

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this keeps the error readable
    numba = None

LANES = 8
"""Partial sums per quantity in a row of the backward pass (see _gradient_row)."""
STRIP = 8
"""Rows per strip of the forward pass; small strips balance threads, large ones cut re-binning."""

_MARGIN = 0.05
"""Pixels by which row and column ranges reach past the exact ellipse, so float32 rounding of s
near the cut-off can never drop a pixel the s <= CUTOFF test would keep."""

_C5, _C4, _C3, _C2, _C1 = COEFFICIENTS


def check(device: torch.device) -> None:
    """Raises BackendUnavailable unless numba is importable and `device` is the CPU."""
    if numba is None:
        raise BackendUnavailable("render backend 'cpu' needs the numba package: pip install numba")
    if device.type != "cpu":
        raise BackendUnavailable(f"render backend 'cpu' renders CPU tensors, got a tensor on {device}")


if numba is not None:
    # No fast-math anywhere: the forward pass is normative (every float32 operation rounded once,
    # in the written order, no fused multiply-add), and the backward pass must round the same in a
    # freshly compiled and a cache-loaded kernel. The per-row loops vectorise without reassociation
    # because their columns are independent.
    _jit = numba.njit(cache=True, nogil=True)
    _pjit = numba.njit(cache=True, nogil=True, parallel=True)

    @_jit
    def _clip(low, high, size):
        """Integers [first, last] in [low, high] and in 0..size - 1; empty (1, 0) when there are
        none or a bound is NaN.

        The bounds are clipped as floats before any conversion: int() of a NaN, infinite or huge
        float is undefined in compiled code (x86 gives -2^63), and such a row or column index
        would write out of bounds.
        """
        first, last = np.ceil(low), np.floor(high)
        # Written so that every comparison with NaN lands on "empty".
        if not (first <= last and first <= size - 1.0 and last >= 0.0):
            return 1, 0
        return int(max(first, 0.0)), int(min(last, size - 1.0))

    @_jit
    def _row_range(cy, ey, height):
        """Rows whose centres can lie inside the ellipse, clipped: [first, last] (first > last: none)."""
        return _clip(cy - ey - 0.5 - _MARGIN, cy + ey - 0.5 + _MARGIN, height)

    @_jit
    def _skipped(centres, extents, bi, n):
        """Whether Gaussian n of image bi is left out: a negative or NaN extent, or a non-finite centre."""
        ex, ey = extents[bi, n, 0], extents[bi, n, 1]
        return not (ex >= 0.0 and ey >= 0.0 and np.isfinite(centres[bi, n, 0]) and np.isfinite(centres[bi, n, 1]))

    @_jit
    def _span(cx, dy, a, b, c, width):
        """Columns [first, last] of row offset dy where s <= CUTOFF may hold (empty: first > last)."""
        # 0.5 a dx^2 + b dy dx + 0.5 c dy^2 - CUTOFF <= 0  <=>  dx between the roots (float64 here).
        a, half_b = np.float64(a), np.float64(b) * np.float64(dy)
        disc = half_b * half_b - a * (np.float64(c) * np.float64(dy) ** 2 - 2.0 * CUTOFF)
        if not disc >= 0.0:  # negative, or NaN from non-finite inputs
            return 1, 0
        root = math.sqrt(disc)
        lo = (-half_b - root) / a
        hi = (-half_b + root) / a
        return _clip(cx + lo - 0.5 - _MARGIN, cx + hi - 0.5 + _MARGIN, width)

    @_jit
    def _weight(s):
        """The normative weight w(s) ~ exp(-s), 0 where s > CUTOFF (weight.py gives the text).

        Plain float32 arithmetic, so the row loops vectorise (a libm call would not).
        """
        u = min(max(s, np.float32(0.0)), np.float32(CUTOFF32)) * np.float32(0.0625) - np.float32(U0)
        p = np.float32(_C5)
        p = p * u + np.float32(_C4)
        p = p * u + np.float32(_C3)
        p = p * u + np.float32(_C2)
        p = p * u + np.float32(_C1)
        p = (p * u + np.float32(1.0)) * np.float32(E0)
        p = p * p
        p = p * p
        p = p * p
        p = p * p
        return p if s <= np.float32(CUTOFF32) else np.float32(0.0)

    @_jit
    def _strip_span(centres, extents, bi, n, height):
        """Strips [first, last] that Gaussian n of image bi touches (first > last: none)."""
        if _skipped(centres, extents, bi, n):
            return 1, 0
        first, last = _row_range(centres[bi, n, 1], extents[bi, n, 1], height)
        if first > last:
            return 1, 0
        return first // STRIP, last // STRIP

    @_jit
    def _bin_strips(centres, extents, height, n_strips):
        """Lists, per (image, strip), the Gaussians whose row range meets the strip (CSR layout)."""
        batch, count = centres.shape[0], centres.shape[1]
        counts = np.zeros(batch * n_strips + 1, np.int64)
        for bi in range(batch):
            for n in range(count):
                first, last = _strip_span(centres, extents, bi, n, height)
                for k in range(first, last + 1):
                    counts[bi * n_strips + k + 1] += 1
        offsets = np.cumsum(counts)
        members = np.empty(offsets[-1], np.int32)
        fill = offsets[:-1].copy()
        for bi in range(batch):
            for n in range(count):
                first, last = _strip_span(centres, extents, bi, n, height)
                for k in range(first, last + 1):
                    members[fill[bi * n_strips + k]] = n
                    fill[bi * n_strips + k] += 1
        return offsets, members

    @_pjit
    def _forward(centres, conics, colors, extents, planes):
        """Sums Gaussians into planes [B, 3, H, W] (zeroed by the caller)."""
        batch, height, width = planes.shape[0], planes.shape[2], planes.shape[3]
        n_strips = (height + STRIP - 1) // STRIP
        offsets, members = _bin_strips(centres, extents, height, n_strips)
        for key in numba.prange(batch * n_strips):
            bi, strip = key // n_strips, key % n_strips
            row0, row1 = strip * STRIP, min(strip * STRIP + STRIP, height)
            for m in range(offsets[key], offsets[key + 1]):
                n = members[m]
                cx, cy = centres[bi, n, 0], centres[bi, n, 1]
                a, b, c = conics[bi, n, 0], conics[bi, n, 1], conics[bi, n, 2]
                first, last = _row_range(cy, extents[bi, n, 1], height)
                for i in range(max(first, row0), min(last + 1, row1)):
                    dy = np.float32(i + 0.5) - cy
                    j0, j1 = _span(cx, dy, a, b, c, width)
                    _accumulate_row(
                        planes[bi, 0, i], planes[bi, 1, i], planes[bi, 2, i], j0, j1, cx, dy, a, b, c,
                        colors[bi, n, 0], colors[bi, n, 1], colors[bi, n, 2],
                    )

    @_jit
    def _accumulate_row(red, green, blue, j0, j1, cx, dy, a, b, c, cr, cg, cb):
        """Adds one Gaussian to columns j0..j1 of a row: pixel += colour * w(s), in float32."""
        # Slices and an int32 column counter let LLVM prove the indices non-negative and vectorise.
        red, green, blue = red[j0 : j1 + 1], green[j0 : j1 + 1], blue[j0 : j1 + 1]
        for k in range(red.shape[0]):
            # j + 0.5 is exact in float32 (j < 2^15), so dx is rounded once, as the spec has it.
            dx = (np.float32(np.int32(j0) + np.int32(k)) + np.float32(0.5)) - cx
            w = _weight(np.float32(0.5) * (a * dx * dx + c * dy * dy) + b * dx * dy)
            red[k] += cr * w
            green[k] += cg * w
            blue[k] += cb * w

    @_pjit
    def _backward(centres, conics, colors, extents, grad_planes, grads):
        """Per-Gaussian gradients [B, N, 8] = (colour 3, centre 2, conic 3) from grad_planes [B, 3, H, W]."""
        batch, count = centres.shape[0], centres.shape[1]
        height, width = grad_planes.shape[2], grad_planes.shape[3]
        for key in numba.prange(batch * count):
            bi, n = key // count, key % count
            if _skipped(centres, extents, bi, n):
                continue
            cx, cy = centres[bi, n, 0], centres[bi, n, 1]
            a, b, c = conics[bi, n, 0], conics[bi, n, 1], conics[bi, n, 2]
            out = grads[bi, n]
            first, last = _row_range(cy, extents[bi, n, 1], height)
            for i in range(first, last + 1):
                dy = np.float32(i + 0.5) - cy
                j0, j1 = _span(cx, dy, a, b, c, width)
                _gradient_row(
                    grad_planes[bi, 0, i], grad_planes[bi, 1, i], grad_planes[bi, 2, i], j0, j1, cx, dy, a, b, c,
                    colors[bi, n, 0], colors[bi, n, 1], colors[bi, n, 2], out,
                )

    @_jit
    def _gradient_row(gred, ggreen, gblue, j0, j1, cx, dy, a, b, c, cr, cg, cb, out):
        # Eight partial sums per quantity, one per column modulo LANES, added in a fixed order at
        # the end: the lanes are independent, so LLVM vectorises across them without reassociating
        # (which made freshly compiled and cache-loaded kernels round differently).
        acc = np.zeros((8, LANES), np.float32)
        gred, ggreen, gblue = gred[j0 : j1 + 1], ggreen[j0 : j1 + 1], gblue[j0 : j1 + 1]
        cyy = c * dy * dy
        for k0 in range(0, gred.shape[0], LANES):
            for lane in range(min(LANES, gred.shape[0] - k0)):
                k = k0 + lane
                dx = (np.float32(np.int32(j0) + np.int32(k)) + np.float32(0.5)) - cx
                w = _weight(np.float32(0.5) * (a * dx * dx + cyy) + b * dx * dy)
                gr, gg, gb = gred[k], ggreen[k], gblue[k]
                # dL/ds = -w dL/dw; the centre moves against ds/dd since d = p - centre.
                gs = -w * (gr * cr + gg * cg + gb * cb)
                acc[0, lane] += w * gr
                acc[1, lane] += w * gg
                acc[2, lane] += w * gb
                acc[3, lane] -= gs * (a * dx + b * dy)
                acc[4, lane] -= gs * (b * dx + c * dy)
                acc[5, lane] += gs * np.float32(0.5) * dx * dx
                acc[6, lane] += gs * dx * dy
                acc[7, lane] += gs * np.float32(0.5) * dy * dy
        for q in range(8):
            total = np.float32(0.0)
            for lane in range(LANES):
                total += acc[q, lane]
            out[q] += total


class _NumbaKernel:
    """KernelBackend over the numba kernels (see kernel.py for the contract)."""

    def forward(self, centres, conics, colors, extents, height, width) -> Tensor:
        planes = torch.zeros(centres.shape[0], 3, height, width, dtype=torch.float32)
        if centres.shape[1]:
            _forward(*_numpy(centres, conics, colors, extents), planes.numpy())
        return planes.permute(0, 2, 3, 1).contiguous()

    def backward(self, centres, conics, colors, extents, height, width, grad_image):
        batch, count = centres.shape[:2]
        grads = torch.zeros(batch, count, 8, dtype=torch.float32)
        if count:
            _backward(*_numpy(centres, conics, colors, extents, grad_image.permute(0, 3, 1, 2)), grads.numpy())
        return grads[..., 3:5].contiguous(), grads[..., 5:8].contiguous(), grads[..., 0:3].contiguous()


def _numpy(*tensors: Tensor) -> list[np.ndarray]:
    return [t.detach().contiguous().numpy() for t in tensors]


KERNEL = _NumbaKernel()
