"""Quantizers: what training sees equals what the decoder dequantizes."""

import numpy as np
import pytest
import torch

from stgvcodec.quant.colours import ColourRVQ, dequantize_colours
from stgvcodec.quant.quantizers import (
    CholeskyQuantizer,
    PositionGrid,
    dequantize_cholesky,
    dequantize_tensor,
    fake_quantize_tensor,
    quantize_tensor,
)


@pytest.mark.parametrize("bits", [8, 6])
def test_cholesky_quantizer_matches_dequantization_bit_for_bit(bits):
    gen = torch.Generator().manual_seed(0)
    cholesky = torch.randn(500, 3, generator=gen) * 2 + 3
    quantizer = CholeskyQuantizer(cholesky, bits)
    with torch.no_grad():
        quantizer.gamma.mul_(1.1)  # learned values are arbitrary floats
    symbols = quantizer.symbols(cholesky)
    top = (1 << bits) - 1
    assert symbols.min() == 0 and symbols.max() <= top
    decoded = dequantize_cholesky(symbols.numpy().astype(np.int32), quantizer.gamma.detach().numpy(), quantizer.beta.detach().numpy())
    np.testing.assert_array_equal(quantizer(cholesky).detach().numpy(), decoded)
    inside = (symbols < top).all(dim=1).numpy()  # the widened scale clips the largest values
    assert np.abs(decoded - cholesky.numpy())[inside].max() <= quantizer.gamma.max().item() * 0.5 + 1e-5


def test_cholesky_quantizer_spans_its_range_in_2_to_the_b_levels():
    cholesky = torch.linspace(0, 1, 64)[:, None].expand(64, 3)
    quantizer = CholeskyQuantizer(cholesky, 6)
    np.testing.assert_array_equal(quantizer.symbols(cholesky)[:, 0].numpy(), np.arange(64))
    with pytest.raises(ValueError, match="Cholesky precision 9 bits"):
        CholeskyQuantizer(cholesky, 9)


def test_cholesky_quantizer_learns_scale_and_offset():
    """gamma gets the rounding error's gradient; beta, with straight-through rounding, only that of
    clipped values (inside the range its effect cancels), so clip some."""
    cholesky = torch.rand(100, 3, requires_grad=True)
    quantizer = CholeskyQuantizer(cholesky)
    with torch.no_grad():
        quantizer.beta.add_(0.2)
    quantizer(cholesky).pow(2).sum().backward()
    assert quantizer.gamma.grad.abs().sum() > 0 and quantizer.beta.grad.abs().sum() > 0
    assert cholesky.grad.abs().sum() > 0  # straight through


@pytest.mark.parametrize("bits,levels", [(8, 127), (6, 31), (4, 7), (2, 1)])
def test_tensor_quantization_round_trip(bits, levels):
    weight = torch.randn(7, 5, generator=torch.Generator().manual_seed(bits)) * 0.01
    symbols, scale = quantize_tensor(weight, bits)
    assert symbols.dtype == np.int32 and np.abs(symbols).max() == levels
    exact = np.float32(weight.abs().max().item()) / np.float32(levels)
    below = np.nextafter(np.float16(scale), np.float16(0))  # the float16 just below the scale
    assert np.float32(np.float16(scale)) == scale and scale >= exact > np.float32(below)  # the float16 at or above
    fake = fake_quantize_tensor(weight, bits)
    np.testing.assert_array_equal(dequantize_tensor(symbols, scale, (7, 5)), fake.numpy())
    assert (fake - weight).abs().max() <= scale / 2 * (1 + 1e-6)
    zero_symbols, zero_scale = quantize_tensor(torch.zeros(3))
    assert (zero_symbols == 0).all() and zero_scale == 1.0


@pytest.mark.parametrize("bits", [1, 9])
def test_tensor_precision_outside_the_format_is_refused(bits):
    with pytest.raises(ValueError, match="network precision"):
        quantize_tensor(torch.ones(3), bits)


def test_position_grid_straight_through():
    """Positions move to the nearest of S steps per pixel (a quarter pixel at S = 4), gradients pass
    unchanged, and keys stay 16-bit far off the frame."""
    grid = PositionGrid(4, 10, 8)  # 20 and 16 steps per NDC unit
    x = torch.tensor([[0.1, -0.3333333], [0.026, 0.0], [-1e4, 1e4]], requires_grad=True)
    y = grid(x)
    np.testing.assert_array_equal(grid.keys(x).numpy(), [[32770, 32763], [32769, 32768], [0, 65535]])
    assert torch.equal(y[:2].detach(), torch.tensor([[0.1, -5 / 16], [0.05, 0.0]]))
    assert (y[:2] - x[:2]).abs().max() <= 0.5 / 20
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3, 2))


def test_colour_rvq_export_reproduces_its_quantization():
    torch.manual_seed(0)
    colours = torch.rand(300, 3)
    rvq = ColourRVQ(stages=2, codebook_size=16)
    quantized, loss = rvq(colours)
    assert quantized.shape == (300, 3) and loss.ndim == 0
    indices, codebooks = rvq.export(colours)
    assert indices.shape == (300, 2) and codebooks.shape == (2, 16, 3) and codebooks.dtype == np.float32
    np.testing.assert_array_equal(np.round(codebooks * 256) / 256, codebooks)  # multiples of the step, 1/256
    decoded = dequantize_colours(indices, codebooks)
    # The fine-tuning's indices, codebooks rounded to 1/256: each stage within half a step of the
    # float32 quantization in eval mode.
    rvq.eval()
    np.testing.assert_allclose(decoded, rvq(colours)[0].detach().numpy(), atol=2 / 512 + 1e-6)
    assert np.abs(decoded - colours.numpy()).mean() < 0.05
