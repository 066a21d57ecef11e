"""encode -> .stgv -> decode on a tiny synthetic clip, through the API and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest
from click.testing import CliRunner

from stgvcodec.api import decode, encode
from stgvcodec.cli import main
from stgvcodec.config import FitConfig
from stgvcodec.io import read_frames
from stgvcodec.quant.qat import QuantConfig
from tests.clips import moving_pattern, write_clip

FIT = FitConfig(init_steps=60, deform_steps=60)
QUANT = QuantConfig(steps=20, codebook_size=16)
STEPS = "60,60,20"


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """A 7-frame 21x30 clip (GoPs of 4: frames 0-3 and 4-6), encoded once for the module."""
    folder = tmp_path_factory.mktemp("codec")
    video = moving_pattern(7, 21, 30)
    clip = write_clip(folder / "clip.mkv", video)
    recon: list[np.ndarray] = []
    summary = encode(clip, folder / "clip.stgv", gaussians=60, gop_size=4, fit=FIT, quant=QUANT, quiet=True,
                     reconstruction=recon)  # fmt: skip
    return folder, video, summary, np.concatenate(recon)


def test_decoder_reproduces_the_encoder_reconstruction_bit_exactly(coded):
    folder, video, summary, recon = coded
    assert recon.shape == video.shape
    decode(folder / "clip.stgv", folder / "out.mkv")
    decoded = np.stack(list(read_frames(folder / "out.mkv")))
    np.testing.assert_array_equal(decoded, recon)


def test_summary_uses_the_real_file(coded):
    folder, video, summary, recon = coded
    size = (folder / "clip.stgv").stat().st_size
    assert summary.bytes == size and summary.bpp == pytest.approx(size * 8 / (7 * 21 * 30))
    psnr = np.mean([10 * np.log10(255**2 / np.mean((r.astype(float) - v) ** 2)) for r, v in zip(recon, video)])
    assert summary.psnr == pytest.approx(psnr, abs=0.2)  # summary averages per GoP, weighted by frames
    assert summary.psnr > 18.0 and summary.ms_ssim is None
    assert [g.frames for g in summary.gops] == [4, 3]


def test_frame_range_decodes_only_what_is_asked(coded):
    folder, video, summary, recon = coded
    decode(folder / "clip.stgv", str(folder / "pngs") + "/", frames=(2, 4))
    names = sorted(p.name for p in (folder / "pngs").iterdir())
    assert names == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    with av.open(str(folder / "pngs" / names[1])) as container:
        np.testing.assert_array_equal(next(container.decode(video=0)).to_ndarray(format="rgb24"), recon[3])


def test_cli_encode_info_decode(tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(5, 16, 18))
    runner = CliRunner()
    result = runner.invoke(main, ["encode", str(clip), str(tmp_path / "a.stgv"), "--gaussians", "40", "--gop", "5",
                                  "--steps", STEPS, "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "bpp" in result.output and "PSNR" in result.output
    result = runner.invoke(main, ["info", str(tmp_path / "a.stgv"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames"] == 5 and report["width"] == 18 and report["height"] == 16
    assert report["version"] == 6 and [gop["kind"] for gop in report["gops"]] == ["key"] and report["key_gops"] == 1
    assert sum(report["bits"].values()) == 8 * (tmp_path / "a.stgv").stat().st_size
    text = runner.invoke(main, ["info", str(tmp_path / "a.stgv")]).output
    assert all(kind in text for kind in ("positions", "shape", "colour", "hash", "mlp", "side", "container"))
    result = runner.invoke(main, ["decode", str(tmp_path / "a.stgv"), str(tmp_path / "a.y4m")])
    assert result.exit_code == 0, result.output
    assert len(list(read_frames(tmp_path / "a.y4m"))) == 5


def test_decoder_imports_no_training_code(coded):
    folder = coded[0]
    script = (
        "import sys; from stgvcodec.decode import decode; "
        f"decode({str(folder / 'clip.stgv')!r}, {str(folder / 'iso.mkv')!r}); "
        "bad = [m for m in sys.modules if m.startswith(('vector_quantize_pytorch', 'stgvcodec.train', "
        "'stgvcodec.quant.qat', 'pytorch_msssim'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["encode", "{out}/missing.mp4", "{out}/x.stgv"], "no such file"),
        (["encode", "{clip}", "{out}/x.stgv", "--bpp", "0.05", "--gaussians", "5"], "not several"),
        (["encode", "{clip}", "{out}/x.stgv", "--quality", "30", "--bpp", "0.1"], "not several"),
        (["encode", "{clip}", "{out}/x.stgv", "--bpp", "-1"], "--bpp"),
        (["encode", "{clip}", "{out}/x.stgv", "--quality", "99"], "--quality"),
        (["encode", "{clip}", "{out}/x.mkv"], "use stgv decode"),
        (["encode", "{clip}", "{out}/x"], "must end in .stgv"),
        (["encode", "{clip}", "{out}/missing/x.stgv"], "not an existing directory"),
        (["encode", "{clip}", "{out}/x.stgv", "--device", "tpu"], "--device tpu"),
        (["decode", "{bad}", "{out}/x.mkv"], "magic"),
        (["decode", "{out}/missing.stgv", "{out}/x.mkv"], "missing.stgv"),
        (["info", "{bad}"], "magic"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 8, 8))
    bad = tmp_path / "bad.stgv"
    bad.write_bytes(b"NOPE" + bytes(60))
    args = [a.format(clip=clip, bad=bad, out=tmp_path) for a in args]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0].lower(), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.stgv", "clip.mkv"]


def test_bpp_target_sets_the_size(tmp_path):
    """A larger --bpp buys more Gaussians and a larger file; the summary reports the real size."""
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(6, 40, 56))
    sizes = []
    for target in (1.0, 2.5):
        summary = encode(clip, tmp_path / f"{target}.stgv", bpp=target, gop_size=6, fit=FIT, quant=QUANT, quiet=True,
                         warn=[].append)  # one GoP cannot correct the first estimate: a miss is reported
        assert summary.bytes == (tmp_path / f"{target}.stgv").stat().st_size
        sizes.append((summary.bytes, summary.gops[0].gaussians))
    assert sizes[1][0] > sizes[0][0] and sizes[1][1] > sizes[0][1]


def test_intact_gops_decode_when_another_is_corrupt(coded, tmp_path):
    folder, video, summary, recon = coded
    data = bytearray((folder / "clip.stgv").read_bytes())
    from stgvcodec.bitstream import StgvReader

    with StgvReader(folder / "clip.stgv") as reader:
        second = reader.gops[1]
    data[second.offset + second.length - 10] ^= 0xFF  # inside GoP 1's payload
    broken = tmp_path / "broken.stgv"
    broken.write_bytes(bytes(data))
    decode(broken, tmp_path / "first.mkv", frames=(0, 3))
    np.testing.assert_array_equal(np.stack(list(read_frames(tmp_path / "first.mkv"))), recon[:4])
    result = CliRunner().invoke(main, ["decode", str(broken), str(tmp_path / "all.mkv")])
    assert result.exit_code == 1 and "GoP 1 (frames 4-6)" in result.output and "CRC" in result.output
    assert not (tmp_path / "all.mkv").exists()


def test_low_precision_network_decodes_bit_exactly(tmp_path):
    """A 3-bit network and 6-bit Cholesky symbols (the lowest --bpp rungs) travel through the
    stream and decode exactly."""
    from stgvcodec.bitstream import StgvReader
    from stgvcodec.bitstream.gop import decode_gop
    from stgvcodec.bitstream.model_config import unpack_model_config
    from stgvcodec.decode import tensor_sizes

    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(4, 21, 30))
    recon: list[np.ndarray] = []
    quant = QuantConfig(steps=20, codebook_size=8, network_bits=3, cholesky_bits=6)
    encode(clip, tmp_path / "clip.stgv", gaussians=30, fit=FIT, quant=quant, quiet=True, reconstruction=recon)
    with StgvReader(tmp_path / "clip.stgv") as reader:
        record = decode_gop(reader.read_chunk(0), tensor_sizes(unpack_model_config(reader.header.config)))
    assert record.network_bits == 3
    symbols = np.concatenate(record.tensor_symbols)
    assert np.abs(symbols).max() == 3  # each tensor's peak lands on the largest 3-bit level
    assert 0 <= record.cholesky_symbols.min() and record.cholesky_symbols.max() <= 63
    decode(tmp_path / "clip.stgv", tmp_path / "out.mkv")
    np.testing.assert_array_equal(np.stack(list(read_frames(tmp_path / "out.mkv"))), recon[0])


@pytest.mark.parametrize("encoding", ["hash", "plane", "positional"])
def test_rate_ladder_fits_the_budget(encoding):
    """Each budget gets the largest rung of the encoding's ladder whose estimated fixed cost fits
    its share; smaller rungs for smaller budgets; the last rung when nothing fits."""
    from stgvcodec.encoder.rate import FIXED_SHARE, RateModel, ladder, settings_for_budget

    rungs = ladder(encoding)
    costs = [RateModel.fixed_bits(rung) for rung in rungs]
    assert costs == sorted(costs, reverse=True)
    for k, cost in enumerate(costs):
        assert settings_for_budget(cost / FIXED_SHARE * 1.001, encoding) == rungs[k]
        assert settings_for_budget(cost / FIXED_SHARE * 0.999, encoding) == rungs[min(k + 1, len(rungs) - 1)]
    assert settings_for_budget(1.0, encoding) == rungs[-1]


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_an_output_that_is_the_input_is_refused_before_any_work(tmp_path, monkeypatch, command, link):
    """`stgv encode x.stgv x.stgv`-like calls, through any kind of link, leave the input intact."""
    import stgvcodec.api

    monkeypatch.setattr(stgvcodec.api, "code_gop", None)  # reaching the fit would fail loudly
    source = tmp_path / ("in.stgv" if command == "decode" else "in.mkv")
    if command == "decode":
        source.write_bytes(b"STGV" + bytes(60))
    else:
        write_clip(source, moving_pattern(2, 8, 8))
    before = source.read_bytes()
    output = source.with_name("out" + (".stgv" if command == "encode" else source.suffix))
    if link == "same":
        output = source
    elif link == "symlink":
        output.symlink_to(source)
    else:
        os.link(source, output)
    result = CliRunner().invoke(main, [command, str(source), str(output)], catch_exceptions=False)
    assert result.exit_code == 1 and "refusing to overwrite" in result.output, result.output
    assert source.read_bytes() == before


def test_checks_come_before_reading_frames(tmp_path, monkeypatch):
    import stgvcodec.api

    read = []
    monkeypatch.setattr(stgvcodec.api, "VideoReader", lambda *a, **k: read.append(a))
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 8, 8))
    for output, device in ((tmp_path / "missing" / "x.stgv", None), (tmp_path / "x.stgv", "nodevice")):
        with pytest.raises(ValueError):
            encode(clip, output, gaussians=10, device=device)
    assert read == []


def test_unreachable_rate_targets_are_said_before_fitting_and_in_the_summary(tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(10, 16, 24))
    for target, words in ((0.001, "below"), (16.0, "above")):
        said: list[str] = []
        summary = encode(clip, tmp_path / "x.stgv", bpp=target, fit=FIT, quant=QUANT, quiet=True, warn=said.append)
        assert len(said) == 2 and words in said[0] and "reachable about" in said[0], said
        assert f"target --bpp {target:g} not met" in said[1] and summary.notes == said
    summary = encode(clip, tmp_path / "x.stgv", bpp=1.0, fit=FIT, quant=QUANT, quiet=True, warn=said.append)
    assert summary.notes == [] and abs(summary.bpp - 1.0) < 0.1


def test_fewer_gaussians_than_codebook_colours_print_nothing(tmp_path, capfd):
    """Colour codebooks never hold more colours than there are Gaussians, so k-means does not
    complain (vector-quantize-pytorch logs straight to the terminal)."""
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 8, 8))
    summary = encode(clip, tmp_path / "x.stgv", gaussians=10, fit=FIT, quant=QUANT, quiet=True)
    assert summary.gops[0].gaussians == 10
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_encodes_are_byte_identical_across_runs_and_thread_counts(tmp_path):
    """Two processes with different torch and numba thread counts write the same bytes, on the CPU
    (a CUDA encode sums gradients with atomic adds and is not repeatable to the byte)."""
    write_clip(tmp_path / "clip.mkv", moving_pattern(4, 32, 48))
    script = (
        "import sys; from stgvcodec.api import encode; from stgvcodec.config import FitConfig; "
        "from stgvcodec.quant.qat import QuantConfig; "
        "encode('clip.mkv', sys.argv[1], gaussians=150, gop_size=2, device='cpu', "
        "fit=FitConfig(init_steps=30, deform_steps=30), quant=QuantConfig(steps=20, codebook_size=16), quiet=True)"
    )
    for name, threads in (("a.stgv", "1"), ("b.stgv", "3")):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", script, name], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.stgv").read_bytes() == (tmp_path / "b.stgv").read_bytes()


def test_quality_target_is_the_default_and_corrects_the_count_per_gop(tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(8, 24, 32))
    said: list[str] = []
    summary = encode(clip, tmp_path / "q.stgv", gop_size=4, fit=FIT, quant=QUANT, quiet=True, warn=said.append)
    first, second = summary.gops
    assert first.psnr < 30.0 and second.gaussians > first.gaussians  # 30 dB unless told otherwise
    low = encode(clip, tmp_path / "low.stgv", quality=12.0, gop_size=4, fit=FIT, quant=QUANT, quiet=True)
    assert low.gops[0].psnr > 12.0 and low.gops[1].gaussians < low.gops[0].gaussians


def test_encode_reads_y4m_from_standard_input(tmp_path):
    from stgvcodec.io import VideoWriter

    video = moving_pattern(3, 16, 24)
    with VideoWriter(tmp_path / "clip.y4m", 24, 16, 25) as writer:
        for rgb in video:
            writer.write(rgb)
    command = [sys.executable, "-m", "stgvcodec", "encode", "-", "out.stgv", "--gaussians", "30", "--steps", STEPS, "-q"]
    with open(tmp_path / "clip.y4m", "rb") as stdin:
        done = subprocess.run(command, cwd=tmp_path, stdin=stdin, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "out.stgv: 3 frames 24x16" in done.stdout
    done = subprocess.run(command, cwd=tmp_path, input="not a video", capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.startswith("stgv: error: standard input: not a video"), done.stderr


def test_frame_rates_are_checked_or_carried_into_the_output(tmp_path, coded):
    """--fps 0 is refused; a .stgv rate whose terms exceed what containers store is approximated."""
    from stgvcodec.bitstream import Chunk, StgvReader, write_stgv

    clip = write_clip(tmp_path / "clip.mkv", moving_pattern(2, 8, 8))
    for fps in ("0", "-3", "x"):
        result = CliRunner().invoke(main, ["encode", str(clip), str(tmp_path / "x.stgv"), "--fps", fps])
        assert result.exit_code == 2 and "--fps" in result.output, result.output
    folder = coded[0]
    with StgvReader(folder / "clip.stgv") as reader:
        header = reader.header
        chunks = [Chunk(reader.read_chunk(k), entry.predicted) for k, entry in enumerate(reader.gops)]
    from dataclasses import replace

    odd = replace(header, fps_num=(1 << 32) - 1, fps_den=(1 << 32) - 3)
    write_stgv(tmp_path / "odd.stgv", odd, chunks)
    decode(tmp_path / "odd.stgv", tmp_path / "odd.mkv")
    with av.open(str(tmp_path / "odd.mkv")) as container:
        assert abs(float(container.streams.video[0].average_rate) - float(odd.fps)) < 1e-6
    fast = replace(header, fps_num=(1 << 32) - 1, fps_den=1)
    write_stgv(tmp_path / "fast.stgv", fast, chunks)
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "fast.stgv"), str(tmp_path / "fast.mkv")])
    assert result.exit_code == 1 and "too high for a video container" in result.output


def test_payload_errors_name_the_gop_the_stream_and_the_file_offset(coded, tmp_path):
    """A stream byte changed under a recomputed CRC: the error names GoP 1 and its frames, the
    stream, and the stream's first byte counted from the start of the file."""
    import struct
    import zlib

    from stgvcodec.bitstream import StgvReader
    from stgvcodec.bitstream.gop import Stream, split_payload

    data = bytearray((coded[0] / "clip.stgv").read_bytes())
    with StgvReader(coded[0] / "clip.stgv") as reader:
        entry = reader.gops[1]
    at = entry.offset + 4  # the chunk's length field, then its payload
    payload = bytes(data[at : at + entry.length - 8])
    streams, starts = split_payload(payload, entry.predicted)
    start = starts[[stream_id for stream_id, _ in streams].index(Stream.POSITION_Y_LOW)]
    data[at + start] = 0x7F  # no such symbol coding mode
    data[at + len(payload) : at + len(payload) + 4] = struct.pack("<I", zlib.crc32(data[at : at + len(payload)]))
    (tmp_path / "bad.stgv").write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "bad.stgv"), str(tmp_path / "x.mkv")])
    assert result.exit_code == 1
    message = result.output.strip()
    assert message.startswith("stgv: error: GoP 1 (frames 4-6): ") and "y positions (low) stream" in message
    assert message.endswith(f"unknown symbol coding mode 127 at byte {at + start}"), message
