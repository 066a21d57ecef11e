"""Fits GoPs of a clip and prints JSON per GoP: quality, steps, time, size. Runs the paper's ablations.

    python tools/fit_bench.py ../shared/data/bigbuckbunny_1280x720_132f.mp4 \
        --crop 1280x640 --scale 320x160 --gops 1-2 --preset fast --ablation --json fit.json

Per GoP: PSNR (mean over frames, 8-bit output against 8-bit source), MS-SSIM (None below
161 px), the PSNR of the canonical Gaussians alone shown at every frame (`static_psnr`: the
key-frame-only fit without deformation), steps, seconds, device, Gaussians, parameters.
--ablation runs, on the same GoPs: keyframe vs multiframe initialisation (the paper's table V)
and hash vs plane vs positional encoding (table IV), all at the same steps and Gaussians.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np
import stgvcodec  # noqa: F401  (before torch: it sets how OpenMP threads wait)
import torch
from _report import check_json_output, emit

from stgvcodec.config import ModelConfig, preset
from stgvcodec.io import parse_size, read_frames
from stgvcodec.metrics import ms_ssim_skip_reason
from stgvcodec.model import split_gops
from stgvcodec.train.gop_fit import fit_gop

VARIANTS = {
    "stgv": dict(encoding="hash", init="keyframe"),
    "multiframe-init": dict(encoding="hash", init="multiframe"),
    "plane": dict(encoding="plane", init="keyframe"),
    "positional": dict(encoding="positional", init="keyframe"),
}


def _range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("--crop", type=parse_size, help="centre crop WxH, before scaling")
    parser.add_argument("--scale", type=parse_size, help="resize to WxH")
    parser.add_argument("--gops", default="1-1", help="GoPs to fit, 1-based inclusive range A-B")
    parser.add_argument("--gop-size", type=int, default=10)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--encoding", choices=["hash", "plane", "positional"], default="hash")
    parser.add_argument("--init", choices=["keyframe", "multiframe"], default="keyframe")
    parser.add_argument("--gaussians", type=int)
    parser.add_argument("--init-steps", type=int)
    parser.add_argument("--deform-steps", type=int)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablation", action="store_true", help="run every variant on the chosen GoPs")
    parser.add_argument("--json", help="also write the JSON here")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args()
    check_json_output(args.json, args.input)

    first, last = _range(args.gops)
    frames = list(read_frames(args.input, crop=args.crop, scale=args.scale))
    gops = split_gops(len(frames), args.gop_size)
    if not 1 <= first <= last <= len(gops):
        sys.exit(f"fit_bench: --gops {args.gops} outside 1-{len(gops)}")
    fit = preset(
        args.preset,
        gaussians=args.gaussians,
        init_steps=args.init_steps,
        deform_steps=args.deform_steps,
        seed=args.seed,
    )
    variants = VARIANTS if args.ablation else {"custom": dict(encoding=args.encoding, init=args.init)}
    device = torch.device(args.device)

    runs = []
    for name, variant in variants.items():
        for number in range(first, last + 1):
            start, count = gops[number - 1]
            clip = torch.from_numpy(np.stack(frames[start : start + count])).to(device)
            result = fit_gop(
                clip,
                ModelConfig(encoding=variant["encoding"]),
                replace(fit, init=variant["init"]),
                quiet=args.quiet,
                label=f"{name} GoP {number}",
            )
            run = {
                "variant": name,
                **variant,
                "gop": number,
                "frames": count,
                "width": clip.shape[2],
                "height": clip.shape[1],
                "psnr": result.psnr,
                "ms_ssim": result.ms_ssim,
                "ms_ssim_skipped": ms_ssim_skip_reason(clip.shape[1], clip.shape[2]),
                "static_psnr": result.static_psnr,
                "steps": result.steps,
                "seconds": result.seconds,
                "device": str(device),
                "gaussians": len(result.model.gaussians),
                "parameters": sum(p.numel() for p in result.model.parameters()),
                "preset": args.preset,
            }
            runs.append(run)
            print(json.dumps(run), file=sys.stderr)

    summary = {}
    for name in variants:
        mine = [r for r in runs if r["variant"] == name]
        summary[name] = {
            "psnr": sum(r["psnr"] for r in mine) / len(mine),
            "seconds_per_gop": sum(r["seconds"] for r in mine) / len(mine),
        }
    base = [r for r in runs if r["variant"] in ("stgv", "custom")]
    if base:
        summary["static-keyframe"] = {"psnr": sum(r["static_psnr"] for r in base) / len(base)}
    sizes = {name: "x".join(map(str, value)) if value else None for name, value in (("crop", args.crop), ("scale", args.scale))}
    emit({"input": args.input, **sizes, "runs": runs, "summary": summary}, args.json)


if __name__ == "__main__":
    main()
