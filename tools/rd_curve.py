"""Rate-distortion curves of stgv against x264, x265 and SVT-AV1 on the same frames, with BD-rates.

    python tools/rd_curve.py clip.mp4 --out rd/ --bpp 0.02,0.05,0.1 --crf 23,28,33,38 --crop 1280x640

    INPUT ─ read_frames(crop, scale, frames) ─> source [T, H, W, 3] uint8 ───────────────┐
      ├─ stgv encode --bpp X ─ .stgv ─ stgv decode ─ .mkv (bit-exact RGB) ─> decoded ─┬─ metrics ─ rd.csv
      └─ source.npy ─ _anchor.py, one process per CRF ─ .mp4 ─────────────> decoded ─┘   rd.json (+ BD)
                                                                                          rd.png

Points:
  - stgv, one per --bpp target: the real CLI in a subprocess (`stgv encode SRC OUT --bpp X --preset P`
    with --crop/--scale/--frames/--steps/--device passed on, then `stgv decode OUT out.mkv -q` and
    `stgv info OUT --json` for the bits per stream). Encode and decode seconds are the wall clock of
    those processes, so they include start-up (Python, torch import, about 2 s on a CPU) and file I/O.
  - libx264, libx265, libsvtav1, one per --crf value: PyAV on exactly the source frames, BT.709
    limited-range yuv420p, in .mp4. yuv420p needs even sizes, so odd widths/heights are padded to even
    by replicating the last column/row before encoding and cropped back after decoding (the padding's
    bits count). --anchor-preset takes an x264/x265 preset name, mapped for SVT-AV1 to a number
    (ultrafast 13, superfast 12, veryfast 11, faster 10, fast 9, medium 8, slow 6, slower 4,
    veryslow 2, placebo 0); a number 0-13 is taken as SVT-AV1's own preset and needs --codecs
    without x264/x265. Seconds are the PyAV encode and decode calls alone. In this FFmpeg build,
    x265 crashes on some pictures smaller than 64x64; such a point fails with the encoder's message.

Every point gets: bpp = real file bytes (container included) * 8 / (frames * W * H); PSNR per frame
on 8-bit RGB averaged over frames (stgvcodec.metrics.psnr); Y-PSNR the same on BT.709 luma
Y = 0.2126 R + 0.7152 G + 0.0722 B of the 8-bit values (peak 255); MS-SSIM (pytorch-msssim,
data_range 1.0) where both sides exceed 160 px, else empty; encode/decode seconds and frames per
second. BD-rate and BD-PSNR of stgv against each anchor use RGB PSNR (bjontegaard.py); they are
empty, with a reason, where the curves do not overlap.

--baseline OLD.csv takes the stgv points of an earlier run's rd.csv (for example docs/rd_carphone.csv)
as a curve named "stgv-baseline": it is plotted, listed in rd.json under "baseline", and the BD table
adds stgv against it (BD-rate < 0: the new codec needs fewer bits than the old at equal PSNR). Its
rows must describe the same frames (frame count, width, height); they are not re-measured.

Outputs in --out: rd.csv and rd.json (one record per point, same fields; the JSON adds the input,
the settings and the BD table), rd.png (PSNR and MS-SSIM against bpp). A table goes to stderr and
a JSON summary to stdout. Finished points are kept in --out/cache/ (a JSON record and the coded
file, named by a hash of the input file's path, size and mtime, crop, scale, frames, codec and its
settings, and the stgvcodec or FFmpeg version); re-runs reuse them unless --no-cache.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import hashlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from _anchor import CRF_RANGE, SVT_AV1_PRESETS, X26X_PRESETS, encoder_options
from _report import emit
from bjontegaard import bd_psnr, bd_rate

import stgvcodec
from stgvcodec.bitstream.records import FORMAT_VERSION
from stgvcodec.io import VideoError, VideoReader, parse_size, read_frames
from stgvcodec.io.atomic import staged_file, write_atomic
from stgvcodec.io.outputs import same_file
from stgvcodec.metrics import ms_ssim, ms_ssim_skip_reason, psnr

STGV = "stgv"
BASELINE = "stgv-baseline"
ANCHORS = ("libx264", "libx265", "libsvtav1")
OUTPUT_NAMES = ("rd.json", "rd.csv", "rd.png")
"""What --out receives besides cache/."""
ANCHOR_WORKER = Path(__file__).with_name("_anchor.py")
CACHE_VERSION = 1
"""Bumped when a cached record's meaning changes, so old records are not reused."""
FIELDS = (
    "codec",
    "setting",
    "target_bpp",
    "crf",
    "preset",
    "steps",
    "device",
    "frames",
    "width",
    "height",
    "coded_width",
    "coded_height",
    "bytes",
    "bpp",
    "psnr",
    "y_psnr",
    "ms_ssim",
    "encode_seconds",
    "decode_seconds",
    "encode_fps",
    "decode_fps",
    "file",
    "cached",
)
"""Columns of rd.csv and keys of each point in rd.json; then bits_<kind> for each stream kind that
`stgv info --json` reports for the stgv points (positions, shape, colour, ..., container), empty
for the anchors."""
LUMA_709 = np.array([0.2126, 0.7152, 0.0722])
MS_SSIM_CHUNK = 16
"""Frames per MS-SSIM call: bounds the float64 copies pytorch-msssim works on."""


class ToolError(Exception):
    """A failure to report as one line (exit status 1)."""


@dataclass(frozen=True)
class Source:
    """The frames every codec codes, and what identifies them for the cache."""

    path: Path
    frames: np.ndarray
    """[T, H, W, 3] uint8 RGB after crop, scale and --frames."""
    fps: Fraction
    identity: dict
    """Absolute path, size and mtime of the input file."""

    @property
    def count(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]


@dataclass(frozen=True)
class Point:
    """One codec at one setting."""

    codec: str
    value: float | int
    """Target bpp for stgv, CRF for the anchors."""

    @property
    def setting(self) -> str:
        return f"bpp {self.value:g}" if self.codec == STGV else f"crf {self.value}"

    @property
    def label(self) -> str:
        return f"{self.codec} {self.setting}"


def main(argv: list[str] | None = None) -> int:
    """Runs the tool; returns the exit status (argparse exits by itself on bad options)."""
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    try:
        source = _load_source(args)
    except VideoError as err:
        parser.error(str(err))
    try:
        run(args, source)
    except ToolError as err:
        print(f"rd_curve: error: {err}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace, source: Source) -> None:
    """Measures every point (or takes it from the cache), then writes rd.csv, rd.json and rd.png."""
    out = Path(args.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    points = [Point(codec, value) for codec in args.codecs for value in (args.bpp if codec == STGV else args.crf)]
    records = []
    with tempfile.TemporaryDirectory(prefix=".scratch-", dir=out) as scratch:
        for index, point in enumerate(points, 1):
            record = _point_record(point, source, args, cache, Path(scratch))
            records.append(record)
            seconds = (record["encode_seconds"] or 0) + (record["decode_seconds"] or 0)
            print(
                f"[{index}/{len(points)}] {point.label}: {record['bpp']:.4f} bpp, {_num(record['psnr'], '.2f')} dB, "
                f"{seconds:.1f} s{' (cached)' if record['cached'] else ''}",
                file=sys.stderr,
            )
    columns = (*FIELDS, *_bits_fields(records))
    records = [{name: record.get(name) for name in columns} for record in records]  # the same keys in all
    baseline = read_baseline(Path(args.baseline), source) if args.baseline else []
    bd = bd_table(records + baseline)
    report = {
        "input": {
            "path": str(source.path),
            "frames": source.count,
            "width": source.width,
            "height": source.height,
            "fps": str(source.fps),
            "crop": args.crop_text,
            "scale": args.scale_text,
        },
        "settings": {
            "codecs": args.codecs,
            "bpp": args.bpp,
            "crf": args.crf,
            "preset": args.preset,
            "steps": args.steps,
            "device": args.device,
            "anchor_preset": args.anchor_preset,
        },
        "software": {
            "stgvcodec": stgvcodec.__version__,
            "av": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        },
        "ms_ssim": ms_ssim_skip_reason(source.height, source.width) or "defined",
        "points": records,
        "baseline": {"path": args.baseline, "points": baseline} if args.baseline else None,
        "bd": bd,
    }
    paths = {kind: out / name for kind, name in zip(("json", "csv", "png"), OUTPUT_NAMES)}
    write_atomic(paths["json"], (json.dumps(report, indent=2) + "\n").encode())
    write_atomic(paths["csv"], _csv_text(records).encode())
    plot(records + baseline, source, paths["png"], log_x=args.log_x)
    print(format_table(records, bd), file=sys.stderr)
    summary = {name: str(path) for name, path in paths.items()}
    summary.update(points=len(records), cached=sum(r["cached"] for r in records), bd=bd)
    emit(summary, None)


# ----------------------------------------------------------------------------------------------
# Options and input


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rd_curve.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", help="any video PyAV opens (or a directory of PNGs)")
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument(
        "--bpp", type=_list(float, "bpp"), default="0.02,0.05,0.1", help="stgv targets (default %(default)s)"
    )
    parser.add_argument(
        "--crf", type=_list(int, "crf"), default="23,28,33,38", help="anchor CRFs (default %(default)s)"
    )
    parser.add_argument(
        "--codecs",
        type=_list(str, "codec"),
        default=",".join((STGV, *ANCHORS)),
        help="any of stgv,libx264,libx265,libsvtav1 (default: all)",
    )
    parser.add_argument("--crop", dest="crop_text", metavar="WxH", help="centre crop before scaling")
    parser.add_argument("--scale", dest="scale_text", metavar="WxH", help="resize after cropping")
    parser.add_argument("--frames", type=int, help="only the first N frames")
    parser.add_argument("--preset", default="fast", choices=("fast", "medium", "paper"), help="stgv training preset")
    parser.add_argument(
        "--anchor-preset",
        default="medium",
        help="x264/x265 preset name, or an SVT-AV1 number 0-13 (default %(default)s)",
    )
    parser.add_argument("--device", help="torch device for stgv (default: its own choice)")
    parser.add_argument("--steps", metavar="INIT,DEFORM,QAT", help="stgv step counts instead of the preset's")
    parser.add_argument("--log-x", action="store_true", help="logarithmic bpp axis in rd.png")
    parser.add_argument(
        "--baseline", metavar="OLD.csv", help="an earlier rd.csv: its stgv points as a curve, and BD of stgv against it"
    )
    parser.add_argument("--no-cache", action="store_true", help="recompute every point")
    return parser


def _list(kind: type, name: str):
    """An argparse type: comma-separated values of `kind`, duplicates dropped, order kept."""

    def parse(text: str) -> list:
        try:
            values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {kind.__name__} {name} values")
        if not values:
            raise argparse.ArgumentTypeError(f"no {name} values in {text!r}")
        return list(dict.fromkeys(values))

    return parse


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Validates the options together; parser.error() (one line, exit 2) on the first problem."""
    unknown = [c for c in args.codecs if c not in (STGV, *ANCHORS)]
    if unknown:
        parser.error(f"unknown codec {unknown[0]!r}; choose from {', '.join((STGV, *ANCHORS))}")
    for flag, text in (("--crop", args.crop_text), ("--scale", args.scale_text)):
        try:
            setattr(args, flag[2:], parse_size(text) if text else None)
        except ValueError as err:
            parser.error(f"{flag}: {err}")
    for name in OUTPUT_NAMES:
        if same_file(Path(args.out) / name, args.input):
            parser.error(f"--out {args.out}: its {name} would overwrite the input {args.input}")
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames {args.frames}: must be at least 1")
    if any(v <= 0 or not math.isfinite(v) for v in args.bpp):
        parser.error("--bpp: targets must be positive")
    if args.steps is not None:
        parts = args.steps.split(",")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            parser.error(f"--steps {args.steps!r} is not INIT,DEFORM,QAT (three whole numbers)")
    anchors = [c for c in args.codecs if c in ANCHORS]
    for codec in anchors:
        try:
            av.codec.Codec(codec, "w")
        except av.error.FFmpegError:
            parser.error(f"this FFmpeg build (PyAV {av.__version__}) has no {codec} encoder")
        low, high = CRF_RANGE[codec]
        bad = [v for v in args.crf if not low <= v <= high]
        if bad:
            parser.error(f"--crf {bad[0]} is outside {low}..{high}, the range of {codec}")
    preset = args.anchor_preset
    if preset.isdigit():
        if int(preset) > max(SVT_AV1_PRESETS.values()):
            parser.error(f"--anchor-preset {preset}: SVT-AV1 presets are 0..{max(SVT_AV1_PRESETS.values())}")
        if set(anchors) - {"libsvtav1"}:
            parser.error(
                f"--anchor-preset {preset} is an SVT-AV1 number; x264/x265 need a name ({', '.join(X26X_PRESETS)})"
            )
    elif preset not in X26X_PRESETS:
        parser.error(f"--anchor-preset {preset!r}: use one of {', '.join(X26X_PRESETS)} or an SVT-AV1 number")
    if args.baseline is not None:
        if not os.path.isfile(args.baseline):
            parser.error(f"--baseline {args.baseline}: no such file")
        if any(same_file(Path(args.out) / name, args.baseline) for name in OUTPUT_NAMES):
            parser.error(f"--baseline {args.baseline} is among the outputs of --out {args.out}; copy it elsewhere first")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        parser.error("rd.png needs matplotlib: pip install 'stgvcodec[rd]'")


def _load_source(args: argparse.Namespace) -> Source:
    """Reads the frames every codec codes.

    Raises:
        VideoError: for a missing or unreadable input, a crop that does not fit, or no frames.
    """
    path = Path(args.input)
    options = {"crop": args.crop, "scale": args.scale, "max_frames": args.frames}
    with VideoReader(path, **{k: v for k, v in options.items() if v is not None}) as reader:
        fps = reader.info.fps
        frames = list(reader)
    if not frames:
        raise VideoError(f"{path}: has no frames")
    stat = path.stat()
    identity = {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return Source(path, np.stack(frames), fps, identity)


# ----------------------------------------------------------------------------------------------
# Points


def _point_record(point: Point, source: Source, args: argparse.Namespace, cache: Path, scratch: Path) -> dict:
    """The point's record from the cache, or measured now and then cached."""
    key = _cache_key(point, source, args)
    stem = f"{point.codec}-{point.setting.replace(' ', '')}-{key}"
    cached = cache / f"{stem}.json"
    if not args.no_cache and cached.is_file():
        try:
            return {**json.loads(cached.read_text()), "cached": True}
        except (OSError, ValueError):
            pass  # A damaged record is measured again and overwritten.
    if point.codec == STGV:
        record = _stgv_point(point, source, args, cache / f"{stem}.stgv", scratch)
    else:
        record = _anchor_point(point, source, args, cache / f"{stem}.mp4", scratch)
    record = {name: _finite(record.get(name)) for name in (*FIELDS, *_bits_fields([record]))}
    write_atomic(cached, (json.dumps(record, indent=2) + "\n").encode())
    return record


def _cache_key(point: Point, source: Source, args: argparse.Namespace) -> str:
    """Hash of everything the point's numbers depend on."""
    material = {
        "cache_version": CACHE_VERSION,
        "input": source.identity,
        "crop": args.crop,
        "scale": args.scale,
        "frames": args.frames,
        "codec": point.codec,
        "value": point.value,
    }
    if point.codec == STGV:
        material.update(
            preset=args.preset, steps=args.steps, device=args.device, stgvcodec=stgvcodec.__version__, format=FORMAT_VERSION
        )
    else:
        material.update(
            options=encoder_options(point.codec, point.value, args.anchor_preset),
            libavcodec=av.library_versions["libavcodec"],
            av=av.__version__,
        )
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]


def _stgv_point(point: Point, source: Source, args: argparse.Namespace, coded: Path, scratch: Path) -> dict:
    """Encodes, decodes and inspects one --bpp target with the stgv command line."""
    stgv = _stgv_command()
    progress = sys.stderr.isatty()
    encode = [*stgv, "encode", str(source.path), str(coded), "--bpp", repr(point.value), "--preset", args.preset]
    for flag, value in (
        ("--crop", args.crop_text),
        ("--scale", args.scale_text),
        ("--frames", args.frames),
        ("--steps", args.steps),
        ("--device", args.device),
    ):
        if value is not None:
            encode += [flag, str(value)]
    decoded_path = scratch / f"{coded.stem}.mkv"
    decode = [*stgv, "decode", str(coded), str(decoded_path), "-q"]
    if args.device is not None:
        decode += ["--device", args.device]
    encode_seconds = _run_stgv(encode if progress else [*encode, "-q"], point.label, progress)
    decode_seconds = _run_stgv(decode, point.label, False)
    info = subprocess.run([*stgv, "info", str(coded), "--json"], capture_output=True, text=True, check=False)
    if info.returncode:
        raise ToolError(f"{point.label}: stgv info failed: {_last_line(info.stderr)}")
    bits = json.loads(info.stdout)["bits"]
    decoded = np.stack(list(read_frames(decoded_path)))
    decoded_path.unlink()
    return {
        "codec": STGV,
        "setting": point.setting,
        "target_bpp": point.value,
        "preset": args.preset,
        "steps": args.steps,
        "device": args.device,
        "coded_width": source.width,
        "coded_height": source.height,
        **_measure(decoded, source, coded, encode_seconds, decode_seconds),
        **{f"bits_{kind}": value for kind, value in bits.items()},
    }


def _stgv_command() -> list[str]:
    """The `stgv` console script beside this Python, else `python -m stgvcodec`."""
    script = Path(sys.executable).parent / "stgv"
    return [str(script)] if script.exists() else [sys.executable, "-m", "stgvcodec"]


def _run_stgv(command: list[str], label: str, show: bool) -> float:
    """Runs an stgv command; its stderr goes on to ours when `show` (progress bars). Returns seconds.

    Raises:
        ToolError: with the command's last stderr line when it fails.
    """
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = ""
    try:
        while chunk := process.stderr.read1(65536):
            text = decoder.decode(chunk)
            if show:
                sys.stderr.write(text)
                sys.stderr.flush()
            tail = (tail + text)[-8192:]
        status = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    seconds = time.perf_counter() - start
    if status:
        raise ToolError(f"{label}: stgv {command[len(_stgv_command())]} failed ({_status(status)}): {_last_line(tail)}")
    return seconds


def _anchor_point(point: Point, source: Source, args: argparse.Namespace, coded: Path, scratch: Path) -> dict:
    """Codes the source frames with one anchor encoder in a process of its own (_anchor.py)."""
    frames_file = scratch / "source.npy"
    if not frames_file.exists():
        np.save(frames_file, source.frames)
    decoded_file = scratch / f"{coded.stem}.npy"
    spec = {
        "source": str(frames_file),
        "decoded": str(decoded_file),
        "output": str(coded),
        "codec": point.codec,
        "crf": point.value,
        "preset": args.anchor_preset,
        "fps": str(source.fps),
    }
    # SVT_LOG=1: SVT-AV1 prints errors only (it ignores FFmpeg's log level).
    command = [sys.executable, str(ANCHOR_WORKER), json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "SVT_LOG": "1"})
    if result.returncode:
        hint = ""
        if point.codec == "libx265" and result.returncode < 0 and min(source.width, source.height) < 64:
            hint = f" (x265 crashes on some pictures under 64x64; this one is {source.width}x{source.height})"
        raise ToolError(
            f"{point.label}: encoder process failed ({_status(result.returncode)}): {_last_line(result.stderr)}{hint}"
        )
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    decoded = np.load(decoded_file)
    decoded_file.unlink()
    return {
        "codec": point.codec,
        "setting": point.setting,
        "crf": point.value,
        "preset": encoder_options(point.codec, point.value, args.anchor_preset)["preset"],
        "coded_width": timing["coded_width"],
        "coded_height": timing["coded_height"],
        **_measure(decoded, source, coded, timing["encode_seconds"], timing["decode_seconds"]),
    }


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


# ----------------------------------------------------------------------------------------------
# Metrics


def _measure(decoded: np.ndarray, source: Source, coded: Path, encode_seconds: float, decode_seconds: float) -> dict:
    """Size, quality and speed fields of a point whose coded file is `coded`."""
    if decoded.shape != source.frames.shape:
        raise ToolError(f"{coded.name}: decoded {decoded.shape}, expected {source.frames.shape}")
    size = coded.stat().st_size
    return {
        "frames": source.count,
        "width": source.width,
        "height": source.height,
        "bytes": size,
        "bpp": size * 8 / (source.count * source.width * source.height),
        "psnr": float(np.mean([psnr(d, s) for d, s in zip(decoded, source.frames)])),
        "y_psnr": y_psnr(decoded, source.frames),
        "ms_ssim": chunked_ms_ssim(decoded, source.frames),
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
        "encode_fps": source.count / encode_seconds if encode_seconds > 0 else None,
        "decode_fps": source.count / decode_seconds if decode_seconds > 0 else None,
        "file": str(Path(coded.parent.name) / coded.name),
        "cached": False,
    }


def y_psnr(decoded: np.ndarray, source: np.ndarray) -> float:
    """Mean over frames of the PSNR (peak 255) of BT.709 luma of [T, H, W, 3] uint8 RGB; inf when identical."""
    values = []
    for d, s in zip(decoded, source):
        diff = (d.astype(np.float64) - s.astype(np.float64)) @ LUMA_709  # luma is linear in RGB
        mse = float(np.mean(diff**2))
        values.append(math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse))
    return float(np.mean(values))


def chunked_ms_ssim(decoded: np.ndarray, source: np.ndarray) -> float | None:
    """stgvcodec.metrics.ms_ssim averaged over frames, MS_SSIM_CHUNK frames at a time; None when undefined."""
    total = 0.0
    for start in range(0, len(source), MS_SSIM_CHUNK):
        value = ms_ssim(decoded[start : start + MS_SSIM_CHUNK], source[start : start + MS_SSIM_CHUNK])
        if value is None:
            return None
        total += value * len(source[start : start + MS_SSIM_CHUNK])
    return total / len(source)


def bd_table(records: list[dict]) -> list[dict]:
    """BD-rate (percent) and BD-PSNR (dB, RGB PSNR) of stgv against each anchor among `records`."""

    def curve(codec: str) -> tuple[list, list]:
        rows = [r for r in records if r["codec"] == codec and r["psnr"] is not None]
        return [r["bpp"] for r in rows], [r["psnr"] for r in rows]

    if not any(r["codec"] == STGV for r in records):
        return []
    test = curve(STGV)
    table = []
    for anchor in dict.fromkeys(r["codec"] for r in records if r["codec"] != STGV):
        rate, quality = bd_rate(*curve(anchor), *test), bd_psnr(*curve(anchor), *test)
        table.append(
            {
                "test": STGV,
                "anchor": anchor,
                "bd_rate_percent": rate.value,
                "bd_rate_reason": rate.reason,
                "bd_psnr_db": quality.value,
                "bd_psnr_reason": quality.reason,
            }
        )
    return table


def read_baseline(path: Path, source: Source) -> list[dict]:
    """The stgv points of an earlier run's rd.csv, as records of codec "stgv-baseline".

    Raises:
        ToolError: for a file that is not such a CSV, holds no stgv point, or describes other frames.
    """
    try:
        with open(path, newline="") as file:
            rows = [row for row in csv.DictReader(file) if row.get("codec") == STGV]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ToolError(f"--baseline {path}: cannot read it as CSV ({err})") from None
    if not rows:
        raise ToolError(f"--baseline {path}: no stgv points (is it an rd.csv of this tool?)")
    points = []
    for number, row in enumerate(rows, 2):
        try:
            size = int(row["frames"]), int(row["width"]), int(row["height"])
            bpp, psnr = float(row["bpp"]), float(row["psnr"])
        except (KeyError, TypeError, ValueError):
            raise ToolError(f"--baseline {path}: line {number} lacks frames, width, height, bpp or psnr") from None
        if size != (source.count, source.width, source.height):
            raise ToolError(
                f"--baseline {path}: line {number} is {size[0]} frames of {size[1]}x{size[2]}, "
                f"this run {source.count} frames of {source.width}x{source.height}"
            )
        ms_ssim = float(row["ms_ssim"]) if row.get("ms_ssim") else None
        points.append({"codec": BASELINE, "setting": row.get("setting", ""), "bpp": bpp, "psnr": psnr, "ms_ssim": ms_ssim})
    return points


# ----------------------------------------------------------------------------------------------
# Outputs


def plot(records: list[dict], source: Source, path: Path, log_x: bool = False) -> None:
    """Writes a PNG with PSNR and MS-SSIM against bpp, one curve per codec."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    reason = ms_ssim_skip_reason(source.height, source.width)
    panels = ((left, "psnr", "PSNR (dB, RGB)"),) + (() if reason else ((right, "ms_ssim", "MS-SSIM"),))
    for axes, field, name in panels:
        for codec in dict.fromkeys(r["codec"] for r in records):
            rows = sorted((r for r in records if r["codec"] == codec), key=lambda r: r["bpp"])
            values = [np.nan if r[field] is None else r[field] for r in rows]
            axes.plot([r["bpp"] for r in rows], values, marker="o", label=codec)
        axes.set_xlabel("bits per pixel")
        axes.set_ylabel(name)
        axes.grid(True, alpha=0.3)
        axes.legend()
        if log_x:
            axes.set_xscale("log")
    if reason:
        right.set_axis_off()
        right.text(
            0.5,
            0.5,
            "MS-SSIM not shown:\n" + reason.replace(", ", ",\n"),
            ha="center",
            va="center",
            transform=right.transAxes,
        )
    figure.suptitle(f"{source.path.name}: {source.width}x{source.height}, {source.count} frames")
    with staged_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def format_table(records: list[dict], bd: list[dict]) -> str:
    """Points and BD deltas as aligned text."""
    header = "codec      setting         bpp   PSNR Y-PSNR MS-SSIM   enc s   dec s  dec fps"
    lines = [header]
    for r in records:
        lines.append(
            f"{r['codec']:<10} {r['setting']:<10} {r['bpp']:>8.4f} {_num(r['psnr'], '6.2f')} "
            f"{_num(r['y_psnr'], '6.2f')} {_num(r['ms_ssim'], '7.4f')} {_num(r['encode_seconds'], '7.2f')} "
            f"{_num(r['decode_seconds'], '7.2f')} {_num(r['decode_fps'], '8.1f')}"
        )
    if bd:
        lines.append("Bjontegaard deltas of stgv (RGB PSNR; BD-rate < 0 and BD-PSNR > 0 mean stgv is better):")
    for row in bd:
        rate = f"{row['bd_rate_percent']:+.2f} %" if row["bd_rate_reason"] is None else f"n/a ({row['bd_rate_reason']})"
        quality = f"{row['bd_psnr_db']:+.3f} dB" if row["bd_psnr_reason"] is None else f"n/a ({row['bd_psnr_reason']})"
        lines.append(f"  vs {row['anchor']:<10} BD-rate {rate}, BD-PSNR {quality}")
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    width = int(spec.split(".")[0] or 0)
    return format(value, spec) if value is not None else "-".rjust(width)


def _finite(value):
    """JSON and CSV hold no inf or nan: those become None (empty)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _bits_fields(records: list[dict]) -> list[str]:
    """The bits_<kind> keys among `records`, in the order they first appear."""
    return list(dict.fromkeys(k for r in records for k in r if k.startswith("bits_")))


def _csv_text(records: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in records)
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
