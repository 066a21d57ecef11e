"""`stgv info` on files built from hand-made GoP records (no training): the version, and each
GoP's kind (key or predicted), in the JSON report and in the text."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from stgvcodec.bitstream import Chunk, FileHeader, write_stgv
from stgvcodec.bitstream.gop import GopRecord, Prediction, encode_gop
from stgvcodec.bitstream.model_config import pack_model_config
from stgvcodec.cli import main
from stgvcodec.config import ModelConfig
from stgvcodec.decode import tensor_sizes
from stgvcodec.info import describe, format_text

CONFIG = ModelConfig(encoding="positional", position_frequencies=2, width=8)
HEADER = FileHeader(16, 8, 25, 1, frame_count=9, gop_size=3, config=pack_model_config(CONFIG))


def _payload(count: int, prediction: Prediction | None = None, version: int = 6) -> bytes:
    """A valid GoP payload of `count` (new) Gaussians (info reads its stream sizes, PARAMS and a
    predicted GoP's keep classes only); framed streams, as in versions 2 to 5, for `version` 5."""
    rng = np.random.default_rng(count)
    return encode_gop(
        GopRecord(
            positions=rng.integers(32768 - 40, 32768 + 40, (count, 2)),
            cholesky_symbols=rng.integers(0, 256, (count, 3)).astype(np.int32),
            cholesky_gamma=np.full(3, 0.02, np.float32),
            cholesky_beta=np.ones(3, np.float32),
            colour_indices=rng.integers(0, 4, (count, 1)).astype(np.int32),
            codebooks=rng.integers(0, 256, (1, 4, 3)).astype(np.float32) / 256,
            tensor_symbols=[rng.integers(-7, 8, n).astype(np.int32) for n in tensor_sizes(CONFIG)],
            tensor_scales=[np.float32(1 / 128)] * len(tensor_sizes(CONFIG)),
            network_bits=4,
            prediction=prediction,
            position_grid=4,
            codebook_step=1 / 256,
        ),
        version=version,
    )


KEEP = Prediction(np.array([0, 1, 2, 1, 1], np.int32), np.full(8, 0.25, np.float32), np.ones((1, 8), np.int32))
"""GoP 1 against GoP 0's 5 Gaussians: one dropped, three copied, one updated."""


@pytest.fixture
def mixed(tmp_path):
    """Version 3: GoP 0 key, GoP 1 predicted, GoP 2 key."""
    path = tmp_path / "mixed.stgv"
    write_stgv(path, HEADER, [_payload(5), Chunk(_payload(2, KEEP), predicted=True), Chunk(_payload(7))])
    return path


def test_report_gives_the_version_and_each_gops_kind(mixed, tmp_path):
    report = describe(mixed)
    assert report["version"] == 6 and report["key_gops"] == 2
    assert [(gop["gop"], gop["kind"], gop["gaussians"]) for gop in report["gops"]] == [
        (0, "key", 5),
        (1, "predicted", 6),  # 4 kept and 2 new
        (2, "key", 7),
    ]
    assert {k: report["gops"][1][k] for k in ("reference", "kept", "copied", "new")} == dict(reference=5, kept=4, copied=3, new=2)
    assert json.loads(CliRunner().invoke(main, ["info", str(mixed), "--json"]).output) == report

    old = tmp_path / "old.stgv"
    write_stgv(old, replace(HEADER, version=2), [_payload(5, version=5), _payload(2, version=5), _payload(7, version=5)])
    report = describe(old)
    assert report["version"] == 2 and report["key_gops"] == 3
    assert [gop["kind"] for gop in report["gops"]] == ["key"] * 3
    assert report["bytes"] == old.stat().st_size


def test_text_shows_the_version_and_a_kind_column(mixed):
    text = CliRunner().invoke(main, ["info", str(mixed)]).output
    assert text == format_text(describe(mixed)) + "\n"
    lines = text.splitlines()
    assert lines[0].startswith(f"{mixed}: .stgv version 6, ")
    assert "(3 GoPs, 2 key)" in lines[1]
    gop_lines = lines[lines.index("  GoPs:") + 1 :]
    assert [line.split()[:3] for line in gop_lines] == [
        ["0", "key", "frames"],
        ["1", "pred", "frames"],
        ["2", "key", "frames"],
    ]
    assert len({line.index("frames") for line in gop_lines}) == 1  # the column keeps the lines aligned
    assert gop_lines[1].endswith("(of 5: 3 copied, 1 updated; 2 new)")
