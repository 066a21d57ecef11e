"""Video and image I/O over PyAV: VideoReader and VideoWriter, RGB frames [H, W, 3] uint8."""

from .reader import VideoReader, probe, raw_frame_bytes, read_frames
from .video import VideoError, VideoInfo, crop_and_scale, encode_png, parse_size, write_png
from .writer import SUPPORTED_OUTPUTS, VideoWriter

__all__ = [
    "SUPPORTED_OUTPUTS",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "crop_and_scale",
    "encode_png",
    "parse_size",
    "probe",
    "raw_frame_bytes",
    "read_frames",
    "write_png",
]
