"""Encodes a clip at several --bpp targets and decodes it; prints JSON rows for a results table.

    python tools/codec_table.py ../shared/data/carphone_176x144_120f.mp4 --bpp 0.02,0.05,0.1,0.3 \\
        --frames 20 --preset fast --json table.json

Per target: achieved bpp (from the real file), PSNR and MS-SSIM of the decoded output against the
source (8-bit RGB, MS-SSIM None below 161 px), encode and decode seconds, and bits per stream
kind as `stgv info` reports them. Runs on CUDA when present, else the CPU (--device wins).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import emit

from stgvcodec.api import decode, encode
from stgvcodec.info import describe
from stgvcodec.io import parse_size, read_frames
from stgvcodec.metrics import ms_ssim, psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("--bpp", default="0.02,0.05,0.1,0.3")
    parser.add_argument("--frames", type=int, help="only the first N frames")
    parser.add_argument("--crop", type=parse_size)
    parser.add_argument("--scale", type=parse_size)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--device")
    parser.add_argument("--json")
    args = parser.parse_args()

    options = {k: v for k, v in {"crop": args.crop, "scale": args.scale, "max_frames": args.frames}.items() if v}
    source = np.stack(list(read_frames(args.input, **options)))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for target in (float(v) for v in args.bpp.split(",")):
            stgv, out = Path(folder) / "clip.stgv", Path(folder) / "clip.mkv"
            summary = encode(args.input, stgv, bpp=target, preset_name=args.preset, device=args.device,
                             reader_options=options, quiet=True)  # fmt: skip
            start = time.perf_counter()
            decode(stgv, out, device=args.device)
            decode_seconds = time.perf_counter() - start
            decoded = np.stack(list(read_frames(out)))
            report = describe(stgv)
            row = {
                "input": args.input,
                "frames": len(source),
                "width": source.shape[2],
                "height": source.shape[1],
                "target_bpp": target,
                "bpp": summary.bpp,
                "bpp_error_percent": 100 * (summary.bpp - target) / target,
                "psnr": float(np.mean([psnr(d, s) for d, s in zip(decoded, source)])),
                "ms_ssim": ms_ssim(decoded, source),
                "encode_seconds": summary.seconds,
                "decode_seconds": decode_seconds,
                "device": summary.device,
                "gaussians_per_gop": [g.gaussians for g in summary.gops],
                "model": report["model"],
                "bits": report["bits"],
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    emit({"preset": args.preset, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
