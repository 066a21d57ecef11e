"""Memory the decoder's rendering takes: batch sizes and estimates (no torch, so `stgv info` can
say what a decode will need without loading it).

    per GoP: render_batch(H, W, N) frames at a time, each PIXEL_BYTES * H * W + POINT_BYTES * N,
             plus the deformation field over at most POINT_CHUNK (Gaussian, frame) pairs at once
    -> render_memory(H, W, N, network): bounded by the frame size, the Gaussian count and the
       network, whatever the GoP's or the video's length
"""

from __future__ import annotations

from .config import ModelConfig

RENDER_BATCH = 10
"""Most frames rendered together."""
RENDER_BYTES = 1 << 30
"""Working memory a render of a batch of frames may take; batches shrink below RENDER_BATCH when
frames are large. Batch sizes depend only on the frame size, the Gaussian count and the network,
never on the machine, so the encoder and every decoder compute with identical shapes."""
POINT_CHUNK = 1 << 17
"""Most (Gaussian, frame) pairs the deformation field evaluates at once."""
PIXEL_BYTES = 64
"""Working bytes per rendered pixel: the float32 image, its clamped copy, the rounding to 8 bits."""
POINT_BYTES = 64
"""Bytes per (Gaussian, frame) pair kept for the renderer: deformed parameters and projections."""


def network_bytes_per_point(config: ModelConfig) -> int:
    """Working bytes of the deformation field per (Gaussian, frame) pair while it is evaluated:
    inputs, encodings with their corner indices and weights, two hidden layers, heads (float32),
    and the float64 copies of the layers' inputs and outputs (the decoder's exact MLP)."""
    features = 2 * config.levels * (config.spatial_features + config.temporal_features)
    features += 8 * config.plane_features + 4 * config.position_frequencies
    corners = config.levels * (4 + 8) * (8 + 4) if config.encoding == "hash" else 8 * 12
    return 4 * (16 + features + 4 * config.width + 8) + 8 * (features + 2 * config.width + 5) + corners


def render_batch(height: int, width: int, gaussians: int) -> int:
    """Frames rendered together: RENDER_BATCH, or fewer so that a batch's pixels and deformed
    Gaussians take at most RENDER_BYTES (at least 1)."""
    per_frame = PIXEL_BYTES * height * width + POINT_BYTES * gaussians
    return max(1, min(RENDER_BATCH, RENDER_BYTES // per_frame))


def render_memory(height: int, width: int, gaussians: int, config: ModelConfig) -> int:
    """Estimated peak working memory in bytes of rendering one GoP, whatever its length: one batch
    of frames, one chunk of the deformation field, and the model's canonical Gaussians."""
    batch = render_batch(height, width, gaussians)
    per_frame = PIXEL_BYTES * height * width + POINT_BYTES * gaussians
    network = network_bytes_per_point(config) * min(POINT_CHUNK, batch * max(gaussians, 1))
    return batch * per_frame + network + 64 * gaussians


def available_memory() -> int | None:
    """Bytes of memory this process can still take (Linux MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(width: int, height: int, gaussians: int, config: ModelConfig, what: str) -> None:
    """Refuses, before allocating, a GoP whose render needs more memory than the machine has free.

    Raises:
        MemoryError: naming `what` and the sizes, in one line.
    """
    need, free = render_memory(height, width, gaussians, config), available_memory()
    if free is not None and need > free:
        raise MemoryError(
            f"{what}: rendering {width}x{height} frames with {gaussians} Gaussians needs about "
            f"{need / 1e9:.1f} GB, {free / 1e9:.1f} GB is available"
        )
