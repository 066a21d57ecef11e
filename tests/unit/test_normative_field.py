"""The deformation field as the decoder evaluates it is the spec's (bitstream_spec.md section 11):
numpy transcriptions of the text reproduce the exact MLP, the plane sampling and gamma bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from stgvcodec.config import ModelConfig
from stgvcodec.model import DeformationField
from stgvcodec.model.encoding import FrequencyEncoding, PlaneEncoding

f32 = np.float32


def _randomised(field: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return field


def _spec_gamma(p: np.ndarray, frequencies: int) -> np.ndarray:
    """[p, sin(2^0 pi p), cos(2^0 pi p), ...]: float32 angles, sin/cos correctly rounded."""
    out = [p]
    for k in range(frequencies):
        angle = p * f32(2.0**k * np.pi)
        out += [np.sin(angle.astype(np.float64)).astype(f32), np.cos(angle.astype(np.float64)).astype(f32)]
    return np.concatenate(out, axis=-1)


def _spec_layer(x: np.ndarray, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """float32(b + sum_j W_ij x_j), the sum accumulated in float64 in index order."""
    w, b = weight.detach().double().numpy(), bias.detach().double().numpy()
    out = np.empty((x.shape[0], w.shape[0]), np.float64)
    for i in range(w.shape[0]):
        acc = np.full(x.shape[0], b[i])
        for j in range(w.shape[1]):
            acc = acc + w[i, j] * x[:, j].astype(np.float64)
        out[:, i] = acc
    return out.astype(f32)


def test_gamma_is_float32_angles_with_correctly_rounded_sin_and_cos():
    t = torch.tensor([[0.0], [1 / 9], [0.5], [7 / 9], [1.0]])
    got = FrequencyEncoding(1, 6)(t).numpy()
    np.testing.assert_array_equal(got, _spec_gamma(t.numpy(), 6))


def test_plane_sampling_follows_the_pseudo_code():
    planes = _randomised(PlaneEncoding(resolution=5, time_resolution=3, features=2), seed=1)
    xyt = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.3, 0.71, 0.5], [0.999, 0.25, 0.49], [-0.2, 1.4, 0.0]])
    got = planes(xyt).detach().numpy()

    def sample(plane: np.ndarray, u: f32, v: f32) -> np.ndarray:
        height, width = plane.shape[1:]
        x, y = u * f32(width - 1), v * f32(height - 1)
        x0, y0 = min(np.floor(x), f32(width - 2)), min(np.floor(y), f32(height - 2))
        fx, fy = x - x0, y - y0
        i, j = int(y0), int(x0)
        top = plane[:, i, j] * (f32(1) - fx) + plane[:, i, j + 1] * fx
        bottom = plane[:, i + 1, j] * (f32(1) - fx) + plane[:, i + 1, j + 1] * fx
        return top * (f32(1) - fy) + bottom * fy

    xy, xt, yt = (p.detach().numpy() for p in (planes.xy, planes.xt, planes.yt))
    for row, (x, y, t) in zip(got, np.clip(xyt.numpy(), 0, 1)):
        expected = np.concatenate((sample(xy, x, y), sample(xt, x, t), sample(yt, y, t)))
        np.testing.assert_array_equal(row, expected)


def test_the_decoders_mlp_is_float64_sums_rounded_once_per_layer():
    config = ModelConfig(encoding="positional", position_frequencies=3, time_frequencies=2, width=16)
    field = _randomised(DeformationField(config), seed=2).eval()
    means = torch.rand(7, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    times = torch.tensor([0.0, 0.5, 1.0])
    with torch.no_grad():
        dmu, dc = field(means, times, exact=True)

    xy = np.clip((means.numpy() + f32(1.0)) * f32(0.5), 0, 1)
    for k, t in enumerate(times.numpy()):
        features = np.concatenate(
            (_spec_gamma(xy, 3), np.repeat(_spec_gamma(np.array([[t]], f32), 2), len(xy), axis=0)), axis=1
        )
        hidden = np.maximum(_spec_layer(features, field.mlp[0].weight, field.mlp[0].bias), 0)
        hidden = np.maximum(_spec_layer(hidden, field.mlp[2].weight, field.mlp[2].bias), 0)
        np.testing.assert_array_equal(dmu[k].numpy(), _spec_layer(hidden, field.head_mu.weight, field.head_mu.bias))
        np.testing.assert_array_equal(dc[k].numpy(), _spec_layer(hidden, field.head_c.weight, field.head_c.bias))


def test_the_training_mlp_stays_within_float32_rounding_of_the_decoders():
    config = ModelConfig(levels=2, log2_table_size=6, width=32)
    field = _randomised(DeformationField(config), seed=4)
    means = torch.rand(50, 2, generator=torch.Generator().manual_seed(5)) * 2 - 1
    times = torch.linspace(0, 1, 4)
    with torch.no_grad():
        fast, exact = field(means, times), field(means, times, exact=True)
    for f, e in zip(fast, exact):
        torch.testing.assert_close(f, e, rtol=1e-5, atol=1e-5)
