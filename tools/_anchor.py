"""One anchor point for rd_curve.py: RGB frames -> x264 / x265 / SVT-AV1 through PyAV -> RGB frames.

    source.npy [T, H, W, 3] uint8 ─ pad to even (edge) ─ BT.709 yuv420p ─ encoder ─ .mp4
    decoded.npy <─ crop to H x W <─ rgb24 (BT.709, limited range) <─ PyAV decoder <─┘

rd_curve.py runs this file as its own process for each point,

    python tools/_anchor.py '{"source": ..., "decoded": ..., "output": ..., "codec": ..., "crf": ...,
                              "preset": ..., "fps": "25/1"}'

and reads a JSON line from stdout: encode_seconds and decode_seconds (the PyAV calls only: colour
conversion, coding and muxing, not this process's start-up or the .npy files), coded_width and
coded_height. One process per point, because in this FFmpeg build x265 corrupts the heap on some
pictures smaller than 64x64 (48x32, 34x26, ...), which kills its process at once or a later encoder
in the same process; on its own, such a point fails alone with a clear message. The process also
keeps the encoders' log output away from the caller, which shows it only when the point fails.
"""

from __future__ import annotations

import json
import sys
import time
from fractions import Fraction

import av
import numpy as np

X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
"""x264 / x265 preset names, fastest first."""
SVT_AV1_PRESETS = {
    "ultrafast": 13,
    "superfast": 12,
    "veryfast": 11,
    "faster": 10,
    "fast": 9,
    "medium": 8,
    "slow": 6,
    "slower": 4,
    "veryslow": 2,
    "placebo": 0,
}
"""x26x preset name -> SVT-AV1 preset number (0 slowest .. 13 fastest; SVT-AV1 maps 12, 13 as it likes)."""
CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (1, 63)}
"""Valid CRF values per encoder."""


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """PyAV (FFmpeg) options for one encoder.

    Args:
        codec: libx264, libx265 or libsvtav1.
        crf: constant rate factor, within CRF_RANGE[codec].
        preset: an x26x preset name (mapped through SVT_AV1_PRESETS for libsvtav1) or, for
            libsvtav1 only, an SVT-AV1 preset number.
    """
    if codec == "libsvtav1":
        preset = str(SVT_AV1_PRESETS.get(preset, preset))
    options = {"crf": str(crf), "preset": preset}
    if codec == "libx265":
        options["x265-params"] = "log-level=error"
    return options


def encode(frames: np.ndarray, path: str, codec: str, options: dict[str, str], fps: Fraction) -> None:
    """Encodes [T, H, W, 3] uint8 RGB (H and W even) as BT.709 limited-range yuv420p into `path`."""
    height, width = frames.shape[1:3]
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        context = stream.codec_context
        context.time_base = 1 / fps
        context.color_range = av.video.reformatter.ColorRange.MPEG.value
        context.colorspace = av.video.reformatter.Colorspace.ITU709.value
        context.color_primaries = av.video.reformatter.ColorPrimaries.BT709.value
        context.color_trc = av.video.reformatter.ColorTrc.BT709.value
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def decode(path: str) -> np.ndarray:
    """[T, H, W, 3] uint8 RGB of the file's first video stream, converted with the matrix encode() used."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [
            frame.reformat(format="rgb24", src_colorspace="ITU709", src_color_range="MPEG").to_ndarray()
            for frame in container.decode(stream)
        ]
    return np.stack(frames)


def run(spec: dict) -> dict:
    """Codes spec["source"] (.npy) into spec["output"] and writes the decoded frames to spec["decoded"] (.npy)."""
    source = np.load(spec["source"])  # [T, H, W, 3] uint8
    height, width = source.shape[1:3]
    # yuv420p needs even sizes: replicate the last row / column, and crop it off after decoding.
    padded = np.pad(source, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    options = encoder_options(spec["codec"], spec["crf"], spec["preset"])
    start = time.perf_counter()
    encode(padded, spec["output"], spec["codec"], options, Fraction(spec["fps"]))
    encode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    decoded = decode(spec["output"])[:, :height, :width]
    decode_seconds = time.perf_counter() - start
    np.save(spec["decoded"], np.ascontiguousarray(decoded))
    return {
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
        "coded_width": padded.shape[2],
        "coded_height": padded.shape[1],
    }


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
