"""The standalone decoder on files built from hand-made GoP records (no training): empty GoPs,
errors that name their GoP, and valid records whose network throws Gaussians to extremes."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from stgvcodec.bitstream import BitstreamError, FileHeader, write_stgv
from stgvcodec.bitstream.gop import GopRecord, decode_gop, encode_gop, network_levels
from stgvcodec.bitstream.model_config import pack_model_config
from stgvcodec.config import ModelConfig
from stgvcodec.decode import decode, gop_model, render_gop, tensor_sizes
from stgvcodec.quant.quantizers import POSITION_GRID, PositionGrid

CPU = torch.device("cpu")
CONFIGS = {
    "hash": ModelConfig(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1),
    "plane": ModelConfig(encoding="plane", plane_resolution=4, plane_time_resolution=3, plane_features=2, width=8),
    "positional": ModelConfig(encoding="positional", position_frequencies=2, width=8),
}
HEIGHT, WIDTH = 9, 13


def _record(config: ModelConfig, count: int, seed: int = 0, scale: float = 1 / 128, bits: int = 8) -> GopRecord:
    """A random record within every bound of the spec: count Gaussians over the frame."""
    rng = np.random.default_rng(seed)
    levels = network_levels(bits)
    sizes = tensor_sizes(config)
    return GopRecord(
        positions=PositionGrid(POSITION_GRID, WIDTH, HEIGHT).keys(torch.from_numpy(rng.uniform(-1, 1, (count, 2)))).numpy(),
        cholesky_symbols=rng.integers(0, 256, (count, 3)).astype(np.int32),
        cholesky_gamma=np.full(3, 0.02, np.float32),
        cholesky_beta=np.array([1.0, -2.0, 1.0], np.float32),
        colour_indices=rng.integers(0, 8, (count, 1)).astype(np.int32),
        codebooks=rng.integers(0, 128, (1, 8, 3)).astype(np.float32) / 256,
        tensor_symbols=[rng.integers(-levels, levels + 1, n).astype(np.int32) for n in sizes],
        tensor_scales=[np.float32(scale)] * len(sizes),
        network_bits=bits,
        position_grid=POSITION_GRID,
        codebook_step=1 / 256,
    )


def _write(path, config: ModelConfig, payloads: list[bytes], gop_size: int = 3) -> None:
    header = FileHeader(WIDTH, HEIGHT, 25, 1, gop_size * len(payloads), gop_size, pack_model_config(config))
    write_stgv(path, header, payloads)


def _frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _render(record: GopRecord, config: ModelConfig, frames: int = 3) -> np.ndarray:
    parsed = decode_gop(encode_gop(record), tensor_sizes(config))
    return render_gop(gop_model(parsed, config, CPU, size=(WIDTH, HEIGHT)), frames, HEIGHT, WIDTH)


@pytest.mark.parametrize("encoding", list(CONFIGS))
def test_a_gop_without_gaussians_renders_black(encoding):
    frames = _render(_record(CONFIGS[encoding], 0), CONFIGS[encoding], frames=4)
    assert frames.shape == (4, HEIGHT, WIDTH, 3) and not frames.any()


def test_a_file_with_an_empty_gop_decodes(tmp_path):
    config = CONFIGS["hash"]
    records = [_record(config, 0), _record(config, 40, seed=1)]
    _write(tmp_path / "a.stgv", config, [encode_gop(r) for r in records])
    decode(tmp_path / "a.stgv", tmp_path / "a.mkv", device="cpu")  # ffv1: lossless RGB
    frames = _frames(tmp_path / "a.mkv")
    assert frames.shape == (6, HEIGHT, WIDTH, 3)
    assert not frames[:3].any()
    np.testing.assert_array_equal(frames[3:], _render(records[1], config))
    assert frames[3:].any()


@pytest.mark.parametrize(
    "spoil,message",
    [
        (lambda r: r.cholesky_gamma.__setitem__(1, np.float32(np.nan)), "Cholesky step gamma 1 = nan"),
        (lambda r: r.tensor_scales.__setitem__(2, np.float32(np.inf)), "network tensor scale 2 = inf"),
        (lambda r: r.cholesky_beta.__setitem__(0, np.float32(1e30)), "Cholesky offset beta 0 = 1e\\+30"),
    ],
)
def test_payload_errors_name_the_gop(tmp_path, spoil, message):
    config = CONFIGS["hash"]
    records = [_record(config, 10), _record(config, 10, seed=2)]
    spoil(records[1])
    _write(tmp_path / "bad.stgv", config, [encode_gop(r) for r in records])
    with pytest.raises(BitstreamError, match=rf"^GoP 1 \(frames 3-5\): GoP payload: {message}"):
        decode(tmp_path / "bad.stgv", tmp_path / "bad.mkv", device="cpu")
    decode(tmp_path / "bad.stgv", tmp_path / "first.mkv", device="cpu", frames=(0, 2))  # GoP 0 is intact


@pytest.mark.parametrize("encoding", list(CONFIGS))
def test_largest_valid_network_throws_every_gaussian_off_the_frame(encoding):
    """Every network symbol at +127 with the largest scale the spec allows: the deformation moves
    every centre to 1e23 .. 1e36 NDC (finite, section 8) and the renderer must draw nothing."""
    config = CONFIGS[encoding]
    record = _record(config, 30, scale=65504.0)  # the largest float16
    record.tensor_symbols = [np.full_like(t, 127) for t in record.tensor_symbols]
    parsed = decode_gop(encode_gop(record), tensor_sizes(config))
    model = gop_model(parsed, config, CPU, size=(WIDTH, HEIGHT))
    with torch.no_grad():
        means, _, colors = model.deformed(torch.tensor([0.0, 1.0]))
    assert torch.isfinite(means).all() and torch.isfinite(colors).all() and (means > 1e20).all()
    frames = render_gop(model, 3, HEIGHT, WIDTH)
    assert frames.shape == (3, HEIGHT, WIDTH, 3) and not frames.any()


@pytest.mark.parametrize("encoding", list(CONFIGS))
@pytest.mark.parametrize("scale", [65504.0, 300.0, 2.0**-24])
def test_extreme_valid_networks_decode_deterministically(encoding, scale):
    """Random symbols at extreme (valid) scales move Gaussians anywhere, huge or non-finite in
    pixels: the render is defined, so two decodes agree."""
    config = CONFIGS[encoding]
    record = _record(config, 50, seed=3, scale=scale)
    first = _render(record, config)
    np.testing.assert_array_equal(first, _render(record, config))


def test_counting_tensors_allocates_nothing():
    """The largest configuration the header allows has 519M weights (2 GB): tensor_sizes must
    count them without allocating them (measured as the process's peak RSS, in a fresh process)."""
    script = (
        "import resource, torch; from stgvcodec.config import ModelConfig; from stgvcodec.decode import tensor_sizes\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "big = ModelConfig(log2_table_size=22, levels=16, spatial_features=8, temporal_features=8, width=1024)\n"
        "print(sum(tensor_sizes(big)), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    count, grown_kib = map(int, result.stdout.split())
    assert count > 5e8
    assert grown_kib < 200 * 1024  # 2 GB if the field were allocated
