"""Fits consecutive GoPs of a clip as the encoder does and prints JSON per GoP: quality, steps, time.
Compares with another revision of the code in the same run, and runs the paper's ablations.

    python tools/fit_bench.py ../shared/data/bigbuckbunny_1280x720_132f.mp4 \
        --crop 1280x640 --scale 320x160 --gops 1-3 --preset fast --baseline-ref 2be9ae5 --json fit.json \
        --curve 100 --curve-png fit.png

Per GoP: PSNR (mean over frames, 8-bit output against 8-bit source), MS-SSIM (None below
161 px), the PSNR of the canonical Gaussians alone shown at every frame (`static_psnr`), steps,
wall and CPU seconds of the fit (`seconds`, `cpu_seconds`: all threads of the process), device,
Gaussians, parameters, and whether the fit started warm.

Warm starts (--warm): each GoP after the first starts from the previous GoP's canonical Gaussians,
as the encoder does ("decoded": after QAT and coding, as the decoder rebuilds them; the QAT and
coding time is reported apart, as `qat_seconds`, with the PSNR of the coded GoP, `coded_psnr`),
from its float fit ("float"), or never ("off": every GoP on its own). Every GoP is fitted freely
and coded as a key GoP, as `stgv encode --keyint 1` does: the encoder's predicted GoPs pull the
Gaussians they keep back to the previous GoP's values (train/anchor.py), trading fit quality for
bits, which tools/rd_curve.py measures.

--baseline-ref REV: the same GoPs fitted with the code of revision REV (its files extracted with
`git archive` into a temporary folder, imported there by a second process running this script,
warm starts off, since older code has none), before the current code. `comparison` then gives per
GoP the PSNR difference and the wall and CPU time ratios current/baseline, and their means.
Both processes first fit a tiny clip, so loading or compiling the render kernels is timed in
neither.

--curve EVERY: every EVERY optimizer steps (both stages), the PSNR of the model as it stands over
all frames of the GoP (the canonical Gaussians at every frame in stage 1), with the wall and CPU
seconds of the fit so far; each run gains `curve`, a list of {step, stage, seconds, cpu_seconds,
psnr}, ending with the finished fit. The evaluations are left out of every time reported, the
runs' own `seconds` and `cpu_seconds` included. Works for --baseline-ref as well: it instruments
the fit from outside (gop_fit._step and the render methods), which every revision has.
--curve-png PATH draws PSNR against CPU seconds per GoP, current and baseline (needs matplotlib).

--ablation runs, on the same GoPs: keyframe vs multiframe initialisation (the paper's table V)
and hash vs plane vs positional encoding (table IV), all at the same steps and Gaussians.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import stgvcodec  # noqa: F401  (before torch: it sets how OpenMP threads wait)
import torch
from _report import check_json_output, emit

from stgvcodec.config import FitConfig, ModelConfig, preset
from stgvcodec.io import parse_size, read_frames
from stgvcodec.metrics import ms_ssim_skip_reason, psnr
from stgvcodec.model import split_gops
from stgvcodec.train.gop_fit import fit_gop

# This script also runs against older revisions of stgvcodec (--baseline-ref): what it imports
# above must exist there; newer features are imported where used, or looked up with getattr.

VARIANTS = {
    "stgv": dict(encoding="hash", init="keyframe"),
    "multiframe-init": dict(encoding="hash", init="multiframe"),
    "plane": dict(encoding="plane", init="keyframe"),
    "positional": dict(encoding="positional", init="keyframe"),
}
WARM = ("decoded", "float", "off")
OVERRIDES = ("gaussians", "init_steps", "deform_steps", "warm_init_steps", "warm_deform_steps", "seed")
"""FitConfig fields the command line can set; a revision without one of them keeps its own behaviour."""


def _range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def _arguments() -> argparse.Namespace:
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
    parser.add_argument("--warm-init-steps", type=int)
    parser.add_argument("--warm-deform-steps", type=int)
    parser.add_argument("--qat-steps", type=int, help="QAT steps of --warm decoded (default QuantConfig's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="replace a FitConfig field of the current code (not the baseline's): lr_gaussians=0.01")
    parser.add_argument("--warm", choices=WARM, default="decoded", help="warm starts across GoPs (default: as encoding)")
    parser.add_argument("--baseline-ref", metavar="REV", help="also fit the GoPs with the code of git revision REV")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablation", action="store_true", help="run every variant on the chosen GoPs")
    parser.add_argument("--curve", type=int, metavar="EVERY", help="record PSNR against time every EVERY steps")
    parser.add_argument("--curve-png", metavar="PATH", help="draw the --curve records as PSNR against CPU seconds")
    parser.add_argument("--json", help="also write the JSON here")
    parser.add_argument("-q", "--quiet", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    check_json_output(args.json, args.input)
    if args.curve_png and not args.curve:
        sys.exit("fit_bench: --curve-png needs --curve EVERY")
    if args.curve is not None and args.curve < 1:
        sys.exit(f"fit_bench: --curve {args.curve}: expected a step count >= 1")
    if args.curve_png:
        check_json_output(args.curve_png, args.input)
    first, last = _range(args.gops)
    frames = list(read_frames(args.input, crop=args.crop, scale=args.scale))
    gops = split_gops(len(frames), args.gop_size)
    if not 1 <= first <= last <= len(gops):
        sys.exit(f"fit_bench: --gops {args.gops} outside 1-{len(gops)}")
    known = {f.name for f in dataclasses.fields(FitConfig)}
    fit = preset(args.preset, **{name: getattr(args, name) for name in OVERRIDES if name in known})
    fit = dataclasses.replace(fit, **_settings(args.set, fit))
    variants = VARIANTS if args.ablation else {"custom": dict(encoding=args.encoding, init=args.init)}
    device = torch.device(args.device)

    baseline = _baseline(args) if args.baseline_ref else []
    _warm_up(device)
    runs = []
    curve = _Curve(args.curve) if args.curve else None
    for name, variant in variants.items():
        runs += _fit_gops(frames, gops[first - 1 : last], first, name, variant, fit, args, device, curve)

    summary = {}
    for name in [*variants, *(["baseline"] if baseline else [])]:
        mine = [r for r in runs + baseline if r["variant"] == name]
        summary[name] = {
            "psnr": sum(r["psnr"] for r in mine) / len(mine),
            "seconds_per_gop": sum(r["seconds"] for r in mine) / len(mine),
            "cpu_seconds_per_gop": sum(r["cpu_seconds"] for r in mine) / len(mine),
        }
    base = [r for r in runs if r["variant"] in ("stgv", "custom")]
    if base:
        summary["static-keyframe"] = {"psnr": sum(r["static_psnr"] for r in base) / len(base)}
    sizes = {name: _size(getattr(args, name)) for name in ("crop", "scale")}
    report = {"input": args.input, **sizes, "warm": args.warm, "runs": runs + baseline, "summary": summary}
    if baseline:
        report["comparison"] = _compare(base, baseline)
        _print_table(report["comparison"])
    if args.curve_png:
        _draw_curves(report["runs"], args.curve_png)
    emit(report, args.json)


def _size(size: tuple[int, int] | None) -> str | None:
    return "x".join(map(str, size)) if size else None


def _settings(items: list[str], fit: FitConfig) -> dict:
    """--set FIELD=VALUE items as FitConfig fields, each value of its field's current type."""
    settings = {}
    for item in items:
        name, _, text = item.partition("=")
        if not hasattr(fit, name) or not text:
            sys.exit(f"fit_bench: --set {item}: expected FIELD=VALUE with a FitConfig field")
        current = getattr(fit, name)
        kind = type(current) if current is not None else (int if text.lstrip("-").isdigit() else float)
        try:
            settings[name] = kind(text)
        except ValueError:
            sys.exit(f"fit_bench: --set {item}: {text!r} is not a {kind.__name__}")
    return settings


def _fit_gops(frames, gops, first_number, name, variant, fit, args, device, curve) -> list[dict]:
    """Fits consecutive GoPs, each starting from the previous one's Gaussians as --warm says;
    `curve` (a _Curve or None) records each fit's progress."""
    runs, start = [], None
    model_config = ModelConfig(encoding=variant["encoding"])
    fit = dataclasses.replace(fit, init=variant["init"])
    for number, (first, count) in enumerate(gops, start=first_number):
        clip = torch.from_numpy(np.stack(frames[first : first + count])).to(device)
        options = {"start": start} if args.warm != "off" else {}
        if curve:
            curve.begin(clip)
        wall, cpu = time.perf_counter(), time.process_time()
        result = fit_gop(clip, model_config, fit, quiet=args.quiet, label=f"{name} GoP {number}", **options)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if curve:
            wall, cpu = wall - curve.spent[0], cpu - curve.spent[1]
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
            "seconds": wall,
            "cpu_seconds": cpu,
            "warm": getattr(result, "warm", False),
            "warm_psnr": getattr(result, "warm_psnr", None),
            "cold_psnr": getattr(result, "cold_psnr", None),
            "device": str(device),
            "gaussians": len(result.model.gaussians),
            "parameters": sum(p.numel() for p in result.model.parameters()),
            "preset": args.preset,
            "package": str(Path(stgvcodec.__file__).parent),
        }
        if curve:
            run["curve"] = curve.end(result.steps, wall, cpu, result.psnr)
        if args.warm == "float":
            start = result.model.gaussians
        elif args.warm == "decoded" and number < first_number + len(gops) - 1:
            start = _decoded(result.model, clip, model_config, device, args, run)
        runs.append(run)
        print(json.dumps(run), file=sys.stderr)
    return runs


def _decoded(fitted, clip, model_config, device, args, run: dict):
    """The canonical Gaussians the decoder rebuilds after QAT and coding, as the encoder's next GoP
    starts from; adds the coding's time and the coded GoP's PSNR to `run`."""
    from stgvcodec.decode import render_gop
    from stgvcodec.encoder.pipeline import quantize_gop
    from stgvcodec.quant.qat import QuantConfig

    wall, cpu = time.perf_counter(), time.process_time()
    quant = QuantConfig() if args.qat_steps is None else QuantConfig(steps=args.qat_steps)
    payload, decoded, _ = quantize_gop(fitted, clip, model_config, quant, device, seed=args.seed, quiet=args.quiet)
    run["qat_seconds"], run["qat_cpu_seconds"] = time.perf_counter() - wall, time.process_time() - cpu
    sources = clip.cpu().numpy()
    reconstruction = render_gop(decoded, *sources.shape[:3])
    run["coded_psnr"] = float(np.mean([psnr(r, s) for r, s in zip(reconstruction, sources)]))
    run["coded_bytes"] = len(payload)
    return decoded.gaussians


class _Curve:
    """--curve: wraps gop_fit._step, which every optimizer step of a fit calls, and the render
    methods, which tell the model being trained (Gaussians in stage 1, GopModel in stage 2); every
    `every` steps it renders the GoP and records its PSNR and the time so far, minus the time that
    such evaluations took (`spent`, wall and CPU seconds). Made once per process: a second one
    would wrap the wrappers."""

    def __init__(self, every: int):
        from stgvcodec.model import Gaussians, GopModel
        from stgvcodec.train import gop_fit

        self.every, self.model, self.points = every, None, []
        step, gaussians_render, model_render = gop_fit._step, Gaussians.render, GopModel.render

        def watched(render):
            def wrapper(model, *args, **kwargs):
                self.model = model
                return render(model, *args, **kwargs)

            return wrapper

        def counted(optimizer, loss, bar, stage):
            step(optimizer, loss, bar, stage)
            self.steps += 1
            if self.steps % self.every == 0:
                self._record(stage)

        gop_fit._step, Gaussians.render, GopModel.render = counted, watched(gaussians_render), watched(model_render)

    def begin(self, clip: torch.Tensor) -> None:
        self.sources = clip.cpu().numpy()
        self.steps, self.points, self.spent = 0, [], (0.0, 0.0)
        self.began = time.perf_counter(), time.process_time()

    @torch.no_grad()
    def _record(self, stage: str) -> None:
        from stgvcodec.metrics import to_uint8
        from stgvcodec.model import Gaussians, frame_times

        wall, cpu = time.perf_counter(), time.process_time()
        count, height, width = self.sources.shape[:3]
        if isinstance(self.model, Gaussians):
            frames = [to_uint8(self.model.render(height, width))] * count
        else:
            device = next(self.model.parameters()).device
            frames = to_uint8(self.model.render(torch.tensor(frame_times(count), device=device), height, width))
        value = float(np.mean([psnr(f, s) for f, s in zip(frames, self.sources)]))
        self.points.append(self._point(self.steps, stage, wall, cpu, value))
        self.spent = (
            self.spent[0] + time.perf_counter() - wall,
            self.spent[1] + time.process_time() - cpu,
        )

    def _point(self, step: int, stage: str, wall: float, cpu: float, value: float) -> dict:
        return {
            "step": step, "stage": stage, "seconds": wall - self.began[0] - self.spent[0],
            "cpu_seconds": cpu - self.began[1] - self.spent[1], "psnr": value,
        }  # fmt: skip

    def end(self, steps: int, wall: float, cpu: float, value: float) -> list[dict]:
        """The points of the fit just finished, ending with the finished fit's PSNR and time."""
        return [*self.points, {"step": steps, "stage": "done", "seconds": wall, "cpu_seconds": cpu, "psnr": value}]


def _draw_curves(runs: list[dict], path: str) -> None:
    """PSNR against CPU seconds, a panel per GoP, a line per variant (current and baseline)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gops = sorted({run["gop"] for run in runs})
    figure = Figure(figsize=(5.5 * len(gops), 4.0))
    FigureCanvasAgg(figure)
    for column, gop in enumerate(gops, start=1):
        axes = figure.add_subplot(1, len(gops), column)
        for run in (r for r in runs if r["gop"] == gop and r.get("curve")):
            names = {"custom": "current", "baseline": f"baseline {run.get('ref', '')[:7]}"}
            label = names.get(run["variant"], run["variant"])
            points = run["curve"]
            axes.plot([p["cpu_seconds"] for p in points], [p["psnr"] for p in points], label=label)
        axes.set(title=f"GoP {gop}", xlabel="CPU seconds", ylabel="PSNR (dB)")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _warm_up(device: torch.device) -> None:
    """Loads (or compiles) the render kernels on a tiny fit, so that no timed GoP pays for it."""
    clip = torch.zeros(2, 8, 8, 3, dtype=torch.uint8, device=device)
    fit_gop(clip, ModelConfig(width=8), FitConfig(init_steps=2, deform_steps=2, gaussians=4), quiet=True)


def _baseline(args: argparse.Namespace) -> list[dict]:
    """Runs of the same GoPs fitted by revision args.baseline_ref, in a second process."""
    root = Path(__file__).resolve().parents[1]
    rev = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{args.baseline_ref}^{{commit}}"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    if rev.returncode:
        sys.exit(f"fit_bench: --baseline-ref {args.baseline_ref}: not a revision of {root}")
    sha = rev.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="fit-bench-") as folder:
        archive = subprocess.run(["git", "archive", sha, "stgvcodec"], cwd=root, capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        output = Path(folder) / "baseline.json"
        command = [sys.executable, __file__, args.input, "--gops", args.gops, "--gop-size", str(args.gop_size)]
        command += ["--preset", args.preset, "--encoding", args.encoding, "--init", args.init, "--warm", "off"]
        command += ["--device", args.device, "--seed", str(args.seed), "--json", str(output), "-q"]
        for name in ("crop", "scale"):
            if getattr(args, name):
                command += [f"--{name}", _size(getattr(args, name))]
        if args.curve:
            command += ["--curve", str(args.curve)]
        for name in OVERRIDES[:-1]:
            if getattr(args, name) is not None:
                command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        if args.ablation:
            command.append("--ablation")
        # The revision's package comes first on the path; this script and its _report stay current.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            sys.exit(f"fit_bench: the baseline run of {args.baseline_ref} failed (exit {done.returncode}): {last}")
        runs = json.loads(output.read_text())["runs"]
    return [{**run, "variant": "baseline", "ref": sha} for run in runs if run["variant"] in ("stgv", "custom")]


def _compare(current: list[dict], baseline: list[dict]) -> dict:
    """Per GoP and on average: PSNR difference and time ratios, current over baseline."""
    old = {r["gop"]: r for r in baseline}
    gops = []
    for new in current:
        ref = old[new["gop"]]
        gops.append({
            "gop": new["gop"],
            "psnr": new["psnr"], "baseline_psnr": ref["psnr"], "psnr_gain": new["psnr"] - ref["psnr"],
            "seconds": new["seconds"], "baseline_seconds": ref["seconds"],
            "seconds_ratio": new["seconds"] / ref["seconds"],
            "cpu_seconds": new["cpu_seconds"], "baseline_cpu_seconds": ref["cpu_seconds"],
            "cpu_seconds_ratio": new["cpu_seconds"] / ref["cpu_seconds"],
        })  # fmt: skip
    keys = ("seconds", "baseline_seconds", "cpu_seconds", "baseline_cpu_seconds")
    total = {key: sum(g[key] for g in gops) for key in keys}
    mean = {
        "psnr_gain": sum(g["psnr_gain"] for g in gops) / len(gops),
        "seconds_ratio": total["seconds"] / total["baseline_seconds"],
        "cpu_seconds_ratio": total["cpu_seconds"] / total["baseline_cpu_seconds"],
    }
    return {"ref": baseline[0]["ref"], "gops": gops, "mean": mean}


def _print_table(comparison: dict) -> None:
    """The comparison as a table on stderr, for people."""
    heads = ("PSNR", "base", "gain", "wall s", "base", "ratio", "CPU s", "base", "ratio")
    lines = [f"{'GoP':>4} " + " ".join(f"{head:>7}" for head in heads)]
    for g in comparison["gops"]:
        lines.append(
            f"{g['gop']:>4} {g['psnr']:7.2f} {g['baseline_psnr']:7.2f} {g['psnr_gain']:+7.2f} {g['seconds']:7.1f} "
            f"{g['baseline_seconds']:7.1f} {g['seconds_ratio']:7.2f} {g['cpu_seconds']:7.1f} "
            f"{g['baseline_cpu_seconds']:7.1f} {g['cpu_seconds_ratio']:7.2f}"
        )
    mean = comparison["mean"]
    lines.append(
        f"mean PSNR gain {mean['psnr_gain']:+.2f} dB, wall ratio {mean['seconds_ratio']:.2f}, "
        f"CPU ratio {mean['cpu_seconds_ratio']:.2f}"
    )
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
