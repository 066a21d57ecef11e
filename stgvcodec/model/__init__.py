"""What the codec stores: Gaussians and, per GoP, the deformation that moves them."""

from .deformation import DeformationField
from .gaussians import Gaussians
from .gop import GopModel, frame_times, split_gops

__all__ = ["DeformationField", "Gaussians", "GopModel", "frame_times", "split_gops"]
