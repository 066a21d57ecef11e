"""What the codec stores: Gaussians and, per GoP, the deformation that moves them."""

from .gaussians import Gaussians

__all__ = ["Gaussians"]
