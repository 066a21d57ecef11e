"""Reading frames from anything PyAV opens, and writing PNG images.

Frames are numpy uint8 arrays [H, W, 3] in RGB, decoded with PyAV to rgb24 (for Bunny this is
bit-identical to the PNG frames the public reference code trains on).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class VideoError(ValueError):
    """An input that cannot be read as video; the message is one line for the user."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream says about itself, before decoding."""

    width: int
    """Frame width in pixels, before cropping or scaling."""
    height: int
    """Frame height in pixels, before cropping or scaling."""
    fps: Fraction
    """Average frame rate; 25 when the container gives none."""
    frames: int
    """Frame count the container reports; 0 when it does not know."""


def probe(path: str | os.PathLike) -> VideoInfo:
    """Reads the first video stream's geometry and rate.

    Raises:
        VideoError: when the file is missing, unreadable or has no video stream.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        return VideoInfo(stream.width, stream.height, Fraction(rate), stream.frames or 0)


def read_frames(
    path: str | os.PathLike,
    *,
    crop: tuple[int, int] | None = None,
    scale: tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Yields RGB frames [H, W, 3] uint8, optionally centre-cropped, then scaled.

    Args:
        path: any file PyAV can open.
        crop: (width, height) of a centre crop, applied first (Bunny 1280x720 -> 1280x640
            keeps rows 40..679).
        scale: (width, height) to resize to after cropping (area interpolation).
        max_frames: stop after this many frames.

    Raises:
        VideoError: when the file cannot be opened or decoded, or the crop does not fit.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                if max_frames is not None and index >= max_frames:
                    return
                yield crop_and_scale(frame.to_ndarray(format="rgb24"), crop, scale)
        except av.error.FFmpegError as err:
            raise VideoError(f"{path}: cannot decode video: {err}") from None


def crop_and_scale(
    rgb: np.ndarray, crop: tuple[int, int] | None = None, scale: tuple[int, int] | None = None
) -> np.ndarray:
    """Centre-crops [H, W, 3] uint8 to crop = (width, height), then resizes to scale = (width, height)."""
    if crop is not None:
        width, height = crop
        full_h, full_w = rgb.shape[:2]
        if not (0 < width <= full_w and 0 < height <= full_h):
            raise VideoError(f"crop {width}x{height} does not fit a {full_w}x{full_h} frame")
        top, left = (full_h - height) // 2, (full_w - width) // 2
        rgb = rgb[top : top + height, left : left + width]
    if scale is not None and (rgb.shape[1], rgb.shape[0]) != tuple(scale):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        rgb = frame.reformat(width=scale[0], height=scale[1], interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(rgb)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Writes an [H, W, 3] uint8 RGB image as PNG; the file appears only when complete."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
    data = b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])
    _write_atomic(Path(path), data)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _open(path: str | os.PathLike):
    if not Path(path).is_file():
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: not a video PyAV can open ({err.strerror or err})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container
