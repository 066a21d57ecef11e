"""The `stgv` command line: a thin click layer over the package."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from . import __version__


class _Group(click.Group):
    """Turns any error into one line on stderr and exit status 1, unless --debug is given."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("stgv: interrupted", err=True)
            sys.exit(130)
        except Exception as err:
            if ctx.meta.get("stgv.debug"):
                raise
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            click.echo(f"stgv: error: {message}", err=True)
            sys.exit(1)


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

    from .io import read_frames, write_png
    from .metrics import to_uint8
    from .train import ImageFitConfig, fit_image

    frames = list(read_frames(source, max_frames=frame + 1))
    if len(frames) <= frame:
        raise click.ClickException(f"{source}: has {len(frames)} frames, no frame {frame}")
    rgb = frames[frame]
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    image = torch.from_numpy(rgb).to(device=device, dtype=torch.float32) / 255.0
    config = ImageFitConfig(gaussians=gaussians, steps=steps, seed=seed, backend=backend)
    start = time.perf_counter()
    model, quality = fit_image(image, config, quiet=quiet)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        write_png(output, to_uint8(model.render(*rgb.shape[:2], backend)))
    height, width = rgb.shape[:2]
    click.echo(
        f"fitted {gaussians} Gaussians to frame {frame} ({width}x{height}) in {seconds:.1f} s on {device}: "
        f"PSNR {quality:.2f} dB; wrote {output}"
    )
