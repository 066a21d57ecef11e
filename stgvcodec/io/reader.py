"""One reader for video files, raw .yuv files and directories of PNG images.

    path ─┬─ directory ─────────────── _PngDirectory ─┐
          ├─ *.yuv + size, fps, pix_fmt ─ _Container ─┤ (FFmpeg's rawvideo demuxer)
          └─ anything PyAV opens ──────── _Container ─┴─> VideoReader: max_frames, crop, scale
                                                            -> RGB [H, W, 3] uint8, one at a time
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from .video import VideoError, VideoInfo, check_crop, crop_and_scale

RAW_SUFFIX = ".yuv"
"""Inputs with this suffix are headerless planar frames, described by size, fps and pix_fmt."""
DEFAULT_FPS = Fraction(25)
"""Rate assumed for PNG directories and containers that give none."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class VideoReader:
    """RGB frames [H, W, 3] uint8 from a video file, a raw .yuv file or a directory of PNGs.

    Frames are decoded one at a time as the reader is iterated (once). Use it as a context manager
    so the file is closed:

        with VideoReader("clip.mp4", crop=(1280, 640)) as reader:
            print(reader.info)
            for rgb in reader:
                ...

    Args:
        path: any file PyAV opens; a raw `.yuv` file (needs `size` and `fps`); or a directory of
            `.png` images of one size, taken in name order (so zero-pad the frame numbers).
        size: (width, height) of a raw .yuv file.
        fps: frame rate of a raw .yuv file or PNG directory (default 25 for PNGs); for other
            inputs it replaces the rate the container gives.
        pix_fmt: FFmpeg name of a raw .yuv file's planar layout: yuv420p (default), yuv444p,
            yuv422p, yuv420p10le, gray, ...
        crop: (width, height) of a centre crop, applied first (Bunny 1280x720 -> 1280x640 keeps
            rows 40..679).
        scale: (width, height) to resize to after cropping (area interpolation).
        max_frames: stop after this many frames.

    Raises:
        VideoError: when the input is missing or unreadable, the options do not fit it, a raw
            file is not a whole number of frames, or PNG images are missing or differ in size;
            also while iterating, for a frame that does not decode.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        size: tuple[int, int] | None = None,
        fps: Fraction | None = None,
        pix_fmt: str | None = None,
        crop: tuple[int, int] | None = None,
        scale: tuple[int, int] | None = None,
        max_frames: int | None = None,
    ):
        if fps is not None and not fps > 0:
            raise VideoError(f"frame rate {fps} is not positive")
        self._source = _open_source(Path(path), size, fps, pix_fmt)
        try:
            self._info = _delivered_info(self._source.info, crop, scale, max_frames)
        except BaseException:
            self._source.close()
            raise
        self._crop, self._scale, self._max_frames = crop, scale, max_frames

    @property
    def info(self) -> VideoInfo:
        """Geometry, rate and count of the frames this reader yields (after crop and scale)."""
        return self._info

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = itertools.islice(self._source.frames(), self._max_frames)
        for rgb in frames:
            yield crop_and_scale(rgb, self._crop, self._scale)

    def close(self) -> None:
        """Closes the input file; safe to call twice."""
        self._source.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def probe(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    fps: Fraction | None = None,
    pix_fmt: str | None = None,
) -> VideoInfo:
    """Reads an input's geometry, rate and frame count without decoding frames.

    Args are those of VideoReader.

    Raises:
        VideoError: as VideoReader does when opening.
    """
    with VideoReader(path, size=size, fps=fps, pix_fmt=pix_fmt) as reader:
        return reader.info


def read_frames(path: str | os.PathLike, **options) -> Iterator[np.ndarray]:
    """Yields RGB frames [H, W, 3] uint8; `options` are VideoReader's keyword arguments.

    Raises:
        VideoError: as VideoReader does, on the first `next()`.
    """
    with VideoReader(path, **options) as reader:
        yield from reader


def raw_frame_bytes(pix_fmt: str, width: int, height: int) -> int:
    """Bytes of one width x height frame in a planar pixel format (chroma planes round up).

    Raises:
        VideoError: for an unknown or non-planar format, or a size that is not positive.
    """
    if width <= 0 or height <= 0:
        raise VideoError(f"raw frame size {width}x{height} is not positive")
    try:
        layout = av.VideoFormat(pix_fmt, width, height)
    except ValueError:
        raise VideoError(f"unknown pixel format {pix_fmt!r}") from None
    planes = [component.plane for component in layout.components]
    # With one component per plane, each sample in whole bytes (10-bit in 2), the size is a plain
    # sum; packed layouts such as bgr0 or rgb565 would need FFmpeg's padding rules.
    if len(set(planes)) != len(planes) or layout.is_bit_stream or layout.has_palette:
        raise VideoError(f"raw input needs a planar pixel format such as yuv420p, not {pix_fmt}")
    return sum(-(-c.bits // 8) * c.width * c.height for c in layout.components)


class _Source(Protocol):
    info: VideoInfo

    def frames(self) -> Iterator[np.ndarray]: ...

    def close(self) -> None: ...


def _open_source(
    path: Path, size: tuple[int, int] | None, fps: Fraction | None, pix_fmt: str | None
) -> _Source:
    if path.is_dir():
        _reject_raw_options(path, size, pix_fmt)
        return _PngDirectory(path, fps)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.suffix.lower() == RAW_SUFFIX:
        return _open_raw(path, size, fps, pix_fmt or "yuv420p")
    _reject_raw_options(path, size, pix_fmt)
    return _Container(path, fps)


def _reject_raw_options(path: Path, size: tuple[int, int] | None, pix_fmt: str | None) -> None:
    # Silently ignoring them would hide a mistyped file name or a wrong suffix.
    if size is not None or pix_fmt is not None:
        raise VideoError(f"{path}: size and pix_fmt apply only to raw {RAW_SUFFIX} input")


def _delivered_info(
    info: VideoInfo,
    crop: tuple[int, int] | None,
    scale: tuple[int, int] | None,
    max_frames: int | None,
) -> VideoInfo:
    width, height = info.width, info.height
    if crop is not None:
        check_crop(crop, width, height)
        width, height = crop
    if scale is not None:
        if min(scale) <= 0:
            raise VideoError(f"scale {scale[0]}x{scale[1]} is not positive")
        width, height = scale
    frames = info.frames
    if max_frames is not None:
        if max_frames < 0:
            raise VideoError(f"max_frames {max_frames} is negative")
        frames = min(frames, max_frames) if frames else 0
    return dataclasses.replace(info, width=width, height=height, frames=frames)


class _Container:
    """The first video stream of a file PyAV opens, decoded to rgb24."""

    def __init__(
        self,
        path: Path,
        fps: Fraction | None,
        *,
        format: str | None = None,
        options: dict[str, str] | None = None,
        frames: int | None = None,
    ):
        self._path = path
        self._container = _open_container(path, format, options)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = Fraction(fps or self._stream.average_rate or DEFAULT_FPS)
        count = (self._stream.frames or 0) if frames is None else frames
        self.info = VideoInfo(self._stream.width, self._stream.height, rate, count)

    def frames(self) -> Iterator[np.ndarray]:
        try:
            for frame in self._container.decode(self._stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            raise VideoError(f"{self._path}: cannot decode video: {err}") from None

    def close(self) -> None:
        self._container.close()


def _open_container(path: Path, format: str | None, options: dict[str, str] | None):
    try:
        container = av.open(str(path), format=format, options=options)
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: not a video PyAV can open ({err.strerror or err})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def _open_raw(
    path: Path, size: tuple[int, int] | None, fps: Fraction | None, pix_fmt: str
) -> _Container:
    """Checks a raw file against its stated format, then reads it with FFmpeg's rawvideo demuxer."""
    if size is None or fps is None:
        raise VideoError(f"{path}: raw {RAW_SUFFIX} input needs size=(width, height) and fps")
    width, height = size
    frame_bytes = raw_frame_bytes(pix_fmt, width, height)
    file_bytes = path.stat().st_size
    if file_bytes % frame_bytes:
        raise VideoError(
            f"{path}: {file_bytes} bytes is not a whole number of {width}x{height} {pix_fmt} "
            f"frames of {frame_bytes} bytes"
        )
    fps = Fraction(fps)
    options = {"video_size": f"{width}x{height}", "pixel_format": pix_fmt, "framerate": str(fps)}
    return _Container(path, fps, format="rawvideo", options=options, frames=file_bytes // frame_bytes)


class _PngDirectory:
    """The .png files of a directory in name order, one frame each, all of one size."""

    def __init__(self, path: Path, fps: Fraction | None):
        # Hidden names are skipped: editors and macOS leave `._frame.png` companions behind.
        self._files = sorted(
            file
            for file in path.iterdir()
            if file.suffix.lower() == ".png" and not file.name.startswith(".") and file.is_file()
        )
        if not self._files:
            raise VideoError(f"{path}: no .png files in the directory")
        sizes = [_png_size(file) for file in self._files]
        for file, (width, height) in zip(self._files, sizes):
            if (width, height) != sizes[0]:
                first = f"{self._files[0].name} is {sizes[0][0]}x{sizes[0][1]}"
                raise VideoError(f"{file}: {width}x{height}, but {first}")
        self.info = VideoInfo(*sizes[0], Fraction(fps or DEFAULT_FPS), len(self._files))

    def frames(self) -> Iterator[np.ndarray]:
        for file in self._files:
            yield _decode_png(file)

    def close(self) -> None:
        pass


def _decode_png(file: Path) -> np.ndarray:
    with _open_container(file, None, None) as container:
        try:
            return next(container.decode(video=0)).to_ndarray(format="rgb24")
        except (av.error.FFmpegError, StopIteration):
            raise VideoError(f"{file}: cannot decode PNG") from None


def _png_size(file: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which PNG requires right after the signature."""
    with open(file, "rb") as stream:
        head = stream.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise VideoError(f"{file}: not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return width, height
