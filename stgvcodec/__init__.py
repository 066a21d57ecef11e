"""stgvcodec: a video codec built on 2D Gaussian splatting (STGV).

Importing the package loads no compiled kernel; render backends load on first use.

Threads: torch runs its CPU ops on its own OpenMP runtime (the libgomp in torch/lib) and numba's
parallel render kernels on the system's libgomp, so two OpenMP thread pools share the cores. By
default each pool's idle threads busy-wait for the next parallel region, and with the other pool
(or any other process) running they steal its cores: training steps were measured 5x slower on a
loaded 2-core machine. OMP_WAIT_POLICY=PASSIVE makes idle threads sleep instead, with identical
results. Each runtime reads the variable once, when it is loaded, so it is set here, before torch
or numba is imported: `import stgvcodec` before `import torch` in scripts (the `stgv` command and
the tools do). A value already in the environment is left as it is.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
