"""Fitting Gaussians to frames."""

from .image_fit import ImageFitConfig, fit_image

__all__ = ["ImageFitConfig", "fit_image"]
