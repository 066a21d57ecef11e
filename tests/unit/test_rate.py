"""stgvcodec.encoder.rate: Gaussians per GoP under --bpp and --quality, and what is said when a
target cannot be met."""

import math

import pytest

from stgvcodec.bitstream.gop import MLP_TENSORS
from stgvcodec.config import ModelConfig
from stgvcodec.decode import tensor_sizes
from stgvcodec.encoder.rate import (
    RUNGS,
    BitrateTarget,
    QualityTarget,
    RateModel,
    Rung,
    Video,
    ladder,
    rate_plan,
    reachable_bpp,
    settings_for_gaussians,
)

VIDEO = Video(width=64, height=48, frames=30, gops=[(0, 10), (10, 10), (20, 10)], config_bytes=20)


def test_quality_target_moves_the_count_toward_the_target():
    control = QualityTarget(30.0, VIDEO, first_count=100)
    assert control.gaussians(0, 10) == 100
    control.record(100, 5000, 1000, psnr=27.5)  # 2.5 dB short: one doubling
    assert control.gaussians(10, 10) == 200
    control.record(200, 9000, 1000, psnr=30.0)  # on target: the model agrees, the count stays
    assert control.gaussians(20, 10) == 200
    assert control.shortfall(0.1, 30.0) is None


def test_quality_target_steps_are_bounded_and_capped():
    most = RateModel.max_gaussians(VIDEO.height, VIDEO.width)
    control = QualityTarget(60.0, VIDEO, first_count=100)
    control.record(100, 5000, 1000, psnr=20.0)
    assert control.gaussians(10, 10) == 100 * QualityTarget.MAX_STEP
    for _ in range(5):
        count = control.gaussians(0, 10)
        control.record(count, 5000, 1000, psnr=25.0)
    assert control.gaussians(0, 10) == most
    message = control.shortfall(1.0, 25.0)
    assert message is not None and "--quality 60 dB not reached" in message and f"{most} Gaussians" in message
    flat = QualityTarget(30.0, VIDEO, first_count=100)
    flat.record(100, 5000, 1000, psnr=27.0)
    second = flat.gaussians(10, 10)
    assert second == round(100 * 2 ** (3.0 / QualityTarget.DB_PER_DOUBLING))
    flat.record(second, 5000, 1000, psnr=27.3)  # +0.3 dB for 2.3x: more is not worth it
    assert flat.gaussians(20, 10) == second
    assert f"{0.3 / math.log2(second / 100):.2f} dB per doubling" in flat.shortfall(0.1, 27.2)
    low = QualityTarget(10.0, VIDEO, first_count=100)
    low.record(100, 5000, 1000, psnr=40.0)
    assert low.gaussians(10, 10) == max(RateModel.min_gaussians, math.ceil(100 / QualityTarget.MAX_STEP))


def test_bitrate_target_reports_the_reachable_range():
    low, high = reachable_bpp(VIDEO, RUNGS[-1])
    assert 0 < low < high
    assert BitrateTarget((low + high) / 2, VIDEO, RUNGS[-1]).check() == []
    (below,) = BitrateTarget(low / 2, VIDEO, RUNGS[-1]).check()
    (above,) = BitrateTarget(high * 2, VIDEO, RUNGS[-1]).check()
    assert "below" in below and "above" in above and f"{low:.3g}-{high:.3g} bpp" in below


@pytest.mark.parametrize("count", [16, 300, 1250, 20000])
def test_quality_picks_a_smaller_network_for_fewer_gaussians(count):
    rung = settings_for_gaussians(count)
    assert RUNGS.index(rung) >= RUNGS.index(settings_for_gaussians(count * 4))


@pytest.mark.parametrize("encoding", ["hash", "plane", "positional"])
def test_every_encoding_has_a_ladder_of_shrinking_networks(encoding):
    """The rungs keep the hash ladder's MLP width, precisions and codebooks; plane tables hold about
    as many weights as the hash tables of the same rung, and the positional encoding has none."""
    rungs = ladder(encoding)
    assert [rung.model.encoding for rung in rungs] == [encoding] * len(RUNGS)
    settings = [(r.model.width, r.network_bits, r.rvq_stages, r.codebook_size, r.cholesky_bits) for r in rungs]
    assert settings == [(r.model.width, r.network_bits, r.rvq_stages, r.codebook_size, r.cholesky_bits) for r in RUNGS]
    costs = [RateModel.fixed_bits(rung) for rung in rungs]
    assert costs == sorted(costs, reverse=True)
    tables = [sum(tensor_sizes(rung.model)[:-MLP_TENSORS]) for rung in rungs]
    hash_tables = [sum(tensor_sizes(rung.model)[:-MLP_TENSORS]) for rung in RUNGS]
    if encoding == "positional":
        assert tables == [0] * len(RUNGS)
    else:
        assert all(0.8 <= ours / theirs <= 1.2 for ours, theirs in zip(tables, hash_tables)), tables


@pytest.mark.parametrize("encoding", ["plane", "positional"])
def test_rate_plan_takes_the_rung_from_the_encodings_ladder(encoding):
    default = Rung(ModelConfig(encoding=encoding), 8, 2, 64)
    for target in ({"bpp": 0.05, "quality": None}, {"bpp": None, "quality": 30.0}):
        rung, _ = rate_plan(VIDEO, first_count=100, default=default, **target)
        assert rung in ladder(encoding)
        assert RateModel.fixed_bits(rung) < RateModel.fixed_bits(ladder(encoding)[0])  # 64x48: a small network
    given = ModelConfig(encoding=encoding, width=24)
    rung, _ = rate_plan(VIDEO, bpp=0.05, quality=None, first_count=100, default=default, model=given)
    assert rung.model == given
    rung, control = rate_plan(VIDEO, bpp=None, quality=None, first_count=100, default=default)
    assert rung == default and control.gaussians(0, 10) == 100
    with pytest.raises(ValueError, match="unknown encoding"):
        ladder("fourier")


def test_bitrate_target_shares_bits_by_gop_kind_and_prices_kept_gaussians_apart():
    from types import SimpleNamespace

    from stgvcodec.encoder.rate import KEY_WEIGHT, PREDICTED_BITS_PER_REFERENCE, container_bits

    rung = RUNGS[-1]
    keys = [True, False, False]
    control = BitrateTarget(0.5, VIDEO, rung, keys)
    fixed = RateModel.fixed_bits(rung)
    per_gaussian = RateModel.bits_per_gaussian(rung)
    left = 0.5 * VIDEO.pixels - container_bits(20, 3)
    key_budget = left * 10 * KEY_WEIGHT / (10 * KEY_WEIGHT + 20)
    assert control.gaussians(0, 10) == int((key_budget - fixed) / per_gaussian)

    # GoP 0 cost 6,000 bits; GoP 1 is predicted from its 100 Gaussians.
    control.record(100, 750, 250, psnr=30.0)
    budget = (0.5 * VIDEO.pixels - control.spent_bits) / 2 - 8 * 250
    per_gaussian = 8 * 500 / 100
    keep_all = 100 * PREDICTED_BITS_PER_REFERENCE
    assert control.gaussians(10, 10, reference=100) == int(100 + (budget - keep_all) / per_gaussian)

    # It kept all 100 for 800 bits of prediction streams and added 20 new ones.
    report = SimpleNamespace(predicted=True, stream_bytes={"prediction": 100}, reference_gaussians=100, kept=100)
    control.record(120, 600, 250, psnr=31.0, report=report)
    assert (control.reference_bits, control.reference_count) == (800, 100)
    assert control.gaussian_count == 120 and control.gaussian_bits == 8 * 500 + 8 * 350 - 800
    # Too few bits to keep every reference Gaussian: it keeps what the budget buys at 8 bits each.
    poor = BitrateTarget(0.5, VIDEO, rung, keys)
    poor.record(100, 750, 250, psnr=30.0)
    poor.record(120, 600, 250, psnr=31.0, report=report)
    poor.spent_bits = 0.5 * VIDEO.pixels - 8 * 250 - 8 * 100 * 4  # 3,200 bits past the fixed cost
    assert poor.gaussians(20, 10, reference=1000) == 400
