"""stgvcodec.io: reading clips, crop and scale, PNG output, bad input."""

import av
import numpy as np
import pytest

from stgvcodec.io import probe, read_frames, write_png
from stgvcodec.io.video import VideoError
from tests.clips import moving_pattern, write_clip


def test_frames_round_trip_bit_exact(tmp_path):
    video = moving_pattern(5, 18, 22)
    path = write_clip(tmp_path / "clip.mkv", video)
    info = probe(path)
    assert (info.width, info.height, info.fps) == (22, 18, 25)
    frames = list(read_frames(path))
    assert len(frames) == 5
    np.testing.assert_array_equal(np.stack(frames), video)


def test_crop_then_scale(tmp_path):
    video = moving_pattern(2, 20, 30)
    path = write_clip(tmp_path / "clip.mkv", video)
    cropped = next(read_frames(path, crop=(10, 8)))
    np.testing.assert_array_equal(cropped, video[0, 6:14, 10:20])
    scaled = next(read_frames(path, crop=(10, 8), scale=(5, 4)))
    assert scaled.shape == (4, 5, 3)
    assert len(list(read_frames(path, max_frames=1))) == 1


def test_png_round_trip(tmp_path):
    rgb = moving_pattern(1, 7, 9)[0]
    write_png(tmp_path / "a.png", rgb)
    with av.open(str(tmp_path / "a.png")) as container:
        np.testing.assert_array_equal(next(container.decode(video=0)).to_ndarray(format="rgb24"), rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@pytest.mark.parametrize("content", [None, b"", b"definitely not a video file" * 10])
def test_bad_input_is_one_clear_error(tmp_path, content):
    path = tmp_path / "input.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match="input.mp4"):
        list(read_frames(path))


def test_crop_larger_than_frame(tmp_path):
    path = write_clip(tmp_path / "clip.mkv", moving_pattern(1, 8, 8))
    with pytest.raises(VideoError, match="does not fit"):
        list(read_frames(path, crop=(16, 8)))
