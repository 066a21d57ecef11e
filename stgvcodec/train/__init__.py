"""Fitting GoP models to frames: key-frame initialisation, then deformation training."""

from .gop_fit import GopFit, fit_gop

__all__ = ["GopFit", "fit_gop"]
