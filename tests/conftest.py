"""Shared test set-up.

Without CUDA, the Triton kernels run in Triton's interpreter on CPU tensors; the variable must be
set before triton compiles (decorates) any kernel, hence here, before any test module imports.
"""

import os

import stgvcodec  # noqa: F401  (before torch: it sets how OpenMP threads wait)
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
