"""Predicted GoPs end to end: a file of key and predicted GoPs decodes to the encoder's
reconstruction bit for bit, from any frame, and damage reaches only the GoPs that depend on it."""

from __future__ import annotations

import numpy as np
import pytest

from stgvcodec.api import decode, encode
from stgvcodec.bitstream import BitstreamError, StgvReader
from stgvcodec.config import FitConfig
from stgvcodec.io import read_frames
from stgvcodec.quant.qat import QuantConfig
from tests.clips import moving_pattern, write_clip

FIT = FitConfig(init_steps=60, deform_steps=60, warm_init_steps=20)
QUANT = QuantConfig(steps=20, codebook_size=16)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prediction")
    return folder, write_clip(folder / "clip.mkv", moving_pattern(12, 21, 30))


def _encode(folder, clip, name: str, keyint: int):
    recon: list[np.ndarray] = []
    summary = encode(clip, folder / name, gaussians=60, gop_size=3, keyint=keyint, fit=FIT, quant=QUANT, quiet=True,
                     reconstruction=recon)  # fmt: skip
    return folder / name, summary, np.concatenate(recon)


@pytest.fixture(scope="module")
def mixed(clip):
    """GoPs of 3 frames with --keyint 6: key, predicted, key, predicted."""
    return _encode(*clip, "mixed.stgv", keyint=6)


def _decoded(path, out, **options) -> np.ndarray:
    decode(path, str(out) + "/", device="cpu", **options)  # PNGs: lossless
    return np.stack(list(read_frames(out)))


def test_keyint_sets_key_gops_and_the_rest_are_predicted(mixed):
    path, summary, _ = mixed
    assert [g.predicted for g in summary.gops] == [False, True, False, True]
    with StgvReader(path) as reader:
        assert [entry.predicted for entry in reader.gops] == [False, True, False, True]
    for report in summary.gops[1::2]:
        assert report.reference_gaussians == 60 and report.kept == 60 and report.stream_bytes["prediction"] > 0


def test_a_mixed_file_decodes_to_the_encoder_reconstruction(mixed, tmp_path):
    path, _, recon = mixed
    np.testing.assert_array_equal(_decoded(path, tmp_path / "all"), recon)


@pytest.mark.parametrize("first,last", [(4, 5), (10, 11), (5, 7)])
def test_frames_inside_predicted_gops_decode_as_in_the_whole_file(mixed, tmp_path, first, last):
    path, _, recon = mixed
    np.testing.assert_array_equal(_decoded(path, tmp_path / "part", frames=(first, last)), recon[first : last + 1])


def test_a_key_gop_only_file_decodes_to_its_reconstruction(clip, tmp_path):
    path, summary, recon = _encode(*clip, "keys.stgv", keyint=1)
    assert not any(g.predicted for g in summary.gops)
    np.testing.assert_array_equal(_decoded(path, tmp_path / "keys"), recon)


def test_damage_to_a_reference_names_its_dependants_and_spares_the_next_key_gop(mixed, tmp_path):
    path, _, recon = mixed
    with StgvReader(path) as reader:
        entry = reader.gops[0]
    data = bytearray(path.read_bytes())
    data[entry.offset + 10] ^= 0xFF  # inside GoP 0's payload: its CRC fails
    damaged = tmp_path / "damaged.stgv"
    damaged.write_bytes(bytes(data))
    message = (
        r"^GoP 0 \(frames 0-2\): CRC mismatch at byte \d+; GoP 1 \(frames 3-5\) depends on it and cannot be "
        r"decoded; decoding can start again at frame 6 \(GoP 2, a key GoP\)$"
    )
    with pytest.raises(BitstreamError, match=message):
        decode(damaged, tmp_path / "out.mkv", device="cpu")
    with pytest.raises(BitstreamError, match=message):
        decode(damaged, tmp_path / "out.mkv", device="cpu", frames=(4, 4))  # needs GoP 0 as its reference
    np.testing.assert_array_equal(_decoded(damaged, tmp_path / "after", frames=(6, 11)), recon[6:])


def test_predicted_gops_that_drop_and_add_gaussians_decode_to_the_encoders_reconstruction(tmp_path):
    """Rate control can give a predicted GoP fewer Gaussians than its reference (the least useful
    are dropped) or more (new ones): both code and decode bit-exactly."""
    import torch

    from stgvcodec.bitstream import Chunk, FileHeader, write_stgv
    from stgvcodec.bitstream.model_config import pack_model_config
    from stgvcodec.config import ModelConfig
    from stgvcodec.encoder.pipeline import code_gop

    model = ModelConfig(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1)
    video = moving_pattern(9, 21, 30)
    cpu = torch.device("cpu")
    coded, previous = [], None
    for number, count in enumerate((60, 54, 64)):
        fit = FitConfig(init_steps=60, deform_steps=60, warm_init_steps=20, gaussians=count)
        gop = code_gop(video[3 * number : 3 * number + 3], 3 * number, model, fit, QUANT, cpu,
                       reference=previous, predict=number > 0, quiet=True)  # fmt: skip
        coded.append(gop)
        previous = gop
    reports = [gop.report for gop in coded]
    assert [r.predicted for r in reports] == [False, True, True]
    assert (reports[1].reference_gaussians, reports[1].kept, reports[1].gaussians) == (60, 54, 54)  # 6 dropped
    assert (reports[2].reference_gaussians, reports[2].kept, reports[2].gaussians) == (54, 54, 64)  # 10 new
    # No new Gaussians: GoP 1 inherits GoP 0's quantizers (PARAMS with M = 0); GoP 2's 10 new ones
    # (QuantConfig.inherit_below is 8) get their own.
    assert [g.payload[4] for g in coded] == [QUANT.rvq_stages, 0, QUANT.rvq_stages]  # PARAMS comes first: M at byte 4
    path = tmp_path / "resized.stgv"
    write_stgv(path, FileHeader(30, 21, 25, 1, 9, 3, pack_model_config(model)), [Chunk(g.payload, g.predicted) for g in coded])
    np.testing.assert_array_equal(_decoded(path, tmp_path / "out"), np.concatenate([g.reconstruction for g in coded]))
