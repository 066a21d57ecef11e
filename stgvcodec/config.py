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

    def used_fields(self) -> dict[str, object]:
        """The fields this configuration's encoding reads, by name: the encoding, its own sizes
        (ENCODING_FIELDS), then time_frequencies and width. The header stores every field; the
        others do not change the network."""
        names = ("encoding", *ENCODING_FIELDS[self.encoding], "time_frequencies", "width")
        return {name: getattr(self, name) for name in names}


ENCODING_FIELDS: dict[str, tuple[str, ...]] = {
    "hash": ("levels", "spatial_features", "temporal_features", "log2_table_size", "base_resolution", "per_level_scale"),
    "plane": ("plane_resolution", "plane_time_resolution", "plane_features"),
    "positional": ("position_frequencies",),
}
"""ModelConfig fields each encoding reads besides time_frequencies and width."""


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
    cold_gaussians: int | None = None
    """Gaussians when a fit given a warm start starts afresh instead (a cut, train/warm.py); None:
    the same count. The encoder sets it for a GoP planned as predicted: one that starts afresh
    becomes a key GoP and gets a key GoP's count from rate control."""
    init: Init = "keyframe"
    """Stage 1 target: the key frame alone (KFCI) or all frames of the GoP."""
    layout: Layout = "grid"
    """Where a fresh initialisation puts the Gaussians: a jittered "grid" of equal ones
    (Gaussians.from_image), or drawn 70% by the key frame's "gradients" and 30% uniformly, sized by
    the local density (Gaussians.from_gradients). Warm starts keep the given Gaussians' places."""
    colour_solve: int = 0
    """Conjugate-gradient passes of a least-squares solve for the colours of a fresh
    initialisation, before stage 1 (Gaussians.solve_colours); 0: the colours of the layout."""
    lr_gaussians: float = 7e-3
    """Adam learning rate of the Gaussians in stage 1, and at the start of stage 2."""
    lr_gaussians_final: float = 7e-4
    """Learning rate of the Gaussians at the end of stage 2, reached by exponential decay. At a
    constant 7e-3 a long fit wanders by 0.1-0.4 dB between checkpoints and plateaus; issue 10
    measured +0.5 dB (GoP 1) and +0.8 dB (GoP 2) for this decay on Bunny 320x160 at 1K + 10K
    steps. Short fits gain nothing from it: the fast preset at 500 + 1,500 steps reached 27.53 dB
    with it and 27.55 dB without (GoP 1), and 27.15 dB decaying to 2e-4."""
    lr_cholesky_factor: float = 1.0
    """The Cholesky factors' learning rate as a multiple of the other Gaussian parameters' (both
    stages, decay included). Positions are in NDC and colours near [0, 1], but the factors are in
    pixels, several of them for a Gaussian at 320x160: at 7e-3 Adam changes a size by about 0.1%
    per step, so shapes lag the rest of the fit. PRESETS gives the measurements. A large factor
    in stage 2 lets the canonical Gaussians drift from a picture of the key frame (the deformation
    makes up for it), so a warm start of the next GoP draws its key frame less well: Bunny GoP 1
    fitted with 40 in both stages drew GoP 2's key frame at 19.3 dB and reached 29.69 dB; 40 in
    stage 1 and 1 in stage 2, 22.1 and 29.03 dB; 10 in both, 20.7 and 29.28 dB."""
    lr_network: float = 1.6e-4
    """Initial learning rate of encodings and MLP; decays exponentially to `lr_network_final`."""
    lr_network_final: float = 1.6e-5
    """Final learning rate of encodings and MLP."""
    warm_init_steps: int = 100
    """Stage 1 steps when the fit starts from given Gaussians (a warm start from the previous GoP):
    they are already fitted to a nearby frame and only need to follow the new key frame."""
    warm_deform_steps: int | None = None
    """Stage 2 steps after a warm start; None: `deform_steps`."""
    anchor_strength: float = 1.0
    """How hard a predicted GoP's fit pulls the Gaussians it kept from the previous GoP back to
    their reference values, per step, in units of the learning rate (train/anchor.py); 0: free.
    Carphone, first 60 frames, --bpp 0.05, fast preset: 0.5 left most kept Gaussians updated at
    10-25 bits each and the counts fell from 422 to 298 Gaussians (0.0518 bpp, 25.04 dB); 1.0
    copies 75-95% of them and the counts grew to 726 (0.0496 bpp, 25.94 dB); 2.0 copies all
    (0.0501 bpp, 25.77 dB). Without prediction (--keyint 1): 0.0500 bpp, 23.74 dB."""
    frames_per_step: int = 1
    """Frames rendered per stage 2 step; frames are drawn from shuffled epochs so all are seen equally."""
    seed: int = 0
    """Seed of initialisation and frame order."""

    def count(self, height: int, width: int) -> int:
        """Gaussians for a frame of this size."""
        return self.gaussians if self.gaussians is not None else max(1, round(self.density * height * width))


_FAST = FitConfig(
    init_steps=500,
    deform_steps=3_000,
    warm_deform_steps=2_500,
    layout="gradients",
    colour_solve=16,
    lr_cholesky_factor=40.0,
    lr_network=1e-3,
    lr_network_final=1e-4,
)

PRESETS: dict[str, FitConfig] = {
    "paper": FitConfig(),
    "medium": replace(_FAST, init_steps=1_000, deform_steps=10_000, warm_deform_steps=8_000),
    "fast": _FAST,
}
"""Named fits, all at the paper's density (1,250 Gaussians at 320x160), with the Gaussians'
learning-rate decay and warm starts across GoPs. `paper` is the paper's schedule and learning
rates. `fast` is tuned for CPUs, and `medium` is `fast` with about three times the steps.

`fast`: 500 + 3,000 steps from the content-adaptive layout, its colours solved by 16
conjugate-gradient passes (colour_solve), 100 + 2,500 after a warm start, the Cholesky factors at
40 times the Gaussians' learning rate, and a network learning rate of 1e-3 -> 1e-4. Measured with
tools/fit_bench.py --preset fast --baseline-ref 2be9ae5 (fits only; QAT, about 20 s a GoP, apart;
two threads, idle 2-core machine), against the `fast` of 2be9ae5 (1,000 + 10,000 steps from the
grid, Gaussians at a constant 7e-3, network 1.6e-4 -> 1.6e-5, every GoP cold):

    Bunny 320x160, GoPs 1-3    29.69 / 29.51 / 29.65 dB, 131 s   (2be9ae5: 28.27 / 27.93 / 28.06
                               dB, 463 s): +1.53 dB in 0.28 of the wall time (0.32 of the CPU)
    carphone 176x144, GoPs 1-3 32.97 / 33.73 / 33.49 dB, 94 s    (2be9ae5: 29.71 / 31.48 / 30.56
                               dB, 335 s): +2.81 dB in 0.28 of the wall time (0.31 of the CPU)

The Cholesky factors' rate (lr_cholesky_factor), Bunny GoP 1 alone, 500 + 3,500 steps: 28.48 dB
at 1 (the rate of positions and colours), 29.11 at 3, 29.42 at 10, 29.53 at 20, 29.71 at 30,
29.77 at 40, 29.52 at 60, 29.55 at 80, 29.28 at 160; at 40, 3,000 steps gave 29.69 dB and 2,500
gave 29.45. On carphone GoPs 1-3 (3,500 steps, 3,000 after warm starts from the float fits), 40
gave +1.86 / +2.04 / +1.39 dB over 1. The colour solve, GoP 1 alone, before that: carphone 30.74
dB without, 31.38 dB with 8 or 16 passes, 31.06 with 32; Bunny 28.29 dB without, 28.48 with 16,
28.29 with 32. Where the rest came from (Bunny GoP 1, 500 + 1,500 steps): previous learning rates and grid 26.13 dB;
network 1e-3 -> 1e-5 26.75; the gradient layout 26.44; both 27.32; both with network 3e-3 27.22,
with network 1e-3 -> 1e-4 27.53; 250 stage 1 steps instead of 500 lost 0.35 dB.

`medium` (tools/fit_bench.py --preset medium, one thread, machine shared with other work, so CPU
seconds are the cost): Bunny GoPs 1-3 30.06 / 30.21 / 29.96 dB in 162 CPU s per GoP, against
`fast`'s 29.69 / 29.51 / 29.65 dB in 60. The previous `medium` (3,000 + 20,000 steps from the
grid, the paper's rates with the decay) reached 29.59 dB on GoP 1 in 305 CPU s, and 30.12 dB in
361 with the Cholesky factors at 40. `paper`, Bunny GoP 1 alone: 30.21 dB in 884 CPU s (same
conditions). Its fit still gains at the end (--curve: 29.42 dB at 30,000 steps, 30.08 at 60,000),
as `fast` and `medium` do, so none stops early; its stage 1 of 10,000 steps levels off (23.97 dB
at 5,000, 24.10 at 10,000)."""


def preset(name: str, **overrides) -> FitConfig:
    """The named preset with some fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
