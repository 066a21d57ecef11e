"""The pull of a predicted GoP's kept Gaussians toward their reference, and the key-GoP plan."""

from __future__ import annotations

import torch

from stgvcodec.encoder.plan import KeyPlan
from stgvcodec.model import Gaussians
from stgvcodec.train.anchor import Anchor


def _gaussians(count: int = 6) -> Gaussians:
    generator = torch.Generator().manual_seed(0)
    return Gaussians(torch.rand(count, 2, generator=generator), torch.rand(count, 3, generator=generator) + 1, torch.rand(count, 3, generator=generator))


def test_pull_stops_exactly_on_the_reference_and_leaves_new_rows_alone():
    gaussians = _gaussians()
    anchor = Anchor.of(gaussians, 4, strength=0.5)
    with torch.no_grad():
        gaussians.means += torch.tensor([[0.002, -0.002]] * 3 + [[0.5, 0.0]] * 3)
    before = gaussians.means.detach().clone()
    anchor.pull(gaussians, lr=0.01)  # moves by 0.005 at most
    assert torch.equal(gaussians.means[:3], anchor.means[:3])  # within reach: exactly on the reference
    assert torch.allclose(gaussians.means[3], anchor.means[3] + torch.tensor([0.495, 0.0]))
    assert torch.equal(gaussians.means[4:], before[4:])  # rows after K are new: untouched
    assert anchor.unchanged(gaussians).tolist() == [True, True, True, False]


def test_cholesky_factors_are_pulled_at_their_own_rate():
    gaussians = _gaussians()
    anchor = Anchor.of(gaussians, 6, strength=1.0)
    with torch.no_grad():
        gaussians.means += 0.5
        gaussians.cholesky += 0.5
    anchor.pull(gaussians, lr=0.01, cholesky_lr=0.1)
    assert torch.allclose(gaussians.means - anchor.means, torch.full((6, 2), 0.49))
    assert torch.allclose(gaussians.cholesky - anchor.cholesky, torch.full((6, 3), 0.4))


def test_no_strength_no_pull():
    gaussians = _gaussians()
    anchor = Anchor.of(gaussians, 6, strength=0.0)
    with torch.no_grad():
        gaussians.colors += 0.001
    anchor.pull(gaussians, lr=1.0)
    assert not anchor.unchanged(gaussians).any()


def test_keyint_counts_frames_from_the_last_key_gop():
    gops = [(0, 4), (4, 4), (8, 4), (12, 4), (16, 4)]
    plan = KeyPlan(gops, keyint=8)
    assert plan.forced_keys() == [True, False, True, False, True]
    assert not plan.may_predict(0) and plan.may_predict(1)
    plan.record(1, predicted=False)  # GoP 1 became a key GoP (a cut): the count restarts there
    assert plan.may_predict(2) and not plan.may_predict(3)
    assert KeyPlan(gops, keyint=1).forced_keys() == [True] * 5
