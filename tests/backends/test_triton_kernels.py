"""Internals of the Triton backend: tile binning, chunked tiles, reproducibility.

Without a CUDA device the kernels run in Triton's interpreter (tests/conftest.py switches it on
before triton is imported); tiny inputs keep that fast.
"""

import pytest
import torch

pytest.importorskip("triton")

from stgvcodec.render import BackendUnavailable, CUTOFF, projection, reference  # noqa: E402
from stgvcodec.render import triton as backend  # noqa: E402
from stgvcodec.render.synthetic import random_gaussians  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
try:
    backend.check(DEVICE)
except BackendUnavailable as err:
    pytest.skip(str(err), allow_module_level=True)

TILE = backend.TILE


def _projected(count, height, width, batch, seed, size_scale=1.0):
    means, cholesky, colors = random_gaussians(
        count, height, width, batch=batch, seed=seed, size_scale=size_scale, device=DEVICE
    )
    return projection.project(means, cholesky, colors, height, width)


def _pairs(bins, count):
    """Set of (batch, tile within the image, n) the binning lists."""
    ranges = bins.ranges.cpu().tolist()
    gauss = bins.gauss.cpu().tolist()
    out = set()
    for tile in range(bins.tiles):
        for g in gauss[ranges[tile] : ranges[tile + 1]]:
            out.add((tile // bins.tiles_per_image, tile % bins.tiles_per_image, g % count))
    return out


def _covered_tiles(centres, conics, extents, height, width):
    """Set of (batch, tile, n) holding at least one pixel with s <= CUTOFF, computed densely."""
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    centres, conics, extents = centres.cpu(), conics.cpu(), extents.cpu()
    dx = xs.view(1, 1, width, 1) - centres[:, None, None, :, 0]
    dy = ys.view(1, height, 1, 1) - centres[:, None, None, :, 1]
    a, b, c = (conics[:, None, None, :, k] for k in range(3))
    s = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    inside = (s <= CUTOFF) & (extents[:, None, None, :, 0] >= 0)  # [B, H, W, N]
    tiles_x = -(-width // TILE)
    out = set()
    for bi, i, j, n in inside.nonzero().tolist():
        out.add((bi, (i // TILE) * tiles_x + j // TILE, n))
    return out


def _box_tiles(centres, extents, height, width):
    """Set of (batch, tile, n) the widened, clipped pixel box of each Gaussian touches."""
    tiles_x = -(-width // TILE)
    out = set()
    for bi in range(centres.shape[0]):
        for n in range(centres.shape[1]):
            (x, y), (ex, ey) = centres[bi, n].cpu(), extents[bi, n].cpu()
            if ex < 0:
                continue
            # Same float32 arithmetic as the kernel: pixel centres within the box, one pixel wider.
            col0, col1 = int(torch.ceil(x - ex - 0.5)) - 1, int(torch.floor(x + ex - 0.5)) + 1
            row0, row1 = int(torch.ceil(y - ey - 0.5)) - 1, int(torch.floor(y + ey - 0.5)) + 1
            col0, col1, row0, row1 = max(col0, 0), min(col1, width - 1), max(row0, 0), min(row1, height - 1)
            for ty in range(row0 // TILE, row1 // TILE + 1) if row0 <= row1 else ():
                for tx in range(col0 // TILE, col1 // TILE + 1) if col0 <= col1 else ():
                    out.add((bi, ty * tiles_x + tx, n))
    return out


@pytest.mark.parametrize("size", [(37, 53), (16, 16), (1, 1), (50, 17)])
def test_bins_list_exactly_the_box_tiles_and_cover_every_weighted_pixel(size):
    height, width = size
    centres, conics, _, extents = _projected(120, height, width, batch=2, seed=height)
    bins = backend._bin(centres, extents, height, width)
    listed = _pairs(bins, centres.shape[1])
    assert listed == _box_tiles(centres, extents, height, width)
    assert _covered_tiles(centres, conics, extents, height, width) <= listed


def test_ranges_split_pairs_by_tile_with_gaussians_ascending():
    centres, _, _, extents = _projected(200, 40, 70, batch=3, seed=2)
    bins = backend._bin(centres, extents, 40, 70)
    ranges, gauss = bins.ranges.cpu(), bins.gauss.cpu()
    assert bins.tiles == 3 * 3 * 5 and ranges.numel() == bins.tiles + 1
    assert ranges[0] == 0 and ranges[-1] == gauss.numel()
    assert bool((ranges[1:] >= ranges[:-1]).all())
    count = centres.shape[1]
    for tile in range(bins.tiles):
        ids = gauss[ranges[tile] : ranges[tile + 1]]
        assert bool((ids[1:] > ids[:-1]).all())  # stable sort: Gaussian order, no duplicates
        assert bool((ids // count == tile // bins.tiles_per_image).all())  # the tile's own image


def test_nothing_to_draw_gives_no_bins_and_zeros():
    centres = torch.tensor([[[-40.0, 5.0], [5.0, 500.0], [float("nan"), 3.0], [5.0, 5.0]]], device=DEVICE)
    extents = torch.tensor([[[3.0, 3.0], [3.0, 3.0], [3.0, 3.0], [-1.0, -1.0]]], device=DEVICE)
    conics = torch.tensor([[1.0, 0.0, 1.0]], device=DEVICE).expand(1, 4, 3).contiguous()
    colors = torch.ones(1, 4, 3, device=DEVICE)
    assert backend._bin(centres, extents, 20, 30) is None
    assert not backend.KERNEL.forward(centres, conics, colors, extents, 20, 30).any()
    grads = backend.KERNEL.backward(centres, conics, colors, extents, 20, 30, torch.ones(1, 20, 30, 3, device=DEVICE))
    assert not any(g.any() for g in grads)


def test_whole_frame_gaussian_is_listed_in_every_tile():
    centres = torch.tensor([[[35.0, 20.0]], [[-1e6, 1e6]]], device=DEVICE)
    extents = torch.tensor([[[1e6, 1e6]], [[1e7, 1e7]]], device=DEVICE)
    bins = backend._bin(centres, extents, 40, 70)
    assert bins.gauss.cpu().tolist() == [0] * 15 + [1] * 15
    assert bins.ranges.cpu().tolist() == list(range(31))


def test_crowded_tile_spans_several_chunks():
    # 150 Gaussians in one tile: several forward and backward chunks, the last one partial.
    count = 150
    gen = torch.Generator().manual_seed(0)
    centres = (torch.rand(1, count, 2, generator=gen) * 16).to(DEVICE)
    cholesky = (torch.rand(1, count, 3, generator=gen) * torch.tensor([3.0, 1.0, 3.0]) + torch.tensor([1.0, 0.0, 1.0]))
    means = centres / torch.tensor([8.0, 8.0], device=DEVICE) - 1.0
    colors = (torch.rand(1, count, 3, generator=gen) * 0.1).to(DEVICE)
    centres, conics, colors, extents = projection.project(means, cholesky.to(DEVICE), colors, 16, 16)
    grad_image = torch.randn(1, 16, 16, 3, generator=gen).to(DEVICE)

    params = [t.clone().requires_grad_(True) for t in (centres, conics, colors)]
    expected = reference.rasterize_sum(params[0], params[1], params[2], extents, 16, 16)
    expected_grads = torch.autograd.grad((expected * grad_image).sum(), params)
    image = backend.KERNEL.forward(centres, conics, colors, extents, 16, 16)
    grads = backend.KERNEL.backward(centres, conics, colors, extents, 16, 16, grad_image)

    torch.testing.assert_close(image, expected, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-5 * want.abs().max().item(), rtol=1e-5)


def test_forward_is_bit_reproducible():
    centres, conics, colors, extents = _projected(250, 33, 47, batch=2, seed=7, size_scale=2.0)
    first = backend.KERNEL.forward(centres, conics, colors, extents, 33, 47)
    assert torch.equal(first, backend.KERNEL.forward(centres, conics, colors, extents, 33, 47))


def test_check_asks_for_the_interpreter_on_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendUnavailable, match="TRITON_INTERPRET=1"):
        backend.check(torch.device("cpu"))
