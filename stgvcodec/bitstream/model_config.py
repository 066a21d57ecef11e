"""The header's configuration blob: the ModelConfig a decoder rebuilds each GoP's field from."""

from __future__ import annotations

import math
import struct

from ..config import ModelConfig
from .errors import BitstreamError

ENCODINGS = ("hash", "plane", "positional")
"""Encoding ids 0, 1, 2 in the blob."""

_FORMAT = "<BBBBBHfBBHHBH"
"""encoding, levels, spatial_features, temporal_features, log2_table_size, base_resolution,
per_level_scale, time_frequencies, position_frequencies, plane_resolution,
plane_time_resolution, plane_features, width."""

_LIMITS = {
    "levels": (1, 16),
    "spatial_features": (1, 8),
    "temporal_features": (1, 8),
    "log2_table_size": (4, 22),
    "base_resolution": (1, 1024),
    "time_frequencies": (0, 16),
    "position_frequencies": (0, 16),
    "plane_resolution": (2, 1024),
    "plane_time_resolution": (2, 1024),
    "plane_features": (1, 32),
    "width": (1, 1024),
}
"""Inclusive ranges a decoder accepts (they bound every allocation the blob can cause)."""


CONFIG_BYTES = struct.calcsize(_FORMAT)
"""Length of the blob (20)."""


def pack_model_config(config: ModelConfig) -> bytes:
    """ModelConfig -> blob bytes (struct _FORMAT, little-endian)."""
    return struct.pack(
        _FORMAT,
        ENCODINGS.index(config.encoding),
        config.levels,
        config.spatial_features,
        config.temporal_features,
        config.log2_table_size,
        config.base_resolution,
        config.per_level_scale,
        config.time_frequencies,
        config.position_frequencies,
        config.plane_resolution,
        config.plane_time_resolution,
        config.plane_features,
        config.width,
    )


def unpack_model_config(blob: bytes | memoryview) -> ModelConfig:
    """Blob bytes -> ModelConfig, validated.

    Raises:
        BitstreamError: wrong length, unknown encoding, or a field outside its range.
    """
    size = CONFIG_BYTES
    if len(blob) != size:
        raise BitstreamError(f"header: model configuration is {len(blob)} bytes, expected {size}")
    fields = struct.unpack(_FORMAT, blob)
    if fields[0] >= len(ENCODINGS):
        raise BitstreamError(f"header: unknown encoding id {fields[0]}")
    config = ModelConfig(
        ENCODINGS[fields[0]], *fields[1:6], float(fields[6]), *fields[7:]
    )
    for name, (low, high) in _LIMITS.items():
        value = getattr(config, name)
        if not low <= value <= high:
            raise BitstreamError(f"header: model configuration {name} = {value} outside [{low}, {high}]")
    if not (math.isfinite(config.per_level_scale) and 1.0 <= config.per_level_scale <= 4.0):
        raise BitstreamError(f"header: per_level_scale {config.per_level_scale} outside [1, 4]")
    return config
