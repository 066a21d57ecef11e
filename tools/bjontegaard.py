"""Bjontegaard deltas (BD-rate, BD-PSNR) with monotone piecewise cubic (PCHIP) curves, numpy only.

    anchor (rate, PSNR) ─┐  log10(rate) ─ sort, merge ties ─ PCHIP fit ─ exact integral over the
    test   (rate, PSNR) ─┴─> PSNR ──────── sort, merge ties ─ PCHIP fit ─ overlapping range ─> mean gap

BD-rate fits r(D) = log10(rate) as a function of the quality D for both curves and averages their
gap over the quality range both cover, [lo, hi]:

    mean_gap = (integral_lo^hi r_test(D) dD - integral_lo^hi r_anchor(D) dD) / (hi - lo)
    BD-rate  = (10 ** mean_gap - 1) * 100      [percent; negative: the test codec needs fewer bits]

BD-PSNR swaps the axes: D(r) as a function of r = log10(rate), averaged over the log-rate range both
cover; BD-PSNR = mean gap in dB (positive: the test codec is better at the same rate).

This is the piecewise cubic variant of VCEG-AL22 (as in the common `bjontegaard` packages), except
that the cubic pieces are integrated exactly instead of by the trapezoidal rule on 100 samples.
A value is None, with a reason, when a curve has fewer than two distinct points or the ranges do
not overlap: extrapolating a curve would make up a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BdResult:
    """One Bjontegaard delta."""

    value: float | None
    """BD-rate in percent or BD-PSNR in dB; None when undefined."""
    reason: str | None
    """Why `value` is None; None when it is a number."""
    overlap: tuple[float, float] | None = None
    """The common range integrated over (PSNR in dB for BD-rate, log10(rate) for BD-PSNR)."""


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivatives [N] of the monotone piecewise cubic Hermite interpolant (Fritsch-Carlson).

    Interior knots take the weighted harmonic mean of the neighbouring secant slopes, or 0 where
    those differ in sign (a local extremum stays flat, so monotone data give a monotone curve);
    the end knots use the shape-preserving three-point formula. Two points give a straight line.
    These are the slopes of scipy's PchipInterpolator.

    Args:
        x: [N] strictly increasing knots, N >= 2.
        y: [N] values.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    h = np.diff(x)  # [N-1]
    delta = np.diff(y) / h  # [N-1] secant slopes
    if len(x) == 2:
        return np.full(2, delta[0])
    d = np.zeros(len(x))
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same_sign = delta[:-1] * delta[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same_sign, harmonic, 0.0)
    d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _end_slope(h0: float, h1: float, delta0: float, delta1: float) -> float:
    d = ((2 * h0 + h1) * delta0 - h0 * delta1) / (h0 + h1)
    if np.sign(d) != np.sign(delta0):
        return 0.0
    if np.sign(delta0) != np.sign(delta1) and abs(d) > 3 * abs(delta0):
        return 3 * delta0
    return d


def pchip_eval(x: np.ndarray, y: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The PCHIP interpolant through (x, y) at `query` (inside [x[0], x[-1]]; the end cubics extend outside)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    c0, c1, c2, c3 = _coefficients(x, y)
    k = np.clip(np.searchsorted(x, query, side="right") - 1, 0, len(x) - 2)
    t = np.asarray(query, np.float64) - x[k]
    return c0[k] + t * (c1[k] + t * (c2[k] + t * c3[k]))


def pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral from lo to hi (x[0] <= lo <= hi <= x[-1]) of the PCHIP interpolant through (x, y)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    c0, c1, c2, c3 = _coefficients(x, y)
    # Each interval's part of [lo, hi], as offsets t from its left knot (empty parts give 0).
    start = np.clip(lo, x[:-1], x[1:]) - x[:-1]  # [N-1]
    end = np.clip(hi, x[:-1], x[1:]) - x[:-1]

    def antiderivative(t: np.ndarray) -> np.ndarray:
        return t * (c0 + t * (c1 / 2 + t * (c2 / 3 + t * c3 / 4)))

    return float(np.sum(antiderivative(end) - antiderivative(start)))


def _coefficients(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per interval k, [N-1] each: p(t) = c0 + c1 t + c2 t^2 + c3 t^3 with t = x - x[k]."""
    d = pchip_slopes(x, y)
    h = np.diff(x)
    delta = np.diff(y) / h
    c2 = (3 * delta - 2 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] + d[1:] - 2 * delta) / h**2
    return y[:-1], d[:-1], c2, c3


def bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test) -> BdResult:
    """BD-rate of the test curve against the anchor, in percent (module docstring).

    Args:
        rate_anchor, psnr_anchor: [N] rates (any unit, e.g. bpp; > 0) and qualities (dB) of the anchor.
        rate_test, psnr_test: [M] the same for the codec under test.
    """
    curves = [
        _curve(psnr, np.log10(np.asarray(rate, np.float64)))
        for rate, psnr in ((rate_anchor, psnr_anchor), (rate_test, psnr_test))
    ]
    result = _mean_gap(*curves, axis="PSNR")
    if result.value is None:
        return result
    return BdResult((10**result.value - 1) * 100, None, result.overlap)


def bd_psnr(rate_anchor, psnr_anchor, rate_test, psnr_test) -> BdResult:
    """BD-PSNR of the test curve against the anchor, in dB (module docstring); arguments as bd_rate."""
    curves = [
        _curve(np.log10(np.asarray(rate, np.float64)), psnr)
        for rate, psnr in ((rate_anchor, psnr_anchor), (rate_test, psnr_test))
    ]
    return _mean_gap(*curves, axis="log10(rate)")


def _curve(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by x, non-finite points dropped, points with equal x merged into their mean y."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    knots, inverse = np.unique(x, return_inverse=True)
    values = np.bincount(inverse, weights=y, minlength=len(knots)) / np.bincount(inverse, minlength=len(knots))
    return knots, values


def _mean_gap(anchor: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], axis: str) -> BdResult:
    """Mean of test(x) - anchor(x) over the x range both curves cover."""
    for name, (x, _) in (("anchor", anchor), ("test", test)):
        if len(x) < 2:
            return BdResult(None, f"the {name} curve has {len(x)} distinct {axis} value(s); at least 2 are needed")
    lo, hi = max(anchor[0][0], test[0][0]), min(anchor[0][-1], test[0][-1])
    if hi <= lo:
        return BdResult(
            None,
            f"{axis} ranges do not overlap: anchor {anchor[0][0]:.4g}..{anchor[0][-1]:.4g}, "
            f"test {test[0][0]:.4g}..{test[0][-1]:.4g}",
        )
    gap = (pchip_integral(*test, lo, hi) - pchip_integral(*anchor, lo, hi)) / (hi - lo)
    return BdResult(float(gap), None, (float(lo), float(hi)))
