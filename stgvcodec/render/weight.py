"""The weight of a Gaussian at a pixel, w(s) ~ exp(-s): one float32 function for every backend.

The weight is normative (bitstream_spec.md, section 12): a decoder must reproduce it bit for bit
from the text, so it is not "exp" but this polynomial, evaluated in float32 with every operation
rounded once, in this order, without fused multiply-adds:

    x = min(max(s, 0), CUTOFF32)
    u = x * 0.0625 - U0
    p = C5
    p = p * u + C4;  p = p * u + C3;  p = p * u + C2;  p = p * u + C1   (each: multiply, then add)
    p = (p * u + 1) * E0
    p = p * p;  p = p * p;  p = p * p;  p = p * p
    w = p if s <= CUTOFF32 else 0

with the float32 constants below. It is exp(-x/16) around x/16 = U0 (the middle of
[0, CUTOFF / 16]) as a degree-5 Taylor polynomial, raised to the 16th power: relative error
below 3e-6 of exp(-s) on [0, ln 255] (the float32 roundings, doubled by each squaring; 3e-6 of
full scale is 0.001 of an 8-bit step), and w(0) = 0.99999905.

Why not the float32 exp of a maths library: no two libraries agree in every last bit, so no
text could fix one; and a library exp costs the CPU renderer 1.8x (libm expf, which is not
correctly rounded either) to 2.4x (binary64 exp rounded to float32) of the polynomial's forward
time, because a call keeps the per-row loops from vectorising. Measured with variants of the CPU
forward kernel on one 1280x720 frame of 40K Gaussians (stgvcodec.render.synthetic, 2-core x86-64
machine under load, CPU time): 79 ms with the polynomial and FMA contraction, 89 ms without
contraction, 161 ms with expf, 216 ms with binary64 exp. The whole kernel compiled without
fast-math (which the normative sum needs: numba hands a caller's fast-math flags to the functions
it calls) cost more, on the idle machine in tools/bench_render.py: 75 ms per frame in a batch of
10 against 58 ms for the earlier fast-math kernel (+30%), 22 against 16 ms at 640x360 and 20K.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

CUTOFF = math.log(255.0)
"""A Gaussian's weight is zero where s = 0.5 d^T Sigma^-1 d exceeds ln 255 (weight < 1/255)."""

CUTOFF32 = float(np.float32(CUTOFF))
"""The cut-off as the float32 value every comparison and clamp uses (5.5412636)."""

U0 = float(np.float32(CUTOFF / 32.0))
"""Expansion point of the polynomial in u = s / 16: the middle of [0, CUTOFF / 16]."""

E0 = float(np.float32(math.exp(-U0)))
"""exp(-U0) rounded to float32."""

COEFFICIENTS = tuple(float(np.float32(c)) for c in (-1.0 / 120.0, 1.0 / 24.0, -1.0 / 6.0, 0.5, -1.0))
"""C5, C4, C3, C2, C1: Taylor coefficients of exp(-u) (1/k! with alternating signs), float32."""


def weight(s: Tensor) -> Tensor:
    """w(s) elementwise for a float32 tensor, exactly the normative function; d w / d s = -w.

    Any other dtype evaluates the same steps in that dtype (float64: for gradient checks).
    """
    return _Weight.apply(s)


def _polynomial(s: Tensor) -> Tensor:
    # Each torch operation below is one IEEE operation on every element: no contraction happens
    # across separate kernels, so the float32 result is the text's.
    x = s.clamp(min=0.0).clamp(max=CUTOFF32)
    u = x * 0.0625 - U0
    p = torch.full_like(u, COEFFICIENTS[0])
    for coefficient in COEFFICIENTS[1:]:
        p = p * u + coefficient
    p = (p * u + 1.0) * E0
    for _ in range(4):
        p = p * p
    return torch.where(s <= CUTOFF32, p, 0.0)


class _Weight(torch.autograd.Function):
    """The polynomial forward with exp's derivative, d w / d s = -w, as the kernels use."""

    @staticmethod
    def forward(ctx, s):  # noqa: D102
        w = _polynomial(s)
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (w,) = ctx.saved_tensors
        return -w * grad
