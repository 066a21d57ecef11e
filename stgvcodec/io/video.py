"""Frames, errors and still images shared by the reader and the writer.

Frames are numpy uint8 arrays [H, W, 3] in RGB. Decoding goes through PyAV to rgb24 (for Bunny
this is bit-identical to the PNG frames the public reference code trains on).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from .atomic import write_atomic


class VideoError(ValueError):
    """A video input or output that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video says about itself, before decoding."""

    width: int
    """Width in pixels of the frames delivered (after any crop and scale)."""
    height: int
    """Height in pixels of the frames delivered (after any crop and scale)."""
    fps: Fraction
    """Frame rate; 25 when the container gives none."""
    frames: int
    """Frame count, capped at any `max_frames`: the container's own count, exact for raw .yuv
    files and PNG directories; 0 when there are none or the container does not say."""


def parse_size(text: str) -> tuple[int, int]:
    """"WIDTHxHEIGHT" -> (width, height), both >= 1.

    Raises:
        ValueError: with a one-line message naming the text.
    """
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT") from None
    if width < 1 or height < 1:
        raise ValueError(f"{text!r} must be positive")
    return width, height


def check_crop(crop: tuple[int, int], width: int, height: int) -> None:
    """Raises VideoError unless a (width, height) crop fits a width x height frame."""
    if not (0 < crop[0] <= width and 0 < crop[1] <= height):
        raise VideoError(f"crop {crop[0]}x{crop[1]} does not fit a {width}x{height} frame")


def crop_and_scale(
    rgb: np.ndarray, crop: tuple[int, int] | None = None, scale: tuple[int, int] | None = None
) -> np.ndarray:
    """Centre-crops [H, W, 3] uint8 to crop = (width, height), then resizes to scale = (width, height)."""
    if crop is not None:
        width, height = crop
        full_h, full_w = rgb.shape[:2]
        check_crop(crop, full_w, full_h)
        top, left = (full_h - height) // 2, (full_w - width) // 2
        rgb = rgb[top : top + height, left : left + width]
    if scale is not None and (rgb.shape[1], rgb.shape[0]) != tuple(scale):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        rgb = frame.reformat(width=scale[0], height=scale[1], interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(rgb)


def encode_png(rgb: np.ndarray) -> bytes:
    """Compresses an [H, W, 3] uint8 RGB image to PNG file bytes (lossless)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Writes an [H, W, 3] uint8 RGB image as PNG; the file appears only when complete."""
    write_atomic(path, encode_png(rgb))
