"""Decoding long GoPs and long videos: frames stream out batch by batch, memory does not grow with
the GoP's length, and `stgv info` says what a decode will take."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner

from stgvcodec.api import encode
from stgvcodec.bitstream import StgvReader, write_stgv
from stgvcodec.cli import main
from stgvcodec.config import FitConfig
from stgvcodec.decode import decode
from stgvcodec.io import read_frames
from stgvcodec.memory import render_batch
from stgvcodec.quant.qat import QuantConfig
from tests.clips import moving_pattern, write_clip

LONG = 65_535
"""The longest GoP the format allows."""


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory):
    """A 64x48 file whose single GoP declares 65,535 frames (the payload of a 4-frame encode: a
    GoP's payload does not depend on its length), and the 4-frame file it came from."""
    folder = tmp_path_factory.mktemp("long")
    clip = write_clip(folder / "clip.mkv", moving_pattern(4, 48, 64))
    encode(clip, folder / "short.stgv", gaussians=40, gop_size=4, fit=FitConfig(init_steps=30, deform_steps=30),
           quant=QuantConfig(steps=10, codebook_size=8), quiet=True)  # fmt: skip
    with StgvReader(folder / "short.stgv") as reader:
        header, payload = reader.header, reader.read_chunk(0)
    write_stgv(folder / "long.stgv", replace(header, frame_count=LONG, gop_size=LONG), [payload])
    return folder


def _peak_rss_kb(args: list[str]) -> int:
    script = (
        "import resource, sys; from stgvcodec.cli import main; sys.argv = ['stgv', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_the_first_frames_of_a_long_gop_come_at_once(long_gop):
    start = time.perf_counter()
    decode(long_gop / "long.stgv", long_gop / "head.mkv", frames=(0, 4))
    assert len(list(read_frames(long_gop / "head.mkv"))) == 5
    assert time.perf_counter() - start < 60  # rendering the whole GoP first took minutes and GBs


def test_memory_does_not_grow_with_the_gop_length(long_gop):
    short = _peak_rss_kb(["decode", str(long_gop / "short.stgv"), str(long_gop / "a.y4m"), "-q"])
    long = _peak_rss_kb(["decode", str(long_gop / "long.stgv"), str(long_gop / "b.y4m"), "-q", "--frames", "2000-2099"])
    assert long < short + 50_000, (short, long)  # kB; the whole GoP as 8-bit frames would be 600 MB


def test_info_reports_duration_and_decode_memory(long_gop):
    result = CliRunner().invoke(main, ["info", str(long_gop / "long.stgv"), "--json"])
    report = json.loads(result.output)
    assert report["frames"] == LONG and report["gops"][0]["gaussians"] == 40
    assert report["duration_seconds"] == pytest.approx(LONG / 25)
    assert 0 < report["decode_memory_bytes"] < 100e6
    text = CliRunner().invoke(main, ["info", str(long_gop / "long.stgv")]).output
    assert "(0:43:41.4)" in text and "MB of working memory" in text


def test_batches_shrink_for_large_frames_only():
    assert render_batch(160, 320, 1250) == 10
    assert render_batch(4096, 4096, 20_000) == 1
    assert render_batch(1 << 14, 1 << 14, 1 << 22) == 1
