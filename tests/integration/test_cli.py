"""The stgv command line, in-process with click's CliRunner."""

import av
from click.testing import CliRunner

from stgvcodec.cli import main
from tests.clips import moving_pattern, write_clip


def test_demo_writes_a_png_and_reports_psnr(tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(3, 24, 32))
    out = tmp_path / "fit.png"
    result = CliRunner().invoke(main, ["demo", str(clip), str(out), "--gaussians", "150", "--steps", "60", "-q", "--frame", "2"])
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output and "32x24" in result.output
    with av.open(str(out)) as container:
        assert next(container.decode(video=0)).width == 32


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    bad = tmp_path / "notvideo.mp4"
    bad.write_text("hello")
    result = CliRunner().invoke(main, ["demo", str(bad), str(tmp_path / "x.png")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stgv: error: {bad}: not a video PyAV can open")
    assert not (tmp_path / "x.png").exists()


def test_missing_frame(tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 8, 8))
    result = CliRunner().invoke(main, ["demo", str(clip), str(tmp_path / "x.png"), "--frame", "5"])
    assert result.exit_code != 0 and "no frame 5" in result.output
