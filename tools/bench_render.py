"""Render speed and memory: forward and forward+backward, per backend and size. Prints JSON.

    python tools/bench_render.py                 # CPU, and CUDA when present
    python tools/bench_render.py --device cpu --repeat 20 --json out.json

Cases: (640x360, 20K) and (1280x720, 40K) realistic Gaussians (stgvcodec.render.synthetic).
Per case: forward ms for one frame, forward ms per frame in a batch of 10, forward+backward ms
for one frame (loss = sum of the image times fixed random weights), each the median over
--repeat runs after a warm-up; peak memory: CUDA's max_memory_allocated on GPU, the process's
peak RSS on CPU (each CPU case runs in its own process so the figure is that case's).
CUDA timings synchronise the device around every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import stgvcodec  # noqa: F401  (before torch: it sets how OpenMP threads wait)
import torch
from _report import check_json_output, emit

from stgvcodec.render import rasterize
from stgvcodec.render.synthetic import random_gaussians

CASES = [(360, 640, 20_000), (720, 1280, 40_000)]
TARGETS_MS = {
    ("cpu", 720, 1280, 40_000): {"forward_ms": 60.0, "forward_backward_ms": 200.0},
    ("triton", 720, 1280, 40_000): {"forward_batch10_ms_per_frame": 0.3, "forward_backward_ms": 2.0},
}


def _timed(fn, device: torch.device, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run_case(height: int, width: int, count: int, device: torch.device, backend: str, repeat: int) -> dict:
    single = [t.to(device) for t in random_gaussians(count, height, width, seed=0)]
    batch = [t.to(device) for t in random_gaussians(count, height, width, batch=10, seed=1)]
    params = [t.clone().requires_grad_(True) for t in single]
    weights = torch.randn(height, width, 3, generator=torch.Generator().manual_seed(2)).to(device)

    def forward():
        with torch.no_grad():
            rasterize(*single, height, width, backend=backend)

    def forward_batch():
        with torch.no_grad():
            rasterize(*batch, height, width, backend=backend)

    def forward_backward():
        (rasterize(*params, height, width, backend=backend) * weights).sum().backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = {
        "backend": backend,
        "device": _device_name(device),
        "height": height,
        "width": width,
        "gaussians": count,
        "forward_ms": _timed(forward, device, repeat),
        "forward_batch10_ms_per_frame": _timed(forward_batch, device, max(repeat // 2, 1)) / 10,
        "forward_backward_ms": _timed(forward_backward, device, repeat),
    }
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        import numba

        result["threads"] = numba.get_num_threads()
    targets = TARGETS_MS.get((backend, height, width, count), {})
    result["targets_ms"] = targets
    result["meets_targets"] = all(result[k] <= v for k, v in targets.items()) if targets else None
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cpus)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", help="also write the JSON here")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # "H,W,N": one CPU case, run in a child process
    args = parser.parse_args()
    check_json_output(args.json)

    if args.case:
        height, width, count = map(int, args.case.split(","))
        print(json.dumps(run_case(height, width, count, torch.device("cpu"), "cpu", args.repeat)))
        return

    results = []
    if args.device in ("auto", "cpu"):
        for height, width, count in CASES:
            child = [sys.executable, __file__, "--case", f"{height},{width},{count}", "--repeat", str(args.repeat)]
            output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        for height, width, count in CASES:
            results.append(run_case(height, width, count, torch.device("cuda"), "triton", args.repeat))
    emit({"torch": torch.__version__, "results": results}, args.json)


if __name__ == "__main__":
    main()
