"""`stgv info`: what a .stgv file holds, read from its header, index and stream framing (no decoding)."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from .bitstream import StgvReader
from .bitstream.gop import STREAM_KINDS, gaussian_count, keep_counts, stream_sizes
from .bitstream.model_config import unpack_model_config
from .config import ModelConfig
from .memory import render_memory


def describe(path: str | os.PathLike) -> dict:
    """Header fields, per-GoP sizes, kinds (key or predicted) and bits per stream kind of a .stgv file.

    Raises:
        BitstreamError: for a malformed file.
    """
    size = Path(path).stat().st_size
    with StgvReader(path) as reader:
        header = reader.header
        config = unpack_model_config(header.config)
        gops = []
        totals = dict.fromkeys(STREAM_KINDS, 0)
        for index, entry in enumerate(reader.gops):
            payload = reader.read_chunk(index)
            streams = stream_sizes(payload, entry.predicted, header.version)
            for kind in STREAM_KINDS:
                totals[kind] += streams[kind]
            gop = {"gop": index, "kind": "predicted" if entry.predicted else "key",
                   "first_frame": entry.first_frame, "frames": entry.frame_count,
                   "gaussians": gaussian_count(payload, header.version), "bytes": entry.length, "streams": streams}  # fmt: skip
            if entry.predicted:  # PARAMS counts the new Gaussians; the kept ones come from the reference
                reference, kept, copied = keep_counts(payload, header.version)
                gop.update(new=gop["gaussians"], gaussians=gop["gaussians"] + kept, reference=reference, kept=kept, copied=copied)
            gops.append(gop)
    pixels = header.width * header.height * header.frame_count
    payload = sum(totals.values())
    bits = {kind: 8 * value for kind, value in totals.items()}
    bits["container"] = 8 * (size - payload)  # header, index, chunk lengths and CRCs
    return {
        "path": str(path),
        "version": header.version,
        "bytes": size,
        "bpp": size * 8 / pixels,
        "width": header.width,
        "height": header.height,
        "fps": f"{header.fps_num}/{header.fps_den}",
        "frames": header.frame_count,
        "duration_seconds": float(header.frame_count / header.fps),
        "gop_size": header.gop_size,
        "key_gops": sum(gop["kind"] == "key" for gop in gops),
        "decode_memory_bytes": max(
            (render_memory(header.height, header.width, gop["gaussians"], config) for gop in gops), default=0
        ),
        "gops": gops,
        "model": asdict(config),
        "bits": bits,
        "bpp_by_stream": {kind: value / pixels for kind, value in bits.items()},
    }


_TABLES = {"hash": "hash", "plane": "planes", "positional": "tables"}
"""Text label of the "hash" stream kind by encoding: hash tables, feature planes, or (positional)
an empty stream, since that encoding has no tables."""


def format_text(report: dict) -> str:
    """The report of describe() as aligned text: the model line lists the fields its encoding
    reads (the JSON report has them all)."""
    lines = [
        f"{report['path']}: .stgv version {report['version']}, {report['bytes']} bytes, {report['bpp']:.4f} bpp",
        f"  video   {report['width']}x{report['height']}, {report['frames']} frames at {report['fps']} fps "
        f"({_duration(report['duration_seconds'])}), GoPs of {report['gop_size']} "
        f"({len(report['gops'])} GoPs, {report['key_gops']} key)",
        f"  decode  about {report['decode_memory_bytes'] / 1e6:.0f} MB of working memory for rendering",
        "  model   " + ", ".join(f"{k}={v}" for k, v in ModelConfig(**report["model"]).used_fields().items()),
        "  bits per stream:",
    ]
    total = sum(report["bits"].values())
    labels = {"hash": _TABLES[report["model"]["encoding"]]}
    for kind, bits in report["bits"].items():
        label = labels.get(kind, kind)
        lines.append(f"    {label:<10} {bits:>12} bits  {report['bpp_by_stream'][kind]:.5f} bpp  {100 * bits / total:5.1f}%")
    lines.append("  GoPs:")
    for gop in report["gops"]:
        parts = " ".join(f"{labels.get(k, k)}={v}" for k, v in gop["streams"].items())
        lines.append(
            f"    {gop['gop']:>4}  {_KIND_LABELS[gop['kind']]}  "
            f"frames {gop['first_frame']}-{gop['first_frame'] + gop['frames'] - 1}  "
            f"{gop['gaussians']:>7} Gaussians  {gop['bytes']:>8} bytes  {parts}{_kept(gop)}"
        )
    return "\n".join(lines)


_KIND_LABELS = {"key": "key ", "predicted": "pred"}
"""Text column of a GoP's kind: a key GoP decodes on its own, a predicted one after GoP k-1."""


def _kept(gop: dict) -> str:
    """What a predicted GoP kept of its reference, for the text."""
    if gop["kind"] != "predicted":
        return ""
    return f"  (of {gop['reference']}: {gop['copied']} copied, {gop['kept'] - gop['copied']} updated; {gop['new']} new)"


def _duration(seconds: float) -> str:
    """h:mm:ss.s for a duration in seconds."""
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}"
