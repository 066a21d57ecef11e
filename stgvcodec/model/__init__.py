"""What the codec stores: Gaussians and, per GoP, the deformation that moves them."""

from .deformation import DeformationField
from .gaussians import Gaussians
from ..gop import frame_times, split_gops
from .gop import GopModel

__all__ = ["DeformationField", "Gaussians", "GopModel", "frame_times", "split_gops"]
