"""Differentiable rendering of 2D Gaussians by summation: rasterize().

The renderer (normative; bitstream_spec.md repeats it):

    Image H x W, pixel (i, j) = (row, column), centre p = (j + 0.5, i + 0.5) in pixels.
    Gaussian n: mean m_n in NDC, centre in pixels mu_n = ((m_x + 1) W / 2, (m_y + 1) H / 2);
    L_n = [[l1, 0], [l2, l3]], Sigma_n = L_n L_n^T (pixels^2); colour c_n in R^3 (no opacity).
    d = p - mu_n,  s_n(p) = 0.5 d^T Sigma_n^-1 d,
    w_n(p) = weight(s_n(p)): exp(-s) as a fixed float32 polynomial (weight.py), 0 where s > ln 255,
    C(p) = clamp(sum_n c_n w_n(p), 0, 1), the sum taken in ascending n in float32.

    Every step is float32 with one rounding per operation, in a fixed order, so the image is
    reproducible bit for bit from the text; there is no cap on Gaussians per pixel or tile.
    Sigma_n with det = (l1 l3)^2 <= 1e-12 (or a non-finite inverse) is degenerate: w_n = 0.
    So is a Gaussian whose centre (in pixels), Sigma's diagonal or colour is not finite: any
    float input renders, and nothing non-finite reaches a kernel's integer arithmetic.
    The clamp is applied once, at the end; its gradient is zero where the sum is outside [0, 1].
    A sum that overflowed to NaN (inf - inf, only with colours near the float32 limit) becomes 0.

Backends compute this same function, the forward bit for bit, and its gradients:

    reference  dense PyTorch, the spec written out, slow; the oracle of the tests (small images only)
    cpu        numba kernels, parallel over image strips (forward) and Gaussians (backward)
    triton     GPU kernels with tile binning on the GPU
    auto       triton for CUDA tensors, cpu for CPU tensors

Backends load lazily: importing this package compiles nothing.
"""

from __future__ import annotations

import importlib
from typing import Literal

import torch
from torch import Tensor

from .kernel import RasterizeSum
from .projection import CUTOFF, project

__all__ = ["rasterize", "rasterize_sum", "clamp_image", "Backend", "BackendUnavailable", "CUTOFF", "available_backends"]

Backend = Literal["auto", "reference", "cpu", "triton"]

# backend name -> module that provides `check(device) -> None` and `rasterize_sum(...)` or a KernelBackend
_MODULES: dict[str, str] = {
    "reference": "stgvcodec.render.reference",
    "cpu": "stgvcodec.render.cpu",
    "triton": "stgvcodec.render.triton",
}

_MAX_SIDE = 1 << 15


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (missing package, wrong device)."""


def rasterize(
    means: Tensor,
    cholesky: Tensor,
    colors: Tensor,
    height: int,
    width: int,
    backend: Backend = "auto",
) -> Tensor:
    """Renders 2D Gaussians into an image by summation (see the module docstring for the math).

    Args:
        means: [N, 2] or [B, N, 2] float32 (float64: reference only) positions in NDC (x, y), [-1, 1] spans the frame.
        cholesky: [N, 3] or [B, N, 3] float32 (l1, l2, l3), Sigma = L L^T in pixels^2.
        colors: [N, 3] or [B, N, 3] float32 RGB weights.
        height: image height in pixels, >= 1.
        width: image width in pixels, >= 1.
        backend: "auto", "reference", "cpu" or "triton".

    Returns:
        [H, W, 3] (or [B, H, W, 3] for batched inputs) float32 image in [0, 1], differentiable
        in means, cholesky and colors.

    Raises:
        ValueError: on inconsistent shapes, dtypes, devices or sizes.
        BackendUnavailable: when the chosen backend cannot run on this machine or device.
    """
    return clamp_image(rasterize_sum(means, cholesky, colors, height, width, backend))


def rasterize_sum(
    means: Tensor,
    cholesky: Tensor,
    colors: Tensor,
    height: int,
    width: int,
    backend: Backend = "auto",
) -> Tensor:
    """The renderer's sum C(p) = sum_n c_n w_n(p) before clamping: rasterize() without clamp_image().

    Same arguments and errors as rasterize(); returns [H, W, 3] (or [B, H, W, 3]) in the inputs'
    dtype, unbounded (NaN only where colours near the float32 limit overflow).
    """
    batched = means.dim() == 3
    _check_inputs(means, cholesky, colors, height, width)
    if not batched:
        means, cholesky, colors = means[None], cholesky[None], colors[None]

    name = _resolve(backend, means.device)
    module = _load(name)
    if name != "reference" and means.dtype != torch.float32:
        raise ValueError(f"render backend {name!r} computes in float32, got {means.dtype}")
    centres, conics, colors, extents = project(means, cholesky, colors, height, width)
    if name == "reference":
        raw = module.rasterize_sum(centres, conics, colors, extents, height, width)
    else:
        raw = RasterizeSum.apply(module.KERNEL, centres, conics, colors, extents, height, width)
    return raw if batched else raw[0]


def clamp_image(raw: Tensor) -> Tensor:
    """The rendered image from the renderer's sum: clamped to [0, 1], +inf to 1, -inf and NaN to 0.

    Identity on finite sums inside [0, 1] (values and gradients); a NaN sum renders as 0 on every backend.
    """
    return raw.nan_to_num(nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Names of the backends that can run on `device` here."""
    names = []
    for name in _MODULES:
        try:
            _load(name).check(torch.device(device))
        except BackendUnavailable:
            continue
        names.append(name)
    return names


def _resolve(backend: str, device: torch.device) -> str:
    if backend == "auto":
        backend = "triton" if device.type == "cuda" else "cpu"
    if backend not in _MODULES:
        raise ValueError(f"unknown render backend {backend!r}; choose one of auto, {', '.join(_MODULES)}")
    _load(backend).check(device)
    return backend


def _load(name: str):
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError as err:
        raise BackendUnavailable(f"render backend {name!r} needs a package that is missing: {err}") from None


def _check_inputs(means: Tensor, cholesky: Tensor, colors: Tensor, height: int, width: int) -> None:
    if means.dim() not in (2, 3):
        raise ValueError(f"means must be [N, 2] or [B, N, 2], got {tuple(means.shape)}")
    lead = tuple(means.shape[:-1])
    for name, t, last in (("means", means, 2), ("cholesky", cholesky, 3), ("colors", colors, 3)):
        if tuple(t.shape) != lead + (last,):
            raise ValueError(f"{name} must have shape {lead + (last,)}, got {tuple(t.shape)}")
        if t.dtype != means.dtype or t.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{name} must be float32 (float64 for the reference), got {t.dtype}")
        if t.device != means.device:
            raise ValueError(f"{name} is on {t.device}, means on {means.device}")
    if not (1 <= height <= _MAX_SIDE and 1 <= width <= _MAX_SIDE):
        raise ValueError(f"image size {width}x{height} outside 1..{_MAX_SIDE}")
