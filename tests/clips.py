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
    """Writes [T, H, W, 3] uint8 as headerless planar frames: BT.601 limited range, chroma planes
    averaged over 2x2 (4:2:0) or 2x1 (4:2:2) blocks, samples of 8 bits or 16 bits little-endian.

    The conversion is numpy's, not swscale's: swscale's rgb24 -> yuv420p10le reads past the end of
    odd-width rows, so the same frames gave different files from run to run.
    """
    layout = av.VideoFormat(pix_fmt, video.shape[2], video.shape[1])
    bits = layout.components[0].bits
    planes = {component.plane: (component.width, component.height) for component in layout.components}
    with open(path, "wb") as file:
        for rgb in video:
            for plane, (width, height) in zip(_yuv601(rgb), planes.values()):
                samples = np.round(_subsample(plane, width, height) * (1 << (bits - 8)))
                file.write(samples.astype("<u2" if bits > 8 else np.uint8).tobytes())
    return path


def _yuv601(rgb: np.ndarray) -> list[np.ndarray]:
    """Y, U, V planes [H, W] float64 (8-bit scale, BT.601 limited range) of an RGB frame."""
    r, g, b = (rgb[..., k].astype(np.float64) / 255 for k in range(3))
    return [
        16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b),
        128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b),
        128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b),
    ]


def _subsample(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """`plane` reduced to height x width by averaging blocks of 1, 2 or 4 samples (an odd last row
    or column is repeated)."""
    step_y, step_x = -(-plane.shape[0] // height), -(-plane.shape[1] // width)
    plane = np.pad(plane, ((0, -plane.shape[0] % step_y), (0, -plane.shape[1] % step_x)), mode="edge")
    return plane.reshape(height, step_y, width, step_x).mean(axis=(1, 3))
