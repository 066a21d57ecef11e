"""Hash-grid speed on the CPU: the torch path against the numba kernels, in one run. Prints JSON.

    python tools/bench_hashgrid.py                      # the two grids alone
    python tools/bench_hashgrid.py ../shared/data/bigbuckbunny_1280x720_132f.mp4 \\
        --crop 1280x640 --scale 320x160 --steps 100     # and stage-2 training steps

Grids: the deformation field's G2D ([N, 2] points) and G3D ([N, 3] points, one frame per step)
with ModelConfig's defaults, forward then backward with fixed random output gradients, for each
--gaussians count. Stage 2 (with a clip): the first GoP's frames, Gaussians from the key frame as
stage 1 starts them, then `fit_gop`'s stage-2 step (render one frame, L2 loss, Adam) on two
copies of the same model, one per path; both paths compute the same bits, so the two copies
must end with equal parameters (`parameters_equal`).

The paths alternate in rounds, so load from other processes falls on both alike. Per path: the
median over rounds of wall and CPU (process) milliseconds per iteration; ratios are torch/numba.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time

import stgvcodec  # noqa: F401  (before torch: it sets how OpenMP threads wait)
import numba
import numpy as np
import torch
from _report import check_json_output, emit

from stgvcodec.config import ModelConfig, preset
from stgvcodec.io import parse_size, read_frames
from stgvcodec.model import Gaussians, GopModel, frame_times
from stgvcodec.model.encoding import HashGrid

PATHS = ("torch", "numba")


def _use(path: str) -> None:
    """HashGrid.forward reads STGV_HASHGRID at every call."""
    os.environ["STGV_HASHGRID"] = "torch" if path == "torch" else "auto"


def _rounds(work: dict, rounds: int, iterations: int) -> dict:
    """Runs work[path]() `iterations` times per round, paths alternating; per-iteration medians."""
    samples = {path: ([], []) for path in work}
    for _ in range(rounds):
        for path, fn in work.items():
            _use(path)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(iterations):
                fn()
            samples[path][0].append((time.perf_counter() - wall) * 1e3 / iterations)
            samples[path][1].append((time.process_time() - cpu) * 1e3 / iterations)
    result = {path: {"wall_ms": statistics.median(w), "cpu_ms": statistics.median(c)}
              for path, (w, c) in samples.items()}  # fmt: skip
    for key in ("wall_ms", "cpu_ms"):
        slow, fast = result["torch"][key], result["numba"][key]
        result[f"ratio_{key[:-3]}"] = slow / fast if fast > 0 else None
    return result


def bench_grids(count: int, rounds: int, iterations: int) -> dict:
    config = ModelConfig()
    grid = dict(levels=config.levels, log2_table_size=config.log2_table_size,
                base_resolution=config.base_resolution, per_level_scale=config.per_level_scale)  # fmt: skip
    generator = torch.Generator().manual_seed(count)
    cases = []
    for dims, features in ((2, config.spatial_features), (3, config.temporal_features)):
        encoder = HashGrid(dims, features=features, **grid)
        x = torch.rand(count, dims, generator=generator)
        upstream = torch.randn(count, encoder.output_dim, generator=generator)
        cases.append((encoder, x, upstream))

    def step():
        for encoder, x, upstream in cases:
            encoder.params.grad = None
            torch.autograd.backward(encoder(x), upstream)

    outputs = {}
    for path in PATHS:  # warm-up (compiles or loads the kernels) and the equality check
        _use(path)
        step()
        outputs[path] = [(encoder(x).detach(), encoder.params.grad.clone()) for encoder, x, _ in cases]
    equal = all(torch.equal(a[0], b[0]) for a, b in zip(outputs["torch"], outputs["numba"]))
    grad_diff = max((a[1] - b[1]).abs().max().item() for a, b in zip(outputs["torch"], outputs["numba"]))
    return {"gaussians": count, "features_equal": equal, "max_grad_diff": grad_diff,
            **_rounds({"torch": step, "numba": step}, rounds, iterations)}  # fmt: skip


def bench_stage2(args: argparse.Namespace) -> dict:
    frames = []
    for frame in read_frames(args.clip, crop=args.crop, scale=args.scale):
        frames.append(frame)
        if len(frames) == args.gop_size:
            break
    clip = torch.from_numpy(np.stack(frames)).float() / 255.0
    count, height, width = clip.shape[:3]
    fit = preset("fast", gaussians=args.stage2_gaussians)
    torch.manual_seed(fit.seed)
    generator = torch.Generator().manual_seed(fit.seed)
    gaussians = Gaussians.from_image(clip[0], fit.count(height, width), generator)
    times = torch.tensor(frame_times(count))
    models, optimizers, order = {}, {}, torch.randint(count, (args.steps * args.rounds + 1,), generator=generator)
    base = GopModel(gaussians, ModelConfig())
    for path in PATHS:
        model = copy.deepcopy(base)
        models[path] = model
        optimizers[path] = torch.optim.Adam(
            [
                {"params": model.gaussians.parameters(), "lr": fit.lr_gaussians},
                {"params": model.deformation.parameters(), "lr": fit.lr_network},
            ]
        )
    position = {path: 0 for path in PATHS}

    def step(path):
        k = int(order[position[path]])
        position[path] += 1
        model, optimizer = models[path], optimizers[path]
        loss = torch.mean((model.render(times[[k]], height, width) - clip[[k]]) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for path in PATHS:  # warm-up: compiles or loads every kernel
        _use(path)
        step(path)
    result = _rounds({path: (lambda p=path: step(p)) for path in PATHS}, args.rounds, args.steps)
    equal = all(
        torch.equal(a, b) for a, b in zip(models["torch"].parameters(), models["numba"].parameters())
    )
    return {"clip": args.clip, "width": width, "height": height, "frames": count,
            "gaussians": len(gaussians), "steps_per_path": args.steps * args.rounds + 1,
            "parameters_equal": equal, **result}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", help="video for the stage-2 step timing (skipped without)")
    parser.add_argument("--crop", type=parse_size, help="centre crop WxH, before scaling")
    parser.add_argument("--scale", type=parse_size, help="resize to WxH")
    parser.add_argument("--gop-size", type=int, default=10)
    parser.add_argument("--gaussians", default="1250,3000", help="point counts of the grid benchmark")
    parser.add_argument("--stage2-gaussians", type=int,
                        help="Gaussians of the stage-2 model (default: the fast preset's density)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the two paths")
    parser.add_argument("--iterations", type=int, default=50, help="grid forward+backward passes per round")
    parser.add_argument("--steps", type=int, default=20, help="stage-2 steps per round")
    parser.add_argument("--json", help="also write the JSON here")
    args = parser.parse_args()
    check_json_output(args.json, *([args.clip] if args.clip else []))
    try:
        counts = [int(c) for c in args.gaussians.split(",")]
    except ValueError:
        sys.exit(f"bench_hashgrid: --gaussians wants comma-separated integers, got {args.gaussians!r}")
    if min(counts) < 0 or min(args.rounds, args.iterations, args.steps) < 1:
        sys.exit("bench_hashgrid: counts must be >= 0, --rounds, --iterations and --steps >= 1")
    if args.clip and not os.path.isfile(args.clip):
        sys.exit(f"bench_hashgrid: {args.clip}: no such file")

    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
                    "load_before": os.getloadavg()},  # fmt: skip
        "grids": [bench_grids(count, args.rounds, args.iterations) for count in counts],
    }
    if args.clip:
        report["stage2"] = bench_stage2(args)
    report["machine"]["load_after"] = os.getloadavg()
    emit(report, args.json)


if __name__ == "__main__":
    main()
