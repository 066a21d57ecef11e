"""Groups of pictures: how a video is split, and the time of each frame (no torch: the bitstream uses it)."""

from __future__ import annotations

import itertools


def split_gops(frame_count: int, gop_size: int = 10) -> list[tuple[int, int]]:
    """Splits a video into GoPs: (first frame, frame count) each.

    GoPs hold `gop_size` frames; a trailing remainder shorter than half a GoP joins the previous
    GoP, a longer one is a GoP of its own (132 frames -> 12 GoPs of 10 and one of 12).
    """
    if frame_count < 1 or gop_size < 1:
        raise ValueError(f"need at least one frame and a GoP size >= 1, got {frame_count} and {gop_size}")
    sizes = [gop_size] * (frame_count // gop_size)
    remainder = frame_count % gop_size
    if remainder and sizes and 2 * remainder < gop_size:
        sizes[-1] += remainder
    elif remainder:
        sizes.append(remainder)
    starts = itertools.accumulate(sizes[:-1], initial=0)
    return list(zip(starts, sizes))


def frame_times(count: int) -> list[float]:
    """Time of frame k of a GoP of `count` frames: k / max(count - 1, 1)."""
    return [k / max(count - 1, 1) for k in range(count)]
