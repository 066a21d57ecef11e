"""HashGrid's numba kernels against the text of bitstream_spec.md 11.1 and against the torch path.

Both paths must give the spec's float32 result bit for bit (the decoder's output depends on it);
the kernels' table gradient must match torch autograd's and not depend on the thread count.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import torch

from stgvcodec.api import decode, encode
from stgvcodec.config import FitConfig
from stgvcodec.io import read_frames
from stgvcodec.model.encoding import HashGrid
from stgvcodec.quant.qat import QuantConfig
from tests.clips import moving_pattern, write_clip

REPO = Path(__file__).resolve().parents[2]
PRIMES = (1, 2654435761, 805459861)

# (dims, features, log2 table size): which levels come out dense and which hashed.
GRIDS = {
    "2d-dense-and-hashed": (2, 2, 10),  # the paper's G2D: levels 0-1 dense, 2-7 hashed
    "3d-hashed": (3, 4, 10),  # the paper's G3D: every level hashed
    "3d-dense-and-hashed": (3, 1, 14),  # levels 0-1 dense (16^3, 23^3 <= 2^14)
    "2d-dense": (2, 4, 19),  # every level dense, upper vertices wrapping past the rows
}


def _grid(dims: int, features: int, log2_table_size: int, seed: int = 0) -> HashGrid:
    """A grid with N(0, 1) features, so every product and sum has bits to lose."""
    grid = HashGrid(dims, features=features, log2_table_size=log2_table_size)
    with torch.no_grad():
        grid.params.copy_(torch.randn(grid.params.shape, generator=torch.Generator().manual_seed(seed)))
    return grid


def _points(grid: HashGrid, count: int = 300, seed: int = 1) -> torch.Tensor:
    """Random points plus the edges: 0, 1, out of range (clamped), and exact vertex positions."""
    rng = np.random.default_rng(seed)
    x = rng.random((count, grid.dims)).astype(np.float32)
    x[0], x[1] = 0.0, 1.0
    x[2] = rng.choice([-0.5, 1.5, -np.inf, np.inf], grid.dims)
    x[3] = np.float32(1.0) - np.float32(2.0**-24)
    x[4] = rng.random(grid.dims) * 1e-6
    x[5] = rng.choice([0.0, 1.0], grid.dims)
    # x = 1/2 puts pos = scale / 2 + 1/2 exactly on a vertex where the scale is an odd integer:
    # 8, 12, 18 and 27 at levels 0-3 (scales 15, 23, 35, 53).
    x[6:14] = np.arange(8, dtype=np.float32)[:, None] / 7
    x[6:14, 0] = 0.5
    for row in range(14, min(80, count)):  # next to (or on) a vertex of one level
        level = grid.level_info()[row % grid.levels]
        vertex = int(rng.integers(1, int(level.scale) + 1))
        x[row, rng.integers(grid.dims)] = (vertex - 0.5) / level.scale
    return torch.from_numpy(x)


def _spec_encode(grid: HashGrid, x: torch.Tensor) -> np.ndarray:
    """bitstream_spec.md 11.1 in numpy float32, vectorised over points only.

    Weights multiply in dimension order from the dim-0 factor; a level's output is corner 0's
    term, then + corner k's term for k = 1 .. 2^d - 1, each product and sum rounded to float32.
    """
    table = grid.params.detach().numpy().reshape(-1, grid.features)
    x = np.clip(x.numpy().astype(np.float32), np.float32(0.0), np.float32(1.0))
    columns = []
    for level in grid.level_info():
        pos = (np.float64(np.float32(level.scale)) * x.astype(np.float64) + 0.5).astype(np.float32)
        lower = np.floor(pos)
        frac = pos - lower
        lower = lower.astype(np.int64)
        acc = None
        for k in range(2**grid.dims):
            weight, dense_index, hash_index = None, 0, 0
            for i in range(grid.dims):
                upper = (k >> i) & 1
                factor = frac[:, i] if upper else np.float32(1.0) - frac[:, i]
                weight = factor if weight is None else weight * factor
                vertex = lower[:, i] + upper
                dense_index = dense_index + vertex * level.resolution**i
                hash_index = hash_index ^ ((vertex * PRIMES[i]) & 0xFFFFFFFF)
            index = (dense_index if level.dense else hash_index) % level.table_size
            term = weight[:, None] * table[level.offset + index]
            acc = term if acc is None else acc + term
        columns.append(acc)
    return np.concatenate(columns, axis=1)


def _encode(grid: HashGrid, x: torch.Tensor, path: str) -> torch.Tensor:
    return grid(x) if path == "numba" else grid.forward_torch(x)


@pytest.mark.parametrize("path", ["numba", "torch"])
@pytest.mark.parametrize("name", GRIDS)
def test_features_are_the_spec_bit_for_bit(name, path):
    grid = _grid(*GRIDS[name])
    x = _points(grid)
    expected = _spec_encode(grid, x)
    got = _encode(grid, x, path).detach().numpy()
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))


@pytest.mark.parametrize("count", [1, 31, 33, 130, 257])
def test_kernel_equals_torch_path_for_any_point_count(count):
    # Point counts around the kernel's block size and the SIMD widths of torch's reductions.
    grid = _grid(3, 4, 10, seed=count)
    x = torch.rand(count, 3, generator=torch.Generator().manual_seed(count))
    assert torch.equal(grid(x), grid.forward_torch(x))


def test_no_points():
    grid = _grid(3, 4, 10)
    out = grid(torch.zeros(0, 3))
    assert out.shape == (0, grid.output_dim) and out.dtype == torch.float32
    out.sum().backward()
    assert torch.equal(grid.params.grad, torch.zeros_like(grid.params))


def test_nan_coordinates_give_nan_features_and_touch_no_other_point():
    grid = _grid(2, 2, 10)
    x = _points(grid, 100)
    x[90, 1] = float("nan")
    out, others = grid(x), torch.arange(100) != 90
    assert out[90].isnan().all() and grid.forward_torch(x)[90].isnan().all()
    assert torch.equal(out[others], grid.forward_torch(x)[others])


def test_float64_points_and_the_shape_check():
    grid = _grid(2, 2, 10)
    x = torch.rand(10, 2, dtype=torch.float64)
    assert torch.equal(grid(x), grid.forward_torch(x))
    with pytest.raises(ValueError, match=r"expected \[P, 2\] coordinates"):
        grid(torch.rand(10, 3))


def test_environment_switch_keeps_the_torch_path(monkeypatch):
    grid = _grid(2, 2, 10)
    x = torch.rand(5, 2)
    monkeypatch.setenv("STGV_HASHGRID", "torch")
    assert grid(x).grad_fn.name() != "HashGridFunctionBackward"
    monkeypatch.delenv("STGV_HASHGRID")
    assert grid(x).grad_fn.name() == "HashGridFunctionBackward"


def _table_gradient(grid: HashGrid, x: torch.Tensor, upstream: torch.Tensor, path: str) -> torch.Tensor:
    grid.params.grad = None
    torch.autograd.backward(_encode(grid, x, path), upstream)
    return grid.params.grad.clone()


@pytest.mark.parametrize("name", GRIDS)
def test_table_gradient_matches_torch_autograd(name):
    grid = _grid(*GRIDS[name])
    x = _points(grid)
    upstream = torch.randn(x.shape[0], grid.output_dim, generator=torch.Generator().manual_seed(5))
    kernel = _table_gradient(grid, x, upstream, "numba")
    reference = _table_gradient(grid, x, upstream, "torch")
    # The kernel adds in index_add_'s order (corner-major, points in order), so on this torch
    # they agree exactly; the tolerance allows another summation order of the same terms.
    torch.testing.assert_close(kernel, reference, rtol=1e-5, atol=1e-6)
    assert kernel.abs().sum() > 0


def test_kernels_do_not_depend_on_the_thread_count():
    grid = _grid(3, 4, 10)
    x = _points(grid, 1000)
    upstream = torch.randn(1000, grid.output_dim, generator=torch.Generator().manual_seed(6))
    before = numba.get_num_threads()
    results = []
    try:
        for threads in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(threads)
            results.append((grid(x).detach(), _table_gradient(grid, x, upstream, "numba")))
    finally:
        numba.set_num_threads(before)
    for out, grad in results[1:]:
        assert torch.equal(out, results[0][0]) and torch.equal(grad, results[0][1])


CACHE_SCRIPT = """
import hashlib, sys, torch
from stgvcodec.model.encoding import HashGrid
torch.manual_seed(0)
grid = HashGrid(3, features=4)
x = torch.rand(200, 3)
out = grid(x)
(out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
print(*(hashlib.sha256(t.detach().numpy().tobytes()).hexdigest() for t in (out, grid.params.grad)))
"""


def test_fresh_and_cached_kernels_agree_bit_for_bit_on_any_thread_count(tmp_path):
    # Compiled in the first run, loaded from numba's cache in the next two, the last with more
    # threads than the 8 levels the backward shares out.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    runs = []
    for threads in ("2", "2", "11"):
        env["NUMBA_NUM_THREADS"] = threads
        runs.append(subprocess.run([sys.executable, "-c", CACHE_SCRIPT], env=env, capture_output=True, text=True))
        assert runs[-1].returncode == 0, runs[-1].stderr
        if len(runs) == 1:
            assert any(tmp_path.rglob("hashgrid_cpu*.nbi")), "the first run did not write numba's cache"
    fresh, cached, threaded = (run.stdout.split() for run in runs)
    assert len(fresh) == 2 and fresh == cached == threaded


def test_decoding_with_either_path_reproduces_the_encoder(tmp_path, monkeypatch):
    # The encoder trains and reconstructs with the kernels; `stgv decode` on the kernels and on
    # the torch path must both show exactly the frames the encoder reported.
    video = moving_pattern(5, 24, 32)
    clip = write_clip(tmp_path / "clip.mkv", video)
    recon: list[np.ndarray] = []
    fit, quant = FitConfig(init_steps=30, deform_steps=40), QuantConfig(steps=10, codebook_size=16)
    encode(clip, tmp_path / "clip.stgv", gaussians=80, gop_size=5, fit=fit, quant=quant, quiet=True,
           reconstruction=recon)  # fmt: skip
    recon = np.concatenate(recon)
    for path in ("auto", "torch"):
        monkeypatch.setenv("STGV_HASHGRID", path)
        decode(tmp_path / "clip.stgv", tmp_path / f"{path}.mkv")
        decoded = np.stack(list(read_frames(tmp_path / f"{path}.mkv")))
        np.testing.assert_array_equal(decoded, recon)
