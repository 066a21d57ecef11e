"""stgvcodec.io VideoWriter and VideoReader: every output kind round-trips at even and odd sizes,
outputs are atomic, raw .yuv and PNG-directory inputs read back, bad paths fail in one line."""

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stgvcodec.io import VideoError, VideoInfo, VideoReader, VideoWriter, probe, write_png
from stgvcodec.metrics import psnr
from tests.clips import moving_pattern, write_clip, write_raw_yuv

FPS = Fraction(30000, 1001)
SIZES = [(64, 48), (63, 47)]
"""(width, height): even, and odd both ways (4:2:0 encoders reject odd sizes)."""
MIN_PSNR_DB = 35.0
"""Lossy floor per frame on the moving pattern: mp4 at crf 18 gives about 38.5 dB at 64x48
(yuv420p) and 41 dB at 63x47 (yuv444p); y4m yuv444p about 52 dB (RGB -> YUV rounding only)."""
REPO = Path(__file__).resolve().parents[2]


def _write(path, video: np.ndarray, fps: Fraction = FPS) -> Path:
    with VideoWriter(path, video.shape[2], video.shape[1], fps) as writer:
        for rgb in video:
            writer.write(rgb)
    return Path(path)


def _read(path, **options) -> tuple[VideoInfo, np.ndarray]:
    with VideoReader(path, **options) as reader:
        return reader.info, np.stack(list(reader))


def _ids(size):
    return f"{size[0]}x{size[1]}"


@pytest.mark.parametrize("size", SIZES, ids=_ids)
def test_mkv_is_bit_exact(tmp_path, size):
    video = moving_pattern(4, size[1], size[0])
    info, frames = _read(_write(tmp_path / "out.mkv", video))
    assert (info.width, info.height, info.fps) == (*size, FPS)
    np.testing.assert_array_equal(frames, video)


@pytest.mark.parametrize("size", SIZES, ids=_ids)
@pytest.mark.parametrize("suffix", [".mp4", ".y4m"])
def test_lossy_outputs_round_trip(tmp_path, suffix, size):
    video = moving_pattern(5, size[1], size[0])
    info, frames = _read(_write(tmp_path / f"out{suffix}", video))
    assert (info.width, info.height, info.fps) == (*size, FPS)
    assert frames.shape == video.shape
    assert min(psnr(a, b) for a, b in zip(frames, video)) > MIN_PSNR_DB


@pytest.mark.parametrize(("size", "pix_fmt"), [(SIZES[0], "yuv420p"), (SIZES[1], "yuv444p")])
def test_mp4_pixel_format_and_colour_tags(tmp_path, size, pix_fmt):
    path = _write(tmp_path / "out.mp4", moving_pattern(2, size[1], size[0]))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        assert (stream.codec_context.name, stream.pix_fmt, stream.frames) == ("h264", pix_fmt, 2)
        assert (frame.colorspace, frame.color_primaries, frame.color_trc) == (1, 1, 1)  # BT.709


def test_y4m_to_stdout_streams_without_files(tmp_path):
    script = (
        "from fractions import Fraction\n"
        "from stgvcodec.io import VideoWriter\n"
        "from tests.clips import moving_pattern\n"
        "with VideoWriter('-', 17, 11, Fraction(30000, 1001)) as writer:\n"
        "    for rgb in moving_pattern(3, 11, 17):\n"
        "        writer.write(rgb)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, check=True
    )
    assert done.stdout.startswith(b"YUV4MPEG2 W17 H11 F30000:1001 ")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "piped.y4m").write_bytes(done.stdout)
    info, frames = _read(tmp_path / "piped.y4m")
    assert (info.width, info.height, info.fps, len(frames)) == (17, 11, FPS, 3)
    assert min(psnr(a, b) for a, b in zip(frames, moving_pattern(3, 11, 17))) > MIN_PSNR_DB


def test_stdout_terminal_is_refused(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    with pytest.raises(VideoError, match="terminal"):
        VideoWriter("-", 16, 16, FPS)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-empty"])
def test_png_directory_output(tmp_path, existing):
    video = moving_pattern(3, 11, 17)
    target = tmp_path / "frames"
    if existing:
        target.mkdir()
    _write(target if existing else f"{target}/", video)
    assert sorted(p.name for p in target.iterdir()) == [f"frame_00000{i}.png" for i in range(3)]
    assert list(tmp_path.iterdir()) == [target]
    np.testing.assert_array_equal(_read(target)[1], video)


def test_png_directory_output_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "old.png").write_bytes(b"keep")
    with pytest.raises(VideoError, match="not empty"):
        VideoWriter(tmp_path, 17, 11, FPS)
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]


@pytest.mark.parametrize("name", ["out.mp4", "out.mkv", "out.y4m", "frames/"])
def test_interrupt_inside_with_leaves_the_old_state(tmp_path, name):
    final = tmp_path / name
    if final.suffix:
        final.write_bytes(b"previous run")
    else:
        final.mkdir()
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(f"{tmp_path}/{name}", 17, 11, FPS) as writer:
            writer.write(moving_pattern(1, 11, 17)[0])
            partial = [p.name for p in tmp_path.iterdir() if p != final]
            assert len(partial) == 1 and partial[0].startswith(f".{final.stem}.stgv-part-")
            assert partial[0].endswith(final.suffix)
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == [final.name]
    if final.suffix:
        assert final.read_bytes() == b"previous run"
    else:
        assert not any(final.iterdir())


def test_bad_frame_or_no_frames_leave_nothing(tmp_path):
    with pytest.raises(VideoError, match=r"\(11, 17, 3\) uint8"):
        with VideoWriter(tmp_path / "out.mkv", 17, 11, FPS) as writer:
            writer.write(np.zeros((11, 17, 3), np.float32))
    with pytest.raises(VideoError, match="no frames"):
        with VideoWriter(tmp_path / "out.mp4", 17, 11, FPS):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.avi", "out", "missing/out.mp4", "out.png/x.mkv"])
def test_bad_outputs_are_one_line_errors(tmp_path, name):
    (tmp_path / "out.png").write_bytes(b"a file, not a directory")
    with pytest.raises(VideoError) as error:
        VideoWriter(tmp_path / name, 16, 16, FPS)
    assert "\n" not in str(error.value)
    if "missing" not in name and "/x" not in name:
        assert ".mp4" in str(error.value) and ".y4m" in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_raw_yuv420p_planes_from_numpy(tmp_path):
    # 5x3 frames: Y 15 bytes, then U and V of 3x2 each (odd sides round up) = 27 bytes a frame.
    grey = np.concatenate([np.full(15, 126), np.full(12, 128)])
    red = np.concatenate([np.full(15, 126), np.full(6, 128), np.full(6, 200)])  # U, then V (Cr)
    path = tmp_path / "clip.yuv"
    path.write_bytes(np.concatenate([grey, red]).astype(np.uint8).tobytes())
    info, frames = _read(path, size=(5, 3), fps=Fraction(50))
    assert info == VideoInfo(5, 3, Fraction(50), 2)
    assert np.abs(frames[0].astype(int) - 128).max() <= 1  # (126 - 16) * 255 / 219 = 128.1
    red_pixel = frames[1].reshape(-1, 3).astype(int).mean(0)
    assert red_pixel[0] > 230 and red_pixel[1] < 80 and abs(red_pixel[2] - 128) <= 2


def test_raw_yuv420p10le_samples_are_little_endian_16_bit(tmp_path):
    # 5x3 frames: Y 15 samples, then U and V of 3x2 each, 2 bytes a sample = 54 bytes a frame.
    grey = np.concatenate([np.full(15, 126 * 4), np.full(12, 512)])
    red = np.concatenate([np.full(15, 126 * 4), np.full(6, 512), np.full(6, 800)])
    path = tmp_path / "clip.yuv"
    path.write_bytes(np.concatenate([grey, red]).astype("<u2").tobytes())
    info, frames = _read(path, size=(5, 3), fps=Fraction(50), pix_fmt="yuv420p10le")
    assert info == VideoInfo(5, 3, Fraction(50), 2)
    assert np.abs(frames[0].astype(int) - 128).max() <= 1
    red_pixel = frames[1].reshape(-1, 3).astype(int).mean(0)
    assert red_pixel[0] > 230 and red_pixel[1] < 80 and abs(red_pixel[2] - 128) <= 2


def test_raw_yuv_test_clips_are_reproducible(tmp_path):
    # The clips below must not depend on uninitialised memory (swscale's odd-width rgb24 ->
    # yuv420p10le conversion did, and made the round trip fail about 1 run in 15).
    video = moving_pattern(3, 11, 17)
    first = write_raw_yuv(tmp_path / "a.yuv", video, "yuv420p10le").read_bytes()
    assert all(write_raw_yuv(tmp_path / "b.yuv", video, "yuv420p10le").read_bytes() == first for _ in range(30))


# 17x11 4:2:0 loses chroma around the square's edges (the clips average 2x2 blocks, FFmpeg's
# reader interpolates): about 30.6 dB; 4:4:4 about 52.5 dB. A misread plane gives about 12 dB.
@pytest.mark.parametrize(("pix_fmt", "min_db"), [("yuv420p", 28), ("yuv444p", 50), ("yuv420p10le", 28)])
def test_raw_yuv_round_trip(tmp_path, pix_fmt, min_db):
    video = moving_pattern(3, 11, 17)
    path = write_raw_yuv(tmp_path / "clip.yuv", video, pix_fmt)
    info, frames = _read(path, size=(17, 11), fps=FPS, pix_fmt=pix_fmt)
    assert info == VideoInfo(17, 11, FPS, 3)
    assert frames.shape == video.shape
    assert min(psnr(a, b) for a, b in zip(frames, video)) > min_db


def test_raw_yuv_errors_and_empty_file(tmp_path):
    path = tmp_path / "clip.yuv"
    path.write_bytes(bytes(54))
    with pytest.raises(VideoError, match="54 bytes .* 36 bytes"):
        VideoReader(path, size=(6, 4), fps=FPS)
    with pytest.raises(VideoError, match="needs size"):
        VideoReader(path, fps=FPS)
    with pytest.raises(VideoError, match="planar"):
        VideoReader(path, size=(5, 3), fps=FPS, pix_fmt="rgb24")
    with pytest.raises(VideoError, match="apply only to raw"):
        VideoReader(write_clip(tmp_path / "clip.mkv", moving_pattern(1, 4, 4)), size=(4, 4))
    path.write_bytes(b"")
    with VideoReader(path, size=(6, 4), fps=FPS) as reader:
        assert reader.info.frames == 0 and list(reader) == []


def test_png_directory_input(tmp_path):
    video = moving_pattern(3, 11, 17)
    for index in (2, 0, 1):
        write_png(tmp_path / f"f{index}.png", video[index])
    (tmp_path / "notes.txt").write_text("not a frame")
    info, frames = _read(tmp_path, fps=Fraction(10))
    assert info == VideoInfo(17, 11, Fraction(10), 3)
    np.testing.assert_array_equal(frames, video)
    assert probe(tmp_path).fps == 25


def test_png_directory_input_errors(tmp_path):
    with pytest.raises(VideoError, match="no .png"):
        VideoReader(tmp_path)
    write_png(tmp_path / "a.png", moving_pattern(1, 11, 17)[0])
    write_png(tmp_path / "b.png", moving_pattern(1, 4, 5)[0])
    write_png(tmp_path / "c.png", moving_pattern(1, 5, 5)[0])
    with pytest.raises(VideoError, match=r"b\.png: 5x4, but a\.png is 17x11"):
        VideoReader(tmp_path)


def test_reader_info_describes_the_frames_it_yields(tmp_path):
    path = write_raw_yuv(tmp_path / "clip.yuv", moving_pattern(4, 20, 30), "yuv444p")
    raw = {"size": (30, 20), "fps": FPS, "pix_fmt": "yuv444p"}
    with VideoReader(path, crop=(10, 8), scale=(5, 4), max_frames=3, **raw) as reader:
        assert reader.info == VideoInfo(5, 4, FPS, 3)
        assert [rgb.shape for rgb in reader] == [(4, 5, 3)] * 3
    with pytest.raises(VideoError, match="does not fit"):
        VideoReader(path, crop=(40, 8), **raw)


def test_staged_file_appears_only_when_the_block_completes(tmp_path):
    from stgvcodec.io.atomic import staged_file, write_atomic

    final = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with staged_file(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    write_atomic(final, b"whole")
    assert final.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [final]


def test_partial_outputs_of_dead_processes_are_removed_by_the_next_run(tmp_path):
    """A process killed outright leaves its hidden partial output; the next output to the same
    name removes it, but not one a running process is writing, nor another output's."""
    from stgvcodec.io.atomic import StagedPath

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    final = tmp_path / "out.mkv"
    alive = StagedPath(final)
    stale_file = alive.tmp.with_name(alive.tmp.name.replace(f"-{os.getpid()}-", f"-{dead_pid}-"))
    stale_file.write_bytes(b"left by a killed decode")
    other = StagedPath(tmp_path / "other.mkv")
    _write(final, moving_pattern(1, 11, 17))
    assert not stale_file.exists()
    assert alive.tmp.exists() and other.tmp.exists() and final.exists()


def test_sigterm_removes_the_partial_output(tmp_path):
    """SIGTERM unwinds `stgv decode` like Ctrl-C: exit 143, no output, no hidden partial file."""
    import signal
    import time

    script = (
        "import sys, time\n"
        "from fractions import Fraction\n"
        "import stgvcodec.decode\n"
        "from stgvcodec.cli import main\n"
        "from tests.clips import moving_pattern\n"
        "def slow(source, output, **kwargs):\n"
        "    from stgvcodec.io import VideoWriter\n"
        "    with VideoWriter(output, 17, 11, Fraction(25)) as writer:\n"
        "        writer.write(moving_pattern(1, 11, 17)[0])\n"
        "        print('writing', flush=True)\n"
        "        time.sleep(60)\n"
        "stgvcodec.decode.decode = slow\n"
        "sys.argv = ['stgv', 'decode', 'in.stgv', 'out.mkv']\n"
        "main()\n"
    )
    (tmp_path / "in.stgv").write_bytes(b"unused")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout.readline() == "writing\n"
    assert any(p.name.startswith(".out.stgv-part-") for p in tmp_path.iterdir())
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143 and "terminated" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.stgv"]


def test_outputs_the_encoder_cannot_take_are_refused_before_any_frame(tmp_path):
    with pytest.raises(VideoError, match="ffv1 cannot code frames 1 pixel wide; use .y4m"):
        VideoWriter(tmp_path / "x.mkv", 1, 16384, FPS)
    with pytest.raises(VideoError, match="too high for a video container"):
        VideoWriter(tmp_path / "x.y4m", 16, 16, Fraction((1 << 32) - 1))
    _write(tmp_path / "x.y4m", moving_pattern(1, 16384, 1))
    assert [p.name for p in tmp_path.iterdir()] == ["x.y4m"]
