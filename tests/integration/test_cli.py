"""The stgv command line, in-process with click's CliRunner."""

import json
from dataclasses import asdict, replace

import av
import numpy as np
import pytest
from click.testing import CliRunner

from stgvcodec.api import encode
from stgvcodec.cli import main
from stgvcodec.config import ModelConfig, preset
from stgvcodec.encoder.rate import ladder
from stgvcodec.io import read_frames
from stgvcodec.quant.qat import QuantConfig
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


ROUND_TRIP_STEPS = (20, 20, 5)
"""INIT,DEFORM,QAT steps of the encodes below: quality is beside the point."""


def _encode(runner: CliRunner, clip, output, *options: str):
    steps = ",".join(map(str, ROUND_TRIP_STEPS))
    result = runner.invoke(main, ["encode", str(clip), str(output), "--gop", "5", "--steps", steps, "-q", *options])
    assert result.exit_code == 0, result.output
    return output


@pytest.mark.parametrize("encoding", ["hash", "plane", "positional"])
def test_each_encoding_round_trips_through_the_cli(tmp_path, encoding):
    """`stgv encode --encoding E` writes what api.encode(encoding=E) writes, `stgv info` shows the
    encoding, and `stgv decode` reproduces the encoder's reconstruction bit for bit."""
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(5, 13, 18))
    runner = CliRunner()
    coded = _encode(runner, clip, tmp_path / "cli.stgv", "--encoding", encoding, "--gaussians", "30")
    init, deform, qat = ROUND_TRIP_STEPS
    fit = replace(preset("fast"), init_steps=init, deform_steps=deform)
    recon: list[np.ndarray] = []
    encode(clip, tmp_path / "api.stgv", gaussians=30, gop_size=5, fit=fit, quant=QuantConfig(steps=qat), encoding=encoding,
           quiet=True, reconstruction=recon)  # fmt: skip
    assert coded.read_bytes() == (tmp_path / "api.stgv").read_bytes()

    report = json.loads(runner.invoke(main, ["info", str(coded), "--json"]).output)
    assert report["model"] == asdict(ModelConfig(encoding=encoding))  # --gaussians: the full-size network
    (gop,) = report["gops"]
    assert (gop["streams"]["hash"] == 2) == (encoding == "positional")  # an empty stream: no tables
    text = runner.invoke(main, ["info", str(coded)]).output
    model_line = next(line for line in text.splitlines() if line.strip().startswith("model"))
    assert f"encoding={encoding}," in model_line
    assert ("levels=" in model_line) == (encoding == "hash") and ("plane_features=" in model_line) == (encoding == "plane")

    result = runner.invoke(main, ["decode", str(coded), str(tmp_path / "out.mkv"), "-q"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.stack(list(read_frames(tmp_path / "out.mkv"))), recon[0])


def test_multiframe_initialisation_is_applied(tmp_path):
    """--init multiframe fits the canonical Gaussians to all frames: another file, which decodes."""
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(5, 12, 16))
    runner = CliRunner()
    files = [
        _encode(runner, clip, tmp_path / f"{init}.stgv", "--init", init, "--encoding", "positional", "--gaussians", "20")
        for init in ("keyframe", "multiframe")
    ]
    assert files[0].read_bytes() != files[1].read_bytes()
    result = runner.invoke(main, ["decode", str(files[1]), str(tmp_path / "out.y4m"), "-q"])
    assert result.exit_code == 0, result.output
    assert len(list(read_frames(tmp_path / "out.y4m"))) == 5


@pytest.mark.parametrize("encoding,target", [("plane", ["--bpp", "1.0"]), ("positional", ["--quality", "20"])])
def test_rate_targets_take_the_network_from_the_encodings_ladder(tmp_path, encoding, target):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(5, 40, 56))
    runner = CliRunner()
    coded = _encode(runner, clip, tmp_path / "x.stgv", "--encoding", encoding, *target)
    report = json.loads(runner.invoke(main, ["info", str(coded), "--json"]).output)
    assert report["model"] in [asdict(rung.model) for rung in ladder(encoding)]
    result = runner.invoke(main, ["decode", str(coded), str(tmp_path / "out.y4m"), "-q"])
    assert result.exit_code == 0, result.output
    assert len(list(read_frames(tmp_path / "out.y4m"))) == 5


def test_unknown_encoding_or_initialisation_is_refused(tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 8, 8))
    for option in ({"encoding": "fourier"}, {"init": "random"}):
        with pytest.raises(ValueError, match="choose one of"):
            encode(clip, tmp_path / "x.stgv", gaussians=5, **option)
    result = CliRunner().invoke(main, ["encode", str(clip), str(tmp_path / "x.stgv"), "--encoding", "fourier"])
    assert result.exit_code == 2 and "fourier" in result.output
    assert not (tmp_path / "x.stgv").exists()
