"""Settings as frozen dataclasses: the model (stored in the stream), the fit and its presets.

Everything a decoder needs to rebuild a GoP model lives in ModelConfig; FitConfig holds what only
the encoder uses. Presets name step counts and a Gaussian density (Gaussians per pixel), so the
number of Gaussians scales with resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Encoding = Literal["hash", "plane", "positional"]
Init = Literal["keyframe", "multiframe"]
Layout = Literal["grid", "gradients"]


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a GoP model's deformation field (the decoder needs every field)."""

    encoding: Encoding = "hash"
    """Feature encoding: "hash" (STGV: 2D spatial + 3D spatio-temporal hash grids), "plane"
    (xy, xt, yt feature planes of the multi-plane predecessor) or "positional" (D2GV:
    frequency encoding of position and time)."""
    levels: int = 8
    """Hash grid levels (both grids)."""
    spatial_features: int = 2
    """Features per level of the 2D spatial hash grid."""
    temporal_features: int = 4
    """Features per level of the 3D spatio-temporal hash grid."""
    log2_table_size: int = 10
    """log2 of the hash table size T per level."""
    base_resolution: int = 16
    """Coarsest grid resolution N_min."""
    per_level_scale: float = 1.5
    """Resolution growth b between levels."""
    time_frequencies: int = 6
    """Frequencies of gamma(t) (13 values for 6)."""
    position_frequencies: int = 10
    """Frequencies of the position encoding of the "positional" variant."""
    plane_resolution: int = 64
    """Spatial resolution of the "plane" variant's feature planes."""
    plane_time_resolution: int = 10
    """Temporal resolution of the xt and yt planes of the "plane" variant."""
    plane_features: int = 8
    """Features per plane of the "plane" variant."""
    width: int = 128
    """Hidden width of the two-layer MLP."""


@dataclass(frozen=True)
class FitConfig:
    """How one GoP is fitted (encoder only)."""

    init_steps: int = 10_000
    """Stage 1 steps: canonical Gaussians alone."""
    deform_steps: int = 60_000
    """Stage 2 steps: Gaussians, encodings and MLP jointly."""
    density: float = 20_000 / (1280 * 640)
    """Gaussians per pixel (the paper's 20K at 1280x640), used when `gaussians` is None."""
    gaussians: int | None = None
    """Fixed number of Gaussians; overrides `density`."""
    init: Init = "keyframe"
    """Stage 1 target: the key frame alone (KFCI) or all frames of the GoP."""
    layout: Layout = "grid"
    """Where a fresh initialisation puts the Gaussians: a jittered "grid" of equal ones
    (Gaussians.from_image), or drawn 70% by the key frame's "gradients" and 30% uniformly, sized by
    the local density (Gaussians.from_gradients). Warm starts keep the given Gaussians' places."""
    lr_gaussians: float = 7e-3
    """Adam learning rate of the Gaussians in stage 1, and at the start of stage 2."""
    lr_gaussians_final: float = 7e-4
    """Learning rate of the Gaussians at the end of stage 2, reached by exponential decay. At a
    constant 7e-3 the fit wanders by 0.1-0.4 dB between checkpoints and plateaus; decaying to 7e-4
    let it settle (Bunny 320x160, 1K + 10K steps: +0.5 dB on GoP 1, +0.8 dB on GoP 2)."""
    lr_network: float = 1.6e-4
    """Initial learning rate of encodings and MLP; decays exponentially to `lr_network_final`."""
    lr_network_final: float = 1.6e-5
    """Final learning rate of encodings and MLP."""
    warm_init_steps: int = 100
    """Stage 1 steps when the fit starts from given Gaussians (a warm start from the previous GoP):
    they are already fitted to a nearby frame and only need to follow the new key frame."""
    warm_deform_steps: int | None = None
    """Stage 2 steps after a warm start; None: `deform_steps`."""
    frames_per_step: int = 1
    """Frames rendered per stage 2 step; frames are drawn from shuffled epochs so all are seen equally."""
    seed: int = 0
    """Seed of initialisation and frame order."""

    def count(self, height: int, width: int) -> int:
        """Gaussians for a frame of this size."""
        return self.gaussians if self.gaussians is not None else max(1, round(self.density * height * width))


PRESETS: dict[str, FitConfig] = {
    "paper": FitConfig(),
    "medium": FitConfig(init_steps=3_000, deform_steps=20_000),
    "fast": FitConfig(init_steps=1_000, deform_steps=10_000),
}
"""Named fits, all with the paper's learning rates and density. `paper` is the paper's schedule;
`fast` takes about two minutes per 10-frame GoP at 320x160 on two CPU cores. On Bunny GoP 1 at
320x160 with 1K + 8K steps, network learning rates of 1.6e-4, 1e-3 and 5e-3 gave 28.40, 28.39
and 28.06 dB, so the shorter presets keep the paper's."""


def preset(name: str, **overrides) -> FitConfig:
    """The named preset with some fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
