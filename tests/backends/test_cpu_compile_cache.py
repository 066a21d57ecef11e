"""The CPU kernels compute the same values and gradients whether numba compiled them in this
process or loaded them from its on-disk cache (encodes must not depend on which run came first)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import hashlib, torch
from stgvcodec.render import rasterize
g = torch.Generator().manual_seed(0)
n = 500
means = (torch.rand(n, 2, generator=g) * 2 - 1).requires_grad_()
cholesky = (torch.rand(n, 3, generator=g) * torch.tensor([4.0, 1.0, 4.0]) + torch.tensor([0.5, -0.5, 0.5])).requires_grad_()
colours = torch.rand(n, 3, generator=g).requires_grad_()
image = rasterize(means, cholesky, colours, 47, 61, backend="cpu")
(image * torch.linspace(0, 1, image.numel()).view_as(image)).sum().backward()
print(*(hashlib.sha256(t.detach().numpy().tobytes()).hexdigest() for t in (image, means.grad, cholesky.grad, colours.grad)))
"""


def test_fresh_and_cached_kernels_agree_bit_for_bit(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    runs = [subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr + runs[1].stderr
    assert any(tmp_path.rglob("*.nbi")), "the first run did not write numba's cache"
    fresh, cached = (run.stdout.split() for run in runs)
    assert fresh == cached
