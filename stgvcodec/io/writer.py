"""Writing RGB frames as they come, to a video file, standard output or a directory of PNGs.

    VideoWriter(path) ─┬─ *.mp4 ─ libx264 ──────┐
                       ├─ *.mkv ─ ffv1 (bgr0) ──┼─ PyAV muxer ─> .out.partXXXXXXXX.mp4 ─┐
                       ├─ *.y4m ─ rawvideo ─────┘                                     ├─ renamed
                       ├─ "dir/" ─ frame_000000.png, ... ─> .dir.partXXXXXXXX/ ───────┘  on close
                       └─ "-" ─── y4m to standard output, straight through

Frames are encoded one by one, so memory stays bounded whatever the length. A file output
appears under its name only after a clean close; an exception inside the `with` block (Ctrl-C
included) removes the partial output.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

import av
import numpy as np

from .atomic import StagedPath
from .video import VideoError, encode_png

SUPPORTED_OUTPUTS = ".mp4 (H.264), .mkv (lossless FFV1), .y4m, - (y4m to stdout), or a directory/ (PNGs)"
"""The output kinds, as listed in error messages and help texts."""
PNG_NAME = "frame_{:06d}.png"
"""File name of frame i in a PNG directory output."""


@dataclass(frozen=True)
class _Encoding:
    """How one container kind stores RGB frames."""

    muxer: str
    """FFmpeg format name."""
    codec: str
    """FFmpeg encoder name."""
    pix_fmt: str
    """Pixel format for even widths and heights."""
    odd_pix_fmt: str
    """Pixel format when the width or height is odd."""
    matrix: str | None = None
    """swscale colorspace for RGB -> YUV; None for RGB pixel formats."""
    tag_colors: bool = False
    """Whether the stream is tagged BT.709 (matrix, primaries, transfer) and limited range."""
    options: dict[str, str] = field(default_factory=dict)
    """Muxer options."""
    min_width: int = 1
    """Narrowest frame the encoder takes."""

    def pix_fmt_for(self, width: int, height: int) -> str:
        """The pixel format for a width x height stream."""
        return self.odd_pix_fmt if width % 2 or height % 2 else self.pix_fmt


_ENCODINGS = {
    # 4:2:0 for even sizes plays everywhere. It cannot hold an odd size: libx264 rejects one, H.264
    # crops 4:2:0 pictures only in steps of 2 pixels, and mp4-level crops are ignored by many
    # players. So odd sizes use 4:4:4 (High 4:4:4 Predictive), decoded at the exact size by FFmpeg
    # and players built on it (PyAV, VLC, mpv), though not by browsers or most hardware decoders.
    # BT.709 is converted and tagged because sRGB shares its primaries and players assume it for
    # HD; PyAV honours the tag when decoding.
    ".mp4": _Encoding(
        "mp4", "libx264", "yuv420p", "yuv444p", "ITU709", True, {"movflags": "+faststart"}
    ),
    # FFV1 on bgr0 stores the RGB bytes themselves: decoding gives back the input bit for bit.
    ".mkv": _Encoding("matroska", "ffv1", "bgr0", "bgr0", min_width=2),  # FFmpeg's ffv1 refuses width 1
    # y4m is uncompressed, so 4:4:4 costs only size and keeps full chroma at any width/height.
    # y4m cannot say which matrix it uses and FFmpeg readers then assume BT.601, so convert with it.
    ".y4m": _Encoding("yuv4mpegpipe", "rawvideo", "yuv444p", "yuv444p", "ITU601"),
}
_STDOUT = "-"


class VideoWriter:
    """Writes RGB frames [H, W, 3] uint8 to the output `path` names, as they come.

    The output kind follows `path`:
      - `*.mp4`: H.264 (libx264, `crf`, preset medium); yuv420p, or yuv444p at odd sizes.
      - `*.mkv`: FFV1 on bgr0, lossless: decoding gives back the frames exactly.
      - `*.y4m`: uncompressed yuv444p (BT.601, limited range).
      - `-`: the same y4m on standard output (for piping into ffmpeg, x264, ...); it streams
        as it goes, so an exception leaves the reader a truncated stream.
      - a path ending in `/`, or an existing directory: `frame_000000.png`, ... inside it.

    Use it as a context manager; a file or directory output appears only when the block ends
    without an exception:

        with VideoWriter("out.mp4", 1280, 720, Fraction(25)) as writer:
            for rgb in frames:
                writer.write(rgb)

    Args:
        path: the output, as above.
        width: frame width in pixels.
        height: frame height in pixels.
        fps: frame rate, e.g. Fraction(30000, 1001).
        crf: x264 constant rate factor for .mp4 (0 lossless .. 51 worst); 18 is visually near
            lossless.

    Raises:
        VideoError: for an unsupported output, a missing parent directory, a PNG directory that
            exists and is not empty, standard output that is a terminal, or bad parameters.
    """

    def __init__(
        self, path: str | os.PathLike, width: int, height: int, fps: Fraction, crf: int = 18
    ):
        _check_parameters(width, height, fps, crf)
        self._path = str(path)
        self._shape = (height, width, 3)
        self._frames = 0
        self._closed = False
        self._staged, self._sink = _open_output(self._path, width, height, Fraction(fps), crf)

    def write(self, frame: np.ndarray) -> None:
        """Encodes one frame [H, W, 3] uint8 RGB.

        Raises:
            VideoError: when the frame's shape or dtype does not match the output.
        """
        if frame.shape != self._shape or frame.dtype != np.uint8:
            raise VideoError(f"frame is {frame.shape} {frame.dtype}, the output takes {self._shape} uint8")
        try:
            self._sink.write(np.ascontiguousarray(frame))
        except av.error.FFmpegError as err:
            # The message names the output the user asked for, never the hidden temporary file.
            height, width = self._shape[:2]
            raise VideoError(f"{self._path}: the encoder refused {width}x{height} frames ({err.strerror})") from None
        self._frames += 1

    def close(self) -> None:
        """Finishes the output and moves it under its name; a second call does nothing.

        Raises:
            VideoError: when no frame was written (nothing is left behind).
        """
        if self._closed:
            return
        self._closed = True
        try:
            if not self._frames:
                raise VideoError(f"{self._path}: no frames were written, so nothing was saved")
            try:
                self._sink.close()
            except av.error.FFmpegError as err:
                raise VideoError(f"{self._path}: cannot finish the output ({err.strerror})") from None
            if self._staged is not None:
                self._staged.commit()
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Drops the output: stops the encoder and removes the partial file or directory."""
        if not self._closed:
            self._closed = True
            self._discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _discard(self) -> None:
        self._sink.abort()
        if self._staged is not None:
            self._staged.discard()


class _Sink(Protocol):
    def write(self, rgb: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


MAX_RATE_TERM = (1 << 31) - 1
"""Containers store the frame rate and time base as fractions of 32-bit signed integers."""


def container_rate(fps: Fraction) -> Fraction:
    """`fps` as a fraction whose terms fit a container: itself when they do, else the closest
    fraction that does (a rate such as 4294967295/4294967294 fps is legal in a .stgv header).

    Raises:
        VideoError: for a rate of 2**31 - 1 fps or more, which no container can store.
    """
    fps = Fraction(fps)
    if fps.numerator <= MAX_RATE_TERM and fps.denominator <= MAX_RATE_TERM:
        return fps
    if fps >= MAX_RATE_TERM:
        raise VideoError(f"frame rate {float(fps):.6g} fps is too high for a video container")
    if fps < Fraction(1, MAX_RATE_TERM):
        return Fraction(1, MAX_RATE_TERM)
    # A denominator of at most MAX / ceil(fps) keeps the numerator, about fps times it, in range.
    return fps.limit_denominator(MAX_RATE_TERM // math.ceil(fps))


def _check_parameters(width: int, height: int, fps: Fraction, crf: int) -> None:
    if width <= 0 or height <= 0:
        raise VideoError(f"frame size {width}x{height} is not positive")
    if fps <= 0:
        raise VideoError(f"frame rate {fps} is not positive")
    container_rate(fps)
    if not 0 <= crf <= 51:
        raise VideoError(f"crf {crf} is outside 0..51")


def _open_output(
    path: str, width: int, height: int, fps: Fraction, crf: int
) -> tuple[StagedPath | None, _Sink]:
    """Chooses the output kind from the path; returns the staged temporary (None for stdout) and the sink."""
    if path == _STDOUT:
        return None, _ContainerSink(_binary_stdout(), _ENCODINGS[".y4m"], width, height, fps, crf)
    target = Path(path)
    if path.endswith(("/", os.sep)) or target.is_dir():
        _check_png_target(target)
        staged = StagedPath(target, directory=True)
        return staged, _PngSink(staged.tmp)
    encoding = _ENCODINGS.get(target.suffix.lower())
    if encoding is None:
        raise VideoError(f"{path}: unsupported output; use {SUPPORTED_OUTPUTS}")
    if width < encoding.min_width:
        raise VideoError(f"{path}: {encoding.codec} cannot code frames {width} pixel wide; use .y4m or a directory/ of PNGs")
    _check_parent(target)
    staged = StagedPath(target)
    try:
        return staged, _ContainerSink(str(staged.tmp), encoding, width, height, fps, crf)
    except av.error.FFmpegError as err:
        staged.discard()
        raise VideoError(f"{path}: cannot open for writing ({err.strerror})") from None
    except BaseException:
        staged.discard()
        raise


def _binary_stdout() -> BinaryIO:
    if sys.stdout.isatty():
        raise VideoError("standard output is a terminal; pipe the y4m video into a program or a file")
    return sys.stdout.buffer


def _check_parent(target: Path) -> None:
    if not target.parent.is_dir():
        raise VideoError(f"{target}: {target.parent} is not an existing directory")


def _check_png_target(target: Path) -> None:
    # The finished directory is renamed onto the target, which only works for a missing or empty
    # one; refusing up front also keeps old frames from mixing with new ones.
    if target.exists() and not target.is_dir():
        raise VideoError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        raise VideoError(f"{target}: directory is not empty")
    _check_parent(target)


class _ContainerSink:
    """Encodes frames into a PyAV container written to a path or a binary file object."""

    def __init__(
        self,
        target: str | BinaryIO,
        encoding: _Encoding,
        width: int,
        height: int,
        fps: Fraction,
        crf: int,
    ):
        self._target, self._encoding = target, encoding
        self._container = av.open(target, "w", format=encoding.muxer, options=encoding.options)
        try:
            self._stream = _add_stream(self._container, encoding, width, height, fps, crf)
        except BaseException:
            self._container.close()
            raise
        self._frames = 0

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if self._encoding.matrix is None:
            frame = frame.reformat(format=self._stream.pix_fmt)
        else:
            frame = frame.reformat(
                format=self._stream.pix_fmt,
                dst_colorspace=self._encoding.matrix,
                dst_color_range="MPEG",
            )
        frame.pts = self._frames
        self._container.mux(self._stream.encode(frame))
        self._frames += 1

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()
        if not isinstance(self._target, str):
            self._target.flush()

    def abort(self) -> None:
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError):
            pass  # The partial output is being thrown away; the first error is the one to report.


def _add_stream(container, encoding: _Encoding, width: int, height: int, fps: Fraction, crf: int):
    options = {"crf": str(crf), "preset": "medium"} if encoding.codec == "libx264" else {}
    fps = container_rate(fps)
    stream = container.add_stream(encoding.codec, rate=fps, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = encoding.pix_fmt_for(width, height)
    context = stream.codec_context
    context.time_base = 1 / fps
    if encoding.matrix is not None:
        context.color_range = av.video.reformatter.ColorRange.MPEG.value
    if encoding.tag_colors:
        # Colorspace holds swscale's numbers; BT.709 is 1 there and in FFmpeg's AVColorSpace alike.
        context.colorspace = av.video.reformatter.Colorspace.ITU709.value
        context.color_primaries = av.video.reformatter.ColorPrimaries.BT709.value
        context.color_trc = av.video.reformatter.ColorTrc.BT709.value
    return stream


class _PngSink:
    """Writes frame i as PNG_NAME.format(i) into a directory."""

    def __init__(self, directory: Path):
        self._directory = directory
        self._frames = 0

    def write(self, rgb: np.ndarray) -> None:
        (self._directory / PNG_NAME.format(self._frames)).write_bytes(encode_png(rgb))
        self._frames += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
