"""Triton GPU backend of the sum renderer: tile binning on the GPU, then one program per tile.

The image is cut into TILE x TILE pixel tiles (per image of the batch). Every Gaussian is
paired with each tile its cut-off box touches; the pairs, sorted by tile, give each tile the
list of its Gaussians, which the forward and backward kernels walk in chunks::

    centres, extents [B*N, 2]
        |
        v  _rect_kernel: tile rectangle of each Gaussian's box, tile count (0: skipped / off-frame)
    rects [B*N, 3], counts [B*N]
        |
        v  cumsum; the one host sync of a call reads the pair total P
        v  repeat_interleave -> owning Gaussian of each pair
        v  _pair_kernel: key = b * tiles_per_image + tile
    keys [P], pair_gauss [P]
        |
        v  stable sort by key (Gaussian order kept within a tile: bit-reproducible sums)
        v  searchsorted -> ranges [B*T + 1]; tile t owns gauss[ranges[t]:ranges[t + 1]]
    gauss [P], ranges [B*T + 1]
        |
        +--> _forward_kernel   one program per tile: its Gaussians one after another, in list
        |                      order, each adding colour * w to its 256 pixels -> image [B, H, W, 3]
        |
        +--> _backward_kernel  one program per tile: [256, BLOCK_G] weights per chunk,
                               summed over pixels -> atomic adds into grads [B*N, 8]

Forward and backward each bin (the backward receives the same inputs and re-bins rather
than keep state between calls). Nothing of size pixels x Gaussians is ever materialised.
The forward sums each pixel's terms in ascending Gaussian order with the normative weight
(weight.py), so it reproduces the reference bit for bit; the backward's sums use atomics.

The kernels are compiled without FMA contraction so that s, and with it the s <= CUTOFF
test, is rounded exactly as in the reference; otherwise a pixel on the cut-off ellipse
could flip between weight 0 and 1/255.

With TRITON_INTERPRET=1 the same kernels run in Triton's interpreter on CPU tensors (slow;
for tests). Triton reads the variable when it is imported, so it must be set before that.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

import torch
from torch import Tensor

from . import BackendUnavailable
from .weight import COEFFICIENTS, CUTOFF32, E0, U0

try:
    import triton
    import triton.language as tl
except ImportError:  # check() reports it; the kernels stay plain, never-called functions
    triton = None
    tl = None

_jit = triton.jit if triton is not None else (lambda fn: fn)

__all__ = ["check", "KERNEL", "TritonKernels", "TILE"]

TILE = 16
"""Tile side in pixels: a program covers TILE * TILE = 256 pixels."""

BACKWARD_BLOCK_G = 16
"""Gaussians per backward chunk: a [256, 16] block, 16 pixels x 1 Gaussian per thread."""

# Forward: 4 warps give each thread 2 pixels, so each Gaussian's parameters (broadcast to every
# thread) are loaded once per 2 pixels. Backward: 8 warps keep the per-thread pixel data
# (position and dL/dimage of 16 pixels) small enough for registers.
_FORWARD_WARPS = 4
_BACKWARD_WARPS = 8
_RECT_BLOCK = 256
_PAIR_BLOCK = 1024

_CUTOFF32 = CUTOFF32
"""The cut-off rounded to float32, the precision the reference compares s in."""

# The weight polynomial's constants, as compile-time constants of the kernels.
_constant = tl.constexpr if tl is not None else float
_U0, _E0 = _constant(U0), _constant(E0)
_C5, _C4, _C3, _C2, _C1 = (_constant(c) for c in COEFFICIENTS)

_MAX_INT32 = 2**31 - 1


def check(device: torch.device) -> None:
    """Raises BackendUnavailable when the Triton backend cannot run on `device` here."""
    if triton is None:
        raise BackendUnavailable(
            "render backend 'triton' needs the triton package (it ships with CUDA builds of torch)"
        )
    cpu = torch.device(device).type != "cuda"
    if cpu and os.environ.get("TRITON_INTERPRET") != "1":
        raise BackendUnavailable(
            "render backend 'triton' needs a CUDA device; on CPU set TRITON_INTERPRET=1 (slow, for tests)"
        )
    # Triton fixes interpreter or compiler per function when it is defined, from the variable as it was then.
    interpreted = _interpreted(_forward_kernel)
    if interpreted != _interpreted(tl.cdiv) or (cpu and not interpreted):
        raise BackendUnavailable(
            "render backend 'triton' found TRITON_INTERPRET changed after triton was imported; set it before that"
        )


class TritonKernels:
    """KernelBackend (see kernel.py) running the Triton kernels of this module."""

    def forward(
        self, centres: Tensor, conics: Tensor, colors: Tensor, extents: Tensor, height: int, width: int
    ) -> Tensor:
        """Unclamped sum render.

        Args:
            centres: [B, N, 2] float32 pixel-space centres (x, y).
            conics: [B, N, 3] float32 (a, b, c) of Sigma^-1.
            colors: [B, N, 3] float32.
            extents: [B, N, 2] float32 half-sizes of the cut-off box; negative: skip the Gaussian.
            height: H.
            width: W.

        Returns:
            [B, H, W, 3] float32 image, bit-reproducible run to run.
        """
        batch = centres.shape[0]
        with _on_device(centres.device):
            bins = _bin(centres, extents, height, width)
            if bins is None:
                return centres.new_zeros(batch, height, width, 3)
            # Every pixel belongs to some tile and every tile's program writes all its pixels.
            image = centres.new_empty(batch, height, width, 3)
            _forward_kernel[(bins.tiles,)](
                centres.contiguous(), conics.contiguous(), colors.contiguous(), bins.gauss, bins.ranges, image,
                height, width, bins.tiles_x, bins.tiles_per_image,
                CUTOFF=_CUTOFF32, TILE=TILE,
                num_warps=_FORWARD_WARPS, enable_fp_fusion=False,
            )  # fmt: skip
        return image

    def backward(
        self,
        centres: Tensor,
        conics: Tensor,
        colors: Tensor,
        extents: Tensor,
        height: int,
        width: int,
        grad_image: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Gradients of a loss through forward(), given its gradient in the image.

        Args:
            centres, conics, colors, extents, height, width: as for forward().
            grad_image: [B, H, W, 3] float32 dL/dimage.

        Returns:
            grad_centres [B, N, 2], grad_conics [B, N, 3], grad_colors [B, N, 3] (float32; summed
            with float atomics, so the last bits may vary run to run). Skipped Gaussians get 0.
        """
        batch, count = centres.shape[:2]
        grads = centres.new_zeros(batch * count, 8)
        with _on_device(centres.device):
            bins = _bin(centres, extents, height, width)
            if bins is not None:
                _backward_kernel[(bins.tiles,)](
                    centres.contiguous(), conics.contiguous(), colors.contiguous(), bins.gauss, bins.ranges,
                    grad_image.contiguous(), grads, height, width, bins.tiles_x, bins.tiles_per_image,
                    CUTOFF=_CUTOFF32, TILE=TILE, BLOCK_G=BACKWARD_BLOCK_G,
                    num_warps=_BACKWARD_WARPS, enable_fp_fusion=False,
                )  # fmt: skip
        grads = grads.view(batch, count, 8)
        return grads[..., 0:2], grads[..., 2:5], grads[..., 5:8]


KERNEL = TritonKernels()


class _Bins(NamedTuple):
    """Gaussians per tile, for all B images; tile ids are b * tiles_per_image + ty * tiles_x + tx."""

    gauss: Tensor  # [P] int32 flat Gaussian index b * N + n, grouped by tile, ascending within a tile
    ranges: Tensor  # [B * tiles_per_image + 1] int32: tile t owns gauss[ranges[t]:ranges[t + 1]]
    tiles: int  # B * tiles_per_image
    tiles_x: int
    tiles_per_image: int


def _bin(centres: Tensor, extents: Tensor, height: int, width: int) -> _Bins | None:
    """Lists, for every tile of every image, the Gaussians whose cut-off box touches it.

    Launches on the current CUDA device (the caller makes it the tensors' one).

    Args:
        centres: [B, N, 2] float32 pixel-space centres.
        extents: [B, N, 2] float32 box half-sizes; negative: the Gaussian is left out.
        height: H.
        width: W.

    Returns:
        _Bins, or None when no Gaussian touches any tile (nothing to launch).
    """
    batch, count = centres.shape[:2]
    total = batch * count
    if total == 0:
        return None
    if total > _MAX_INT32 // 8:  # the kernels index per-Gaussian rows with int32 offsets
        raise ValueError(f"render backend 'triton' takes at most {_MAX_INT32 // 8} Gaussians per call, got {total}")
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    tiles_per_image = tiles_x * tiles_y
    tiles = batch * tiles_per_image
    device = centres.device

    rects = torch.empty(total, 3, dtype=torch.int32, device=device)
    counts = torch.empty(total, dtype=torch.int32, device=device)
    _rect_kernel[(triton.cdiv(total, _RECT_BLOCK),)](
        centres.contiguous(), extents.contiguous(), rects, counts, total, height, width, BLOCK=_RECT_BLOCK, TILE=TILE
    )
    ends = torch.cumsum(counts, 0)  # int64: the sum may not fit int32
    pairs = int(ends[-1])  # the one host sync: sizes the pair buffers
    if pairs == 0:
        return None
    if pairs > _MAX_INT32:
        raise ValueError(
            f"render backend 'triton': {pairs} (tile, Gaussian) pairs exceed {_MAX_INT32}; split the batch"
        )

    pair_gauss = torch.repeat_interleave(counts, output_size=pairs)  # [P] int32, ascending
    key_dtype = torch.int32 if tiles <= _MAX_INT32 else torch.int64
    keys = torch.empty(pairs, dtype=key_dtype, device=device)
    _pair_kernel[(triton.cdiv(pairs, _PAIR_BLOCK),)](
        pair_gauss, ends, counts, rects, keys, pairs, count, tiles_x, tiles_per_image, BLOCK=_PAIR_BLOCK
    )
    # Stable: pairs arrive in Gaussian order, so each tile lists its Gaussians in a fixed order.
    keys, order = torch.sort(keys, stable=True)
    gauss = pair_gauss[order]
    bounds = torch.arange(tiles + 1, dtype=key_dtype, device=device)
    ranges = torch.searchsorted(keys, bounds, out_int32=True)
    return _Bins(gauss, ranges, tiles, tiles_x, tiles_per_image)


def _interpreted(fn) -> bool:
    """Whether a @triton.jit function was wrapped for the interpreter (decided when it was defined)."""
    return not isinstance(fn, triton.runtime.jit.JITFunction)


def _on_device(device: torch.device) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device; this makes it the tensors' one."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------
# Kernels.


@_jit
def _rect_kernel(centres_ptr, extents_ptr, rects_ptr, counts_ptr, total, height, width,
                 BLOCK: tl.constexpr, TILE: tl.constexpr):  # fmt: skip
    """Per Gaussian: first tile column and row and tile-rectangle width, and its tile count.

    centres_ptr, extents_ptr: [total, 2] float32. rects_ptr: [total, 3] int32 out (tx0, ty0, tiles
    wide). counts_ptr: [total] int32 out, 0 for skipped Gaussians and boxes wholly off the frame.
    """
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    x = tl.load(centres_ptr + 2 * offs, mask=mask, other=0.0)
    y = tl.load(centres_ptr + 2 * offs + 1, mask=mask, other=0.0)
    ex = tl.load(extents_ptr + 2 * offs, mask=mask, other=-1.0)
    ey = tl.load(extents_ptr + 2 * offs + 1, mask=mask, other=-1.0)
    # Pixel j's centre j + 0.5 lies in [x - ex, x + ex] for ceil(x - ex - 0.5) <= j <= floor(x + ex - 0.5);
    # one more pixel on each side absorbs rounding (the s <= CUTOFF test decides inside).
    col0 = tl.ceil(x - ex - 0.5) - 1.0
    col1 = tl.floor(x + ex - 0.5) + 1.0
    row0 = tl.ceil(y - ey - 0.5) - 1.0
    row1 = tl.floor(y + ey - 0.5) + 1.0
    # Comparisons with NaN are false, so NaN extents skip the Gaussian and NaN or infinite centres
    # count as off the frame (x = inf gives col0 = inf or NaN, x = -inf col1 = -inf or NaN).
    hit = (ex >= 0.0) & (ey >= 0.0) & (col1 >= 0.0) & (col0 <= width - 1.0) & (row1 >= 0.0) & (row0 <= height - 1.0)
    # Clip to the frame in float (huge boxes must not overflow int32), then to tiles.
    tx0 = tl.maximum(tl.where(hit, col0, 0.0), 0.0).to(tl.int32) // TILE
    tx1 = tl.minimum(tl.where(hit, col1, 0.0), width - 1.0).to(tl.int32) // TILE
    ty0 = tl.maximum(tl.where(hit, row0, 0.0), 0.0).to(tl.int32) // TILE
    ty1 = tl.minimum(tl.where(hit, row1, 0.0), height - 1.0).to(tl.int32) // TILE
    wide = tx1 - tx0 + 1
    tl.store(rects_ptr + 3 * offs, tx0, mask=mask)
    tl.store(rects_ptr + 3 * offs + 1, ty0, mask=mask)
    tl.store(rects_ptr + 3 * offs + 2, wide, mask=mask)
    tl.store(counts_ptr + offs, tl.where(hit, wide * (ty1 - ty0 + 1), 0), mask=mask)


@_jit
def _pair_kernel(pair_gauss_ptr, ends_ptr, counts_ptr, rects_ptr, keys_ptr, pairs, count, tiles_x,
                 tiles_per_image, BLOCK: tl.constexpr):  # fmt: skip
    """Per (tile, Gaussian) pair: its sort key, the global tile id b * tiles_per_image + tile.

    pair_gauss_ptr: [pairs] int32 owning Gaussian (flat b * count + n), each repeated over its
    tiles. ends_ptr: [B * count] int64 inclusive cumsum of counts_ptr. rects_ptr: [B * count, 3]
    int32 from _rect_kernel. keys_ptr: [pairs] int32 or int64 out.
    """
    p = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = p < pairs
    g = tl.load(pair_gauss_ptr + p, mask=mask, other=0)
    # The pair's rank among its Gaussian's tiles, walked row by row over the tile rectangle.
    rank = p - (tl.load(ends_ptr + g, mask=mask, other=0) - tl.load(counts_ptr + g, mask=mask, other=0))
    tx0 = tl.load(rects_ptr + 3 * g, mask=mask, other=0)
    ty0 = tl.load(rects_ptr + 3 * g + 1, mask=mask, other=0)
    wide = tl.load(rects_ptr + 3 * g + 2, mask=mask, other=1)
    row = rank // wide
    col = rank - row * wide
    batch = (g // count).to(tl.int64)
    key = batch * tiles_per_image + (ty0 + row) * tiles_x + (tx0 + col)
    tl.store(keys_ptr + p, key.to(keys_ptr.dtype.element_ty), mask=mask)


@_jit
def _forward_kernel(centres_ptr, conics_ptr, colors_ptr, gauss_ptr, ranges_ptr, image_ptr,
                    height, width, tiles_x, tiles_per_image,
                    CUTOFF: tl.constexpr, TILE: tl.constexpr):  # fmt: skip
    """One program per tile: image[pixel] = sum over the tile's Gaussians of colour * weight.

    centres_ptr [B*N, 2], conics_ptr [B*N, 3], colors_ptr [B*N, 3] float32; gauss_ptr, ranges_ptr
    from _bin; image_ptr [B, H, W, 3] float32 out (every pixel of the tile written).
    """
    tile = tl.program_id(0)
    batch, row, col, px, py, start, end = _tile_pixels(tile, ranges_ptr, tiles_x, tiles_per_image, TILE)

    red = tl.zeros([TILE * TILE], dtype=tl.float32)
    green = tl.zeros([TILE * TILE], dtype=tl.float32)
    blue = tl.zeros([TILE * TILE], dtype=tl.float32)
    # One Gaussian at a time, in the tile's list order (ascending index): every pixel's sum is the
    # spec's, term by term, so this backend matches the reference bit for bit.
    for k in range(start, end):
        g = tl.load(gauss_ptr + k).to(tl.int64)
        x = tl.load(centres_ptr + 2 * g)
        y = tl.load(centres_ptr + 2 * g + 1)
        a = tl.load(conics_ptr + 3 * g)
        b = tl.load(conics_ptr + 3 * g + 1)
        c = tl.load(conics_ptr + 3 * g + 2)
        dx = px - x
        dy = py - y
        # Same operation order as the reference (and no FMA), so s and the cut-off test agree bit for bit.
        s = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        w = _weight(s, CUTOFF)
        red += w * tl.load(colors_ptr + 3 * g)
        green += w * tl.load(colors_ptr + 3 * g + 1)
        blue += w * tl.load(colors_ptr + 3 * g + 2)

    in_image = (row < height) & (col < width)
    out = image_ptr + batch.to(tl.int64) * height * width * 3 + (row * width + col).to(tl.int64) * 3
    tl.store(out, red, mask=in_image)
    tl.store(out + 1, green, mask=in_image)
    tl.store(out + 2, blue, mask=in_image)


@_jit
def _backward_kernel(centres_ptr, conics_ptr, colors_ptr, gauss_ptr, ranges_ptr, grad_image_ptr, grads_ptr,
                     height, width, tiles_x, tiles_per_image,
                     CUTOFF: tl.constexpr, TILE: tl.constexpr, BLOCK_G: tl.constexpr):  # fmt: skip
    """One program per tile: each of its Gaussians' gradient, summed over the tile's pixels.

    With G = dL/dimage at a pixel and v = -dL/ds = w * dot(G, colour):
        dL/dcolour = w G,  dL/dx = v (a dx + b dy),  dL/dy = v (b dx + c dy),
        dL/da = -v dx^2 / 2,  dL/db = -v dx dy,  dL/dc = -v dy^2 / 2.
    grads_ptr: [B*N, 8] float32 (x, y, a, b, c, r, g, b), accumulated with atomic adds because a
    Gaussian spans several tiles. Other pointers as in _forward_kernel; grad_image_ptr [B, H, W, 3].
    """
    tile = tl.program_id(0)
    batch, row, col, px, py, start, end = _tile_pixels(tile, ranges_ptr, tiles_x, tiles_per_image, TILE)

    # Pixels past the frame's edge get G = 0, which zeroes all their terms.
    in_image = (row < height) & (col < width)
    src = grad_image_ptr + batch.to(tl.int64) * height * width * 3 + (row * width + col).to(tl.int64) * 3
    g_red = tl.load(src, mask=in_image, other=0.0)
    g_green = tl.load(src + 1, mask=in_image, other=0.0)
    g_blue = tl.load(src + 2, mask=in_image, other=0.0)

    for first in range(start, end, BLOCK_G):
        live, g, x, y, a, b, c, cr, cg, cb = _load_chunk(
            centres_ptr, conics_ptr, colors_ptr, gauss_ptr, first, end, BLOCK_G
        )
        # [pixels, BLOCK_G]: Gaussians along the fast axis, so the sums over pixels are mostly in-thread.
        dx = px[:, None] - x[None, :]
        dy = py[:, None] - y[None, :]
        s = 0.5 * (a[None, :] * dx * dx + c[None, :] * dy * dy) + b[None, :] * dx * dy
        inside = (s <= CUTOFF) & live[None, :]
        w = tl.where(inside, _weight(s, CUTOFF), 0.0)
        v = w * (g_red[:, None] * cr[None, :] + g_green[:, None] * cg[None, :] + g_blue[:, None] * cb[None, :])
        # Zero offsets outside the cut-off: 0 * (huge a * dx) would otherwise risk inf * 0 = NaN.
        dx = tl.where(inside, dx, 0.0)
        dy = tl.where(inside, dy, 0.0)

        dst = grads_ptr + 8 * g
        tl.atomic_add(dst, tl.sum(v * (a[None, :] * dx + b[None, :] * dy), axis=0), mask=live, sem="relaxed")
        tl.atomic_add(dst + 1, tl.sum(v * (b[None, :] * dx + c[None, :] * dy), axis=0), mask=live, sem="relaxed")
        tl.atomic_add(dst + 2, -0.5 * tl.sum(v * dx * dx, axis=0), mask=live, sem="relaxed")
        tl.atomic_add(dst + 3, -tl.sum(v * dx * dy, axis=0), mask=live, sem="relaxed")
        tl.atomic_add(dst + 4, -0.5 * tl.sum(v * dy * dy, axis=0), mask=live, sem="relaxed")
        tl.atomic_add(dst + 5, tl.sum(w * g_red[:, None], axis=0), mask=live, sem="relaxed")
        tl.atomic_add(dst + 6, tl.sum(w * g_green[:, None], axis=0), mask=live, sem="relaxed")
        tl.atomic_add(dst + 7, tl.sum(w * g_blue[:, None], axis=0), mask=live, sem="relaxed")


@_jit
def _weight(s, CUTOFF: tl.constexpr):
    """The normative weight w(s) ~ exp(-s), 0 where s > CUTOFF (weight.py gives the text)."""
    u = tl.minimum(tl.maximum(s, 0.0), CUTOFF) * 0.0625 - _U0
    p = tl.zeros_like(u) + _C5
    p = p * u + _C4
    p = p * u + _C3
    p = p * u + _C2
    p = p * u + _C1
    p = (p * u + 1.0) * _E0
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return tl.where(s <= CUTOFF, p, 0.0)


@_jit
def _tile_pixels(tile, ranges_ptr, tiles_x, tiles_per_image, TILE: tl.constexpr):
    """A tile's image, its TILE * TILE pixels (row, column, centre x, centre y) and its pair range."""
    batch = tile // tiles_per_image
    local = tile - batch * tiles_per_image
    ty = local // tiles_x
    tx = local - ty * tiles_x
    pix = tl.arange(0, TILE * TILE)
    row = ty * TILE + pix // TILE
    col = tx * TILE + pix % TILE
    px = col.to(tl.float32) + 0.5
    py = row.to(tl.float32) + 0.5
    start = tl.load(ranges_ptr + tile)
    end = tl.load(ranges_ptr + tile + 1)
    return batch, row, col, px, py, start, end


@_jit
def _load_chunk(centres_ptr, conics_ptr, colors_ptr, gauss_ptr, first, end, BLOCK_G: tl.constexpr):
    """Parameters of the BLOCK_G Gaussians at pair positions first.. (harmless values past `end`)."""
    idx = first + tl.arange(0, BLOCK_G)
    live = idx < end
    g = tl.load(gauss_ptr + idx, mask=live, other=0).to(tl.int64)
    x = tl.load(centres_ptr + 2 * g, mask=live, other=0.0)
    y = tl.load(centres_ptr + 2 * g + 1, mask=live, other=0.0)
    a = tl.load(conics_ptr + 3 * g, mask=live, other=1.0)
    b = tl.load(conics_ptr + 3 * g + 1, mask=live, other=0.0)
    c = tl.load(conics_ptr + 3 * g + 2, mask=live, other=1.0)
    cr = tl.load(colors_ptr + 3 * g, mask=live, other=0.0)
    cg = tl.load(colors_ptr + 3 * g + 1, mask=live, other=0.0)
    cb = tl.load(colors_ptr + 3 * g + 2, mask=live, other=0.0)
    return live, g, x, y, a, b, c, cr, cg, cb
