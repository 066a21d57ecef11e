"""Tiny test clips made with PyAV from numpy patterns."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_pattern(frames: int, height: int, width: int) -> np.ndarray:
    """[T, H, W, 3] uint8: a smooth colour gradient with a bright square moving right."""
    y, x = np.mgrid[0:height, 0:width]
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        video[t, ..., 0] = (x * 255 // max(width - 1, 1)).astype(np.uint8)
        video[t, ..., 1] = (y * 255 // max(height - 1, 1)).astype(np.uint8)
        video[t, ..., 2] = 60
        left = (t * 2) % max(width - 4, 1)
        video[t, height // 4 : height // 4 + 4, left : left + 4] = 250
    return video


def write_clip(path: Path, video: np.ndarray, fps: int = 25) -> Path:
    """Writes [T, H, W, 3] uint8 losslessly (ffv1 in .mkv), so decoded frames equal `video`."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "bgr0"
        stream.codec_context.time_base = Fraction(1, fps)
        for index, rgb in enumerate(video):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_raw_yuv(path: Path, video: np.ndarray, pix_fmt: str = "yuv420p") -> Path:
    """Writes [T, H, W, 3] uint8 as headerless planar frames (swscale's default BT.601 matrix)."""
    sample_bytes = -(-av.VideoFormat(pix_fmt).components[0].bits // 8)
    with open(path, "wb") as file:
        for rgb in video:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            for plane in frame.planes:
                # Rows in memory are padded to line_size; the file holds only the visible bytes.
                rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                file.write(rows[:, : plane.width * sample_bytes].tobytes())
    return path
