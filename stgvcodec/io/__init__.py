"""Video and image I/O over PyAV."""

from .video import VideoInfo, crop_and_scale, probe, read_frames, write_png

__all__ = ["VideoInfo", "crop_and_scale", "probe", "read_frames", "write_png"]
