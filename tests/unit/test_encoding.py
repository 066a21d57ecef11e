"""HashGrid (tiny-cuda-nn conventions), FrequencyEncoding and PlaneEncoding."""

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from stgvcodec.model.encoding import FrequencyEncoding, HashGrid, PlaneEncoding

PRIME_1 = 2654435761
PRIME_2 = 805459861


def _arange_params(grid: HashGrid) -> HashGrid:
    with torch.no_grad():
        grid.params.copy_(torch.arange(grid.params.numel(), dtype=grid.params.dtype))
    return grid


def test_hand_computed_2d_dense_then_hashed_level():
    # base 3, scale 2, T = 16: level 0 scale 2, res 3, 9 <= 16 dense (table 16);
    # level 1 scale 5, res 6, 36 > 16 hashed (table 16, offset 16).
    grid = _arange_params(HashGrid(2, 2, features=1, log2_table_size=4, base_resolution=3, per_level_scale=2.0))
    info = grid.level_info()
    assert [(lv.scale, lv.resolution, lv.table_size, lv.offset, lv.dense) for lv in info] == [
        (2.0, 3, 16, 0, True),
        (5.0, 6, 16, 16, False),
    ]
    x = torch.tensor([[0.375, 0.8125]])

    # Level 0: pos = (1.25, 2.125), lower vertex (1, 2), frac (0.25, 0.125). The upper y vertex
    # is 3 = res: tcnn does not clamp, the dense index 1 + 3 * 3 = 10 runs past the 3 x 3 grid.
    level0 = [7, 8, 10, 11]  # (1,2) (2,2) (1,3) (2,3) as x + 3 y
    weights0 = [0.75 * 0.875, 0.25 * 0.875, 0.75 * 0.125, 0.25 * 0.125]
    # Level 1: pos = (2.375, 4.5625), lower (2, 4), frac (0.375, 0.5625); uint32 hashes
    # 2 ^ (4 * 2654435761 mod 2^32 = 2027808452) = 2027808454 -> % 16 = 6, then 7, 7, 6.
    level1 = [16 + 6, 16 + 7, 16 + 7, 16 + 6]
    weights1 = [0.625 * 0.4375, 0.375 * 0.4375, 0.625 * 0.5625, 0.375 * 0.5625]
    assert 4 * PRIME_1 % 2**32 == 2027808452 and 5 * PRIME_1 % 2**32 == 387276917
    assert [2 ^ 2027808452, 3 ^ 2027808452, 2 ^ 387276917, 3 ^ 387276917] == [
        2027808454, 2027808455, 387276919, 387276918
    ]

    index, weight = grid.corners(x)
    assert index.tolist() == [[level0, level1]]
    assert weight.tolist() == [[weights0, weights1]]
    expected = [sum(i * w for i, w in zip(level0, weights0)), sum(i * w for i, w in zip(level1, weights1))]
    assert expected == [7.625, 22.515625]
    torch.testing.assert_close(grid(x), torch.tensor([expected]), rtol=0, atol=1e-6)


def test_hand_computed_3d_hash_wraps_uint32():
    # base 1025: scale 1024, res 1025, hashed into 64 entries. Corner coordinates in the
    # hundreds make c1 * 2654435761 and c2 * 805459861 exceed 2^32.
    grid = _arange_params(HashGrid(3, levels=1, features=1, log2_table_size=6, base_resolution=1025))
    assert grid.level_info()[0].scale == 1024.0 and not grid.level_info()[0].dense
    x = torch.tensor([[0.5 + 1 / 4096, 0.75 - 1 / 8192, 0.25]])  # pos (512.75, 768.375, 256.5)

    assert 768 * PRIME_1 == 2038606664448 and 768 * PRIME_1 % 2**32 == 2792166144
    assert 769 * PRIME_1 % 2**32 == 1151634609
    assert 256 * PRIME_2 == 206197724416 and 256 * PRIME_2 % 2**32 == 39294208
    assert 257 * PRIME_2 % 2**32 == 844754069
    # Corner k: bit 0 -> x + 1, bit 1 -> y + 1, bit 2 -> z + 1.
    hashes = [2755298304, 2755298305, 1190337457, 1190337456, 2486500757, 2486500756, 1996317220, 1996317221]
    assert hashes[0] == 512 ^ 2792166144 ^ 39294208 and hashes[7] == 513 ^ 1151634609 ^ 844754069
    entries = [h % 64 for h in hashes]
    assert entries == [0, 1, 49, 48, 21, 20, 36, 37]
    fx, fy, fz = 0.75, 0.375, 0.5
    weights = [
        (fx if k & 1 else 1 - fx) * (fy if k & 2 else 1 - fy) * (fz if k & 4 else 1 - fz) for k in range(8)
    ]

    index, weight = grid.corners(x)
    assert index.tolist() == [[entries]]
    assert weight.tolist() == [[weights]]
    expected = sum(e * w for e, w in zip(entries, weights))
    torch.testing.assert_close(grid(x), torch.tensor([[expected]]), rtol=0, atol=1e-5)


# Paper configuration: 8 levels, T = 2^10, N_min = 16, b = 1.5. In exact arithmetic
# scale_l = 16 * 1.5^l - 1 = 15, 23, 35, 53, 80, 120.5, 181.25, 272.375; tcnn's float32
# chain gives levels 5 and 6 one ulp lower. res = ceil(scale) + 1.
PAPER_SCALES = [15.0, 23.0, 35.0, 53.0, 80.0, 120.49998474121094, 181.24998474121094, 272.375]
PAPER_RESOLUTIONS = [16, 24, 36, 54, 81, 122, 183, 274]


@pytest.mark.parametrize(
    "dims,features,tables,params",
    [
        # 2D: 16^2 = 256 and 24^2 = 576 fit densely; 36^2 = 1296 > 1024 and above are hashed.
        (2, 2, [256, 576] + [1024] * 6, 6976 * 2),
        # 3D: 16^3 = 4096 > 1024 already, every level is hashed.
        (3, 4, [1024] * 8, 8192 * 4),
    ],
)
def test_paper_configuration_level_layout(dims, features, tables, params):
    grid = HashGrid(dims, 8, features, log2_table_size=10, base_resolution=16, per_level_scale=1.5)
    info = grid.level_info()
    resolutions = [math.ceil(16 * 1.5**level - 1) + 1 for level in range(8)]
    assert resolutions == PAPER_RESOLUTIONS
    assert [lv.scale for lv in info] == PAPER_SCALES
    assert [lv.resolution for lv in info] == resolutions
    expected_tables = [min(-(-r**dims // 8) * 8, 2**10) for r in resolutions]
    assert expected_tables == tables
    assert [lv.table_size for lv in info] == tables
    assert [lv.offset for lv in info] == [sum(tables[:level]) for level in range(8)]
    assert [lv.dense for lv in info] == [r**dims <= t for r, t in zip(resolutions, tables)]
    assert grid.params.shape == (params,)
    assert grid.output_dim == 8 * features


def test_table_size_rounds_up_then_caps_like_tcnn():
    # 3^2 = 9 entries round up to 16 (a multiple of 8) and stay dense.
    assert HashGrid(2, levels=1, log2_table_size=5, base_resolution=3).level_info()[0].table_size == 16
    # tcnn rounds to a multiple of 8 before capping, so a 2^2 table keeps 4 entries, not 8.
    level = HashGrid(2, levels=1, log2_table_size=2, base_resolution=16).level_info()[0]
    assert (level.table_size, level.dense) == (4, False)


def _reference_encode(grid: HashGrid, x: np.ndarray) -> tuple[list, np.ndarray]:
    """Scalar transcription of tcnn's kernel_grid / grid_index for one point at a time."""
    table = grid.params.detach().double().numpy().reshape(-1, grid.features)
    all_entries, rows = [], []
    for point in x:
        entries, row = [], []
        for lv in grid.level_info():
            # fmaf(scale, x, 0.5f): float64 holds the exact product, one rounding to float32.
            pos = [np.float32(float(np.float32(v)) * lv.scale + 0.5) for v in point]
            lower = [int(math.floor(p)) for p in pos]
            frac = [np.float32(p - np.float32(c)) for p, c in zip(pos, lower)]
            level_entries, value = [], np.zeros(grid.features)
            for k in range(2**grid.dims):
                vertex = [c + ((k >> i) & 1) for i, c in enumerate(lower)]
                weight = np.float32(1.0)
                for i, f in enumerate(frac):
                    weight = np.float32(weight * (f if (k >> i) & 1 else np.float32(1.0) - f))
                stride, index = 1, 0
                for c in vertex:
                    index = (index + c * stride) & 0xFFFFFFFF
                    stride *= lv.resolution
                if lv.table_size < stride:
                    index = 0
                    for c, prime in zip(vertex, (1, PRIME_1, PRIME_2)):
                        index ^= (c * prime) & 0xFFFFFFFF
                entry = lv.offset + index % lv.table_size
                level_entries.append(entry)
                value += float(weight) * table[entry]
            entries.append(level_entries)
            row.extend(value)
        all_entries.append(entries)
        rows.append(row)
    return all_entries, np.array(rows)


@pytest.mark.parametrize("dims,features", [(2, 2), (3, 4)])
def test_matches_scalar_reference_on_paper_configuration(dims, features):
    torch.manual_seed(0)
    grid = HashGrid(dims, features=features)
    x = torch.rand(12, dims)
    x[0] = 1.0  # the top corner: upper vertices at res_l, past the grid
    x[1] = 0.0
    entries, expected = _reference_encode(grid, x.numpy())
    assert grid.corners(x)[0].tolist() == entries
    torch.testing.assert_close(grid(x).double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-9)


def test_corners_are_summed_in_corner_order_whatever_the_point_count():
    # bitstream_spec.md 11.1: acc = w_0 f_0, then acc + w_k f_k for k = 1 .. 2^d - 1, in float32.
    # Tensor.sum over 8 corners reorders its adds for the last P mod 32 points (ATen's SIMD
    # tail), which made a point's features depend on how many points were encoded with it.
    generator = torch.Generator().manual_seed(4)
    grid = HashGrid(3, features=4)
    with torch.no_grad():
        grid.params.copy_(torch.randn(grid.params.shape, generator=generator))
    x = torch.rand(100, 3, generator=generator)
    index, weight = grid.corners(x)  # [P, L, 8]
    terms = weight.unsqueeze(-1) * grid.params.detach().view(-1, grid.features)[index]  # [P, L, 8, F]
    expected = terms[:, :, 0]
    for corner in range(1, 8):
        expected = expected + terms[:, :, corner]
    expected = expected.reshape(100, grid.output_dim)
    assert torch.equal(grid(x), expected)
    assert torch.equal(grid(x[97:]), expected[97:])


def test_inputs_are_clamped_and_need_no_grad():
    grid = HashGrid(2, levels=3)
    x = torch.tensor([[-0.5, 1.5], [0.0, 1.0]], requires_grad=True)
    out = grid(x)
    torch.testing.assert_close(out[0], out[1])
    out.sum().backward()
    assert x.grad is None and grid.params.grad is not None


def test_gradcheck_in_float64():
    grid = HashGrid(2, 2, features=2, log2_table_size=4, base_resolution=3, per_level_scale=2.0).double()
    x = torch.rand(6, 2, generator=torch.Generator().manual_seed(1))
    params = torch.randn_like(grid.params).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: functional_call(grid, {"params": p}, (x,)), (params,))


def test_gradient_is_the_weighted_scatter_of_the_output_gradient():
    grid = HashGrid(3, levels=4, features=4, log2_table_size=6)
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(2))
    upstream = torch.randn(50, grid.output_dim, generator=torch.Generator().manual_seed(3))
    (grid(x) * upstream).sum().backward()

    index, weight = grid.corners(x)  # [P, L, C]
    per_corner = weight.unsqueeze(-1) * upstream.view(50, grid.levels, 1, grid.features)
    expected = torch.zeros(grid.params.numel() // grid.features, grid.features)
    expected.index_add_(0, index.reshape(-1), per_corner.reshape(-1, grid.features))
    torch.testing.assert_close(grid.params.grad, expected.view(-1))


def test_parameters_state_dict_and_init_match_tcnn():
    grid = HashGrid(2, features=2)
    assert list(grid.state_dict()) == ["params"]  # the flat vector tcnn would hold
    assert grid.params.abs().max() <= 1e-4 and grid.params.abs().max() > 0
    assert grid.tcnn_config()["per_level_scale"] == 1.5
    x = torch.rand(7, 2, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(grid.double()(x).float(), grid.float()(x))  # casts keep the scales exact


def test_frequency_encoding_of_t_at_a_quarter():
    encoding = FrequencyEncoding(1)
    assert encoding.output_dim == 13
    s = math.sqrt(0.5)
    # t, then sin/cos of 2^k pi t for k = 0..5: angles pi/4, pi/2, pi, 2 pi, 4 pi, 8 pi.
    expected = [0.25, s, s, 1.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    out = encoding(torch.tensor([[0.25]]))
    assert out.shape == (1, 13)
    torch.testing.assert_close(out, torch.tensor([expected]), rtol=0, atol=2e-6)


def test_frequency_encoding_order_over_dims():
    a, b = 0.1, 0.7
    out = FrequencyEncoding(2, frequencies=2)(torch.tensor([[a, b]], dtype=torch.float64))
    pi = math.pi
    expected = [a, b]
    for k in range(2):
        angle_a, angle_b = 2**k * pi * a, 2**k * pi * b
        expected += [math.sin(angle_a), math.sin(angle_b), math.cos(angle_a), math.cos(angle_b)]
    torch.testing.assert_close(out, torch.tensor([expected], dtype=torch.float64), rtol=0, atol=1e-6)
    assert FrequencyEncoding(2, frequencies=2, include_input=False).output_dim == 8


def _planes(features=2, resolution=5, time_resolution=3) -> PlaneEncoding:
    encoding = PlaneEncoding(resolution, time_resolution, features)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for plane in (encoding.xy, encoding.xt, encoding.yt):
            plane.copy_(torch.randn(plane.shape, generator=generator))
    return encoding


def test_plane_encoding_shapes_and_init():
    encoding = PlaneEncoding()
    assert encoding.output_dim == 24
    assert encoding(torch.rand(10, 3)).shape == (10, 24)
    assert sum(p.numel() for p in encoding.parameters()) == 8 * (64 * 64 + 2 * 64 * 16)
    assert all(p.abs().max() <= 1e-4 for p in encoding.parameters())


def test_plane_encoding_is_exact_at_texel_centres_and_midpoints():
    enc = _planes()  # 5 x 5 spatial texels at 0, 1/4, ..., 1; 3 time texels at 0, 1/2, 1
    centre = enc(torch.tensor([[0.25, 0.75, 1.0]]))[0]  # x texel 1, y texel 3, t texel 2
    expected = torch.cat((enc.xy[:, 3, 1], enc.xt[:, 2, 1], enc.yt[:, 2, 3]))
    torch.testing.assert_close(centre, expected)

    mid = enc(torch.tensor([[0.375, 0.5, 0.25]]))[0]  # x between texels 1 and 2, y texel 2, t between 0 and 1
    expected = torch.cat((
        (enc.xy[:, 2, 1] + enc.xy[:, 2, 2]) / 2,
        enc.xt[:, 0:2, 1:3].mean(dim=(1, 2)),
        (enc.yt[:, 0, 2] + enc.yt[:, 1, 2]) / 2,
    ))
    torch.testing.assert_close(mid, expected)


def test_plane_encoding_gradient_reaches_the_sampled_texels():
    enc = _planes(features=1)
    enc(torch.tensor([[0.375, 0.5, 0.25]])).sum().backward()
    xy_grad = torch.zeros(1, 5, 5)
    xy_grad[0, 2, 1:3] = 0.5
    torch.testing.assert_close(enc.xy.grad, xy_grad)
    assert enc.xt.grad[0, 0:2, 1:3].tolist() == [[0.25, 0.25], [0.25, 0.25]]
    assert enc.xt.grad.sum().item() == pytest.approx(1.0) and enc.yt.grad.sum().item() == pytest.approx(1.0)
