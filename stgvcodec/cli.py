"""The `stgv` command line: a thin click layer over the package."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import click

from . import __version__
from .encoder.plan import DEFAULT_KEYINT


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that partial outputs are removed as for Ctrl-C."""


def _terminate(signum, frame):
    raise _Terminated


class _Group(click.Group):
    """Turns any error into one line on stderr and exit status 1, unless --debug is given.

    Ctrl-C (SIGINT) and SIGTERM unwind the program, so every partial output is removed, and exit
    with 130 and 143 as shells report those signals.
    """

    def invoke(self, ctx: click.Context):
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except _Terminated:
            click.echo("stgv: terminated", err=True)
            sys.exit(143)
        except KeyboardInterrupt:
            click.echo("stgv: interrupted", err=True)
            sys.exit(130)
        except Exception as err:
            if ctx.meta.get("stgv.debug"):
                raise
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            click.echo(f"stgv: error: {message}", err=True)
            sys.exit(1)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="stgv")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """stgvcodec: video coding with 2D Gaussian splatting."""
    ctx.meta["stgv.debug"] = debug


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frame", default=0, show_default=True, type=click.IntRange(min=0), help="Frame index to fit.")
@click.option("--gaussians", default=3000, show_default=True, type=click.IntRange(min=1), help="Gaussians N.")
@click.option("--steps", default=800, show_default=True, type=click.IntRange(min=0), help="Optimisation steps.")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", "reference", "cpu", "triton"]))
@click.option("--device", default=None, help="torch device (default: cuda when present, else cpu).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def demo(source, output, frame, gaussians, steps, backend, device, seed, quiet) -> None:
    """Fit Gaussians to one frame of SOURCE and write their render to OUTPUT (PNG)."""
    import torch

    from .config import FitConfig, ModelConfig
    from .decode import default_device
    from .io import read_frames, write_png
    from .metrics import to_uint8
    from .train.gop_fit import fit_gop

    frames = list(read_frames(source, max_frames=frame + 1))
    if len(frames) <= frame:
        raise click.ClickException(f"{source}: has {len(frames)} frames, no frame {frame}")
    rgb = frames[frame]
    device = default_device(device)
    # One frame, key-frame stage only: the canonical Gaussians a GoP starts from.
    fit = FitConfig(init_steps=steps, deform_steps=0, gaussians=gaussians, seed=seed)
    start = time.perf_counter()
    result = fit_gop(torch.from_numpy(rgb[None]).to(device), ModelConfig(), fit, backend=backend, quiet=quiet, label="fit")
    seconds, quality = time.perf_counter() - start, result.psnr
    with torch.no_grad():
        write_png(output, to_uint8(result.model.gaussians.render(*rgb.shape[:2], backend)))
    height, width = rgb.shape[:2]
    click.echo(
        f"fitted {gaussians} Gaussians to frame {frame} ({width}x{height}) in {seconds:.1f} s on {device}: "
        f"PSNR {quality:.2f} dB; wrote {output}"
    )


def _size(text: str | None) -> tuple[int, int] | None:
    from .io import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _rate(text: str | None):
    from fractions import Fraction

    if text is None:
        return None
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"{text!r} is not a frame rate such as 25 or 30000/1001", param_hint="--fps") from None
    if rate <= 0:
        raise click.BadParameter(f"{text} is not positive", param_hint="--fps")
    return rate


def _frame_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    first, sep, last = text.partition("-")
    try:
        return int(first), int(last) if sep else int(first)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not A-B (0-based frame numbers)") from None


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bpp", type=float, help="Target bits per pixel of the whole file (e.g. 0.05).")
@click.option("--quality", type=float, help="Target PSNR in dB of each GoP (default 30 when neither --bpp nor --gaussians is given).")
@click.option("--gaussians", type=click.IntRange(min=1), help="Fixed Gaussians per GoP instead of a target.")
@click.option("--preset", "preset_name", default="fast", show_default=True, type=click.Choice(["fast", "medium", "paper"]))
@click.option("--encoding", default="hash", show_default=True, type=click.Choice(["hash", "plane", "positional"]),
              help="Deformation encoding: hash grids (STGV), feature planes (multi-plane predecessor) or positional (D2GV).")
@click.option("--init", default="keyframe", show_default=True, type=click.Choice(["keyframe", "multiframe"]),
              help="Fit the canonical Gaussians to the key frame (STGV) or to all frames of the GoP.")
@click.option("--gop", "gop_size", default=10, show_default=True, type=click.IntRange(1, 1000), help="Frames per GoP.")
@click.option("--keyint", default=DEFAULT_KEYINT, show_default=True, type=click.IntRange(min=1),
              help="Most frames from one key GoP to the next (random access; 1: no prediction between GoPs).")
@click.option("--device", default=None, help="torch device (default: cuda when present, else cpu).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--crop", help="Centre crop WxH before scaling.")
@click.option("--scale", help="Resize to WxH.")
@click.option("--frames", "max_frames", type=click.IntRange(min=1), help="Encode only the first N frames.")
@click.option("--size", help="Frame size WxH of raw .yuv input.")
@click.option("--fps", type=str, help="Frame rate of raw .yuv or PNG input (e.g. 25 or 30000/1001).")
@click.option("--pix-fmt", default=None, help="Pixel format of raw .yuv input (default yuv420p).")
@click.option("--steps", "steps", hidden=True, help="INIT,DEFORM,QAT step counts instead of the preset's.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", is_flag=True, help="One line per coded GoP.")
def encode(source, output, bpp, quality, gaussians, preset_name, encoding, init, gop_size, keyint, device, seed, crop, scale, max_frames, size, fps, pix_fmt, steps, quiet, verbose):
    """Encode SOURCE (video file, raw .yuv, PNG directory, or - for y4m on standard input) into OUTPUT (.stgv).

    Standard input is copied to a temporary file in TMPDIR first, since the encoder reads its
    input twice (once to count frames and reject bad input before any fitting).

    The rate follows --bpp (bits per pixel of the file), --quality (PSNR per GoP) or --gaussians;
    without any of them, --quality 30. A target the video cannot reach is reported before fitting
    and again at the end.

    GoPs are predicted from the GoP before them (only what changed is coded) except key GoPs: the
    first, one at least every --keyint frames, and wherever the picture changed too much (a cut).
    Decoding from any frame starts at the key GoP before it.

    --encoding and --init choose the codec variant: the paper's STGV (hash, keyframe), the
    multi-plane predecessor (plane) or D2GV's positional encoding (positional); under --bpp and
    --quality the network sizes come from the chosen encoding's rate ladder.
    """
    from dataclasses import replace

    from .api import encode as run
    from .config import preset
    from .quant.qat import QuantConfig

    fit, quant = None, None
    if steps:
        try:
            init_steps, deform_steps, qat_steps = (int(v) for v in steps.split(","))
        except ValueError:
            raise click.BadParameter(f"{steps!r} is not INIT,DEFORM,QAT") from None
        fit = replace(preset(preset_name), init_steps=init_steps, deform_steps=deform_steps)
        quant = QuantConfig(steps=qat_steps)

    options = {"crop": _size(crop), "scale": _size(scale), "max_frames": max_frames, "size": _size(size),
               "fps": _rate(fps), "pix_fmt": pix_fmt}
    summary = run(
        source, output, bpp=bpp, gaussians=gaussians, quality=quality, preset_name=preset_name, gop_size=gop_size, keyint=keyint, device=device,
        seed=seed, fit=fit, encoding=encoding, init=init, quant=quant, reader_options={k: v for k, v in options.items() if v is not None}, quiet=quiet,
        log=(lambda line: click.echo(line, err=True)) if verbose else None,
        warn=lambda line: click.echo(f"stgv: warning: {line}", err=True),
    )  # fmt: skip
    quality = f", MS-SSIM {summary.ms_ssim:.4f}" if summary.ms_ssim is not None else ""
    click.echo(
        f"{output}: {summary.frames} frames {summary.width}x{summary.height}, {summary.bytes} bytes, "
        f"{summary.bpp:.4f} bpp, PSNR {summary.psnr:.2f} dB{quality}, {summary.seconds:.1f} s on {summary.device}"
    )


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output")
@click.option("--device", default=None, help="torch device (default: cuda when present, else cpu).")
@click.option("--frames", "frame_range", help="Decode only frames A-B (0-based, inclusive).")
@click.option("--crf", default=18, show_default=True, type=click.IntRange(0, 51), help="x264 quality of .mp4 output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
def decode(source, output, device, frame_range, crf, quiet):
    """Decode SOURCE (.stgv) into OUTPUT: .mp4, .mkv (lossless ffv1), .y4m, - (y4m on stdout) or a directory/ of PNGs.

    Frames are written as they are rendered, a few at a time, so memory does not grow with the
    video or GoP length; Ctrl-C or SIGTERM stop at any point and remove the partial output.
    """
    from tqdm import tqdm

    from .decode import decode as run

    with tqdm(desc="decode", unit="frame", disable=quiet, leave=False, delay=1.0, mininterval=1.0) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = run(source, output, device=device, frames=_frame_range(frame_range), crf=crf, progress=progress)
    if not quiet:
        click.echo(
            f"{output}: {summary.frames} frames {summary.width}x{summary.height} in {summary.seconds:.1f} s on {summary.device}",
            err=output == "-",
        )


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(source, as_json):
    """Show what a .stgv file holds, without decoding it."""
    import json

    from .info import describe, format_text

    report = describe(source)
    click.echo(json.dumps(report, indent=2) if as_json else format_text(report))
