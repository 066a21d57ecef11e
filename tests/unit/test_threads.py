"""The OpenMP thread pools in the process (torch's and numba's) let idle threads sleep."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_openmp_runtime_waits_passively():
    # Each libgomp prints its settings when it starts if OMP_DISPLAY_ENV is set; a CPU render
    # starts numba's, the import of torch starts torch's own. Unset, the policy reads 'PASSIVE'
    # too, but threads spin GOMP_SPINCOUNT = 300000 times before sleeping; passive means 0.
    script = (
        "import stgvcodec, torch\n"
        "from stgvcodec.render import rasterize\n"
        "rasterize(torch.zeros(4, 2), torch.tensor([[2.0, 0.0, 2.0]] * 4), torch.ones(4, 3), 16, 16, backend='cpu')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env.update(OMP_DISPLAY_ENV="VERBOSE", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    spins = [line.split("=")[1].strip() for line in done.stderr.splitlines() if "GOMP_SPINCOUNT" in line]
    assert len(spins) == 2 and set(spins) == {"'0'"}, done.stderr
