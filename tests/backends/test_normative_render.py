"""The renderer is the spec's: a plain numpy transcription of bitstream_spec.md section 12 (float32,
one rounding per operation, sum in ascending Gaussian order) gives every backend's image bit for bit,
from stored parameters (NDC means, Cholesky factors, colours) to the clamped float32 image.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from stgvcodec.render import rasterize
from stgvcodec.render.synthetic import random_gaussians
from stgvcodec.render.weight import COEFFICIENTS, CUTOFF32, E0, U0, weight

f32 = np.float32


def _spec_weight(s: np.float32) -> np.float32:
    """Section 12's weight, step by step in numpy float32 scalars."""
    x = min(max(s, f32(0.0)), f32(CUTOFF32))
    u = x * f32(0.0625) - f32(U0)
    p = f32(COEFFICIENTS[0])
    for c in COEFFICIENTS[1:]:
        p = p * u + f32(c)
    p = (p * u + f32(1.0)) * f32(E0)
    for _ in range(4):
        p = p * p
    return p if s <= f32(CUTOFF32) else f32(0.0)


def _spec_render(means, cholesky, colors, height, width) -> np.ndarray:
    """Section 12 for one frame, written from the text alone (no code shared with the package)."""
    image = np.zeros((height, width, 3), np.float32)
    with np.errstate(all="ignore"):
        for (mx, my), (l1, l2, l3), colour in zip(means, cholesky, colors):
            mu_x, mu_y = (mx + f32(1.0)) * f32(width / 2), (my + f32(1.0)) * f32(height / 2)
            det = (l1 * l3) * (l1 * l3)
            p, r = f32(1.0) / l1, f32(1.0) / l3
            q = -l2 * p * r
            a, b, c = p * p + q * q, q * r, r * r
            sxx, syy = l1 * l1, l2 * l2 + l3 * l3
            finite = all(np.isfinite(v) for v in (a, b, c, sxx, syy, mu_x, mu_y, *colour))
            if not (det > f32(1e-12)) or not finite:
                continue
            for i in range(height):
                for j in range(width):
                    dx, dy = f32(j + 0.5) - mu_x, f32(i + 0.5) - mu_y
                    s = f32(0.5) * (a * dx * dx + c * dy * dy) + b * dx * dy
                    w = _spec_weight(s)
                    if w != 0:
                        image[i, j] += colour * w
    return np.clip(np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


BACKENDS = ["reference", "cpu"] + (["triton"] if importlib.util.find_spec("triton") else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_renders_the_spec_text_bit_for_bit(backend):
    height, width = 9, 13
    means, cholesky, colors = random_gaussians(24, height, width, seed=3, size_scale=1.5)
    expected = _spec_render(means.numpy(), cholesky.numpy(), colors.numpy(), height, width)
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    got = rasterize(means.to(device), cholesky.to(device), colors.to(device), height, width, backend=backend)
    np.testing.assert_array_equal(got.cpu().numpy(), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gaussian_on_a_pixel_centre_weighs_the_polynomial_at_zero(backend):
    """s = 0 exactly: the pixel gets colour * w(0), w(0) = 0.99999905 (not 1: the polynomial's value)."""
    means = torch.tensor([[0.0, 0.0]])  # the centre of pixel (2, 2) of a 5x5 frame is (2.5, 2.5): NDC 0
    cholesky = torch.tensor([[1.0, 0.0, 1.0]])
    colors = torch.tensor([[0.5, 0.25, 1.0]])
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    got = rasterize(means.to(device), cholesky.to(device), colors.to(device), 5, 5, backend=backend).cpu()
    w0 = _spec_weight(f32(0.0))
    assert w0 == f32(0.99999905)
    np.testing.assert_array_equal(got[2, 2].numpy(), colors[0].numpy() * w0)


def test_the_weight_is_within_3e_6_of_exp_and_zero_past_the_cutoff():
    s = torch.linspace(0.0, CUTOFF32, 200_001, dtype=torch.float32)
    s = torch.cat((s, torch.tensor([CUTOFF32, math.nextafter(CUTOFF32, 10.0), 6.0, 1e30, math.inf, math.nan])))
    w = weight(s)
    exact = torch.exp(-s[:-5].double())
    assert ((w[:-5].double() - exact).abs() / exact).max() < 3e-6
    assert w[-5].item() == pytest.approx(1 / 255, rel=1e-5) and w[-4:].eq(0).all()
    assert [float(v) for v in w[:50:7]] == [float(_spec_weight(f32(v))) for v in s[:50:7].tolist()]


def test_the_weight_has_the_derivative_of_exp():
    s = torch.tensor([0.0, 0.3, 2.0, 5.0, 7.0], dtype=torch.float64, requires_grad=True)
    weight(s).sum().backward()
    assert torch.equal(s.grad, -weight(s.detach()))


def test_the_specs_weight_constants_are_the_code_s():
    """bitstream_spec.md section 12 gives the constants as float32 bit patterns; they must be these."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "bitstream_spec.md").read_text()
    section = text[text.index("## 12. Renderer") : text.index("## 13.")]
    found = {name: int(bits, 16) for name, bits in re.findall(r"\b(CUTOFF|U0|E0|C[1-5]) += (0x[0-9A-F]{8})", section)}
    code = dict(CUTOFF=CUTOFF32, U0=U0, E0=E0, **dict(zip(("C5", "C4", "C3", "C2", "C1"), COEFFICIENTS)))
    assert found == {name: int(f32(value).view(np.uint32)) for name, value in code.items()}


def test_a_decoded_gop_is_the_same_on_every_backend():
    """The decoder's whole path (exact network, renderer, rounding) gives identical 8-bit frames."""
    from stgvcodec.config import ModelConfig
    from stgvcodec.decode import gop_frames
    from stgvcodec.model import Gaussians, GopModel

    height, width = 11, 14
    means, cholesky, colors = random_gaussians(30, height, width, seed=5)
    model = GopModel(Gaussians(means, cholesky, colors), ModelConfig(levels=2, log2_table_size=6, width=16))
    generator = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for p in model.deformation.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    frames = {
        backend: np.stack([f for _, f in gop_frames(model, 3, height, width, backend)])
        for backend in BACKENDS
        if backend != "triton" or not torch.cuda.is_available()
    }
    first = frames.pop("reference")
    assert first.max() > 0
    for backend, got in frames.items():
        np.testing.assert_array_equal(got, first, err_msg=backend)
