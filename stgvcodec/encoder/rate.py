"""Rate control: how many Gaussians each GoP gets, under --gaussians, --bpp or --quality.

    --gaussians N ── FixedCount ──────────────────────────────┐
    --bpp X ─ settings_for_budget (RUNGS) ─ BitrateTarget ────┼─ gaussians(first, count) -> N per GoP
    --quality DB ─────────────────────────── QualityTarget ───┘   record(GoP report)  <- what it cost

A target the encoder cannot meet is said before fitting (`check`: the reachable range) and again
in the summary (`shortfall`), never silently.

--bpp: the per-GoP share of the target picks a rung of RUNGS (deformation network, its precision,
colour codebooks) whose fixed cost fits FIXED_SHARE of it. Before each GoP, the bits left for the
rest of the video are shared out over the frames still to code, and the GoP's budget, less the
fixed cost of a GoP (network and side information, as measured so far, or estimated), buys
Gaussians at the bits a Gaussian's own streams have cost so far.

The ladder is written for the hash encoding; `ladder(encoding)` gives the same rungs (MLP width,
network precision, colour codebooks) for the other encodings: the plane variant's feature planes
are sized to hold about as many weights as the rung's hash tables (PLANE_SIZES), and the
positional variant has no tables at all, so its fixed cost is the MLP alone. Every rate decision
below measures the chosen encoding's own network (tensor_sizes), never the hash one's.

Predicted GoPs (encoder/plan.py): a key GoP's share is KEY_WEIGHT times a predicted GoP's per
frame, since every GoP up to the next key GoP builds on it. A predicted GoP's Gaussians cost two
prices: those continued from the reference pay the prediction streams' bits per reference
Gaussian (mostly copies, a fraction of a bit to a few bits each), new ones what a key GoP's
Gaussians cost. Its budget, less the fixed cost, first keeps the reference's Gaussians and buys
new ones with the rest, or keeps fewer when it cannot keep them all.

--quality: the network rung is the one --bpp would choose for the first GoP's Gaussians
(settings_for_gaussians). The first GoP takes the preset's density; each next GoP gets the count
that PSNR = offset + slope * log2(N) says reaches the target, the offset from the last GoP and
the slope fitted to all GoPs so far (QualityTarget.DB_PER_DOUBLING until two counts differ:
carphone and Bunny at 0.05 -> 0.1 bpp gained 1.9 and 2.9 dB for about 2.2x). Where the measured
slope falls below MIN_DB_PER_DOUBLING (a fit that converges no further, as Bunny at 320x160 on the
fast preset), the count stops growing and the shortfall is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..bitstream.gop import MAX_GAUSSIANS
from ..config import Encoding, ModelConfig
from ..decode import tensor_sizes
from ..quant.quantizers import CHOLESKY_BITS

MIN_BPP, MAX_BPP = 0.001, 16.0
"""Range of --bpp the command line accepts."""
MIN_QUALITY, MAX_QUALITY = 10.0, 60.0
"""Range of --quality (dB) the command line accepts."""
DEFAULT_QUALITY = 30.0
"""Target PSNR when neither --bpp, --gaussians nor --quality is given."""


@dataclass(frozen=True)
class Rung:
    """One step of the --bpp ladder: deformation network, its precision, colour codebooks and the
    precision of the Cholesky symbols."""

    model: ModelConfig
    network_bits: int
    rvq_stages: int
    codebook_size: int
    cholesky_bits: int = CHOLESKY_BITS
    priced_colours: int | None = None
    """Codebook size that RateModel.fixed_bits prices (None: codebook_size): the budgets a rung
    serves were measured with that many colours, and stay where they were when the rung's
    codebooks grow (the two 589-weight rungs: 16 priced, 64 coded)."""


RUNGS: list[Rung] = [
    Rung(ModelConfig(), 8, 2, 64),
    Rung(ModelConfig(log2_table_size=8, width=64), 8, 2, 64),
    Rung(ModelConfig(log2_table_size=7, levels=6, width=32), 8, 2, 32),
    Rung(ModelConfig(log2_table_size=6, levels=4, width=16), 6, 2, 16, 6),
    Rung(ModelConfig(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1), 6, 1, 64, 6, 16),
    Rung(ModelConfig(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1), 4, 1, 64, 6, 16),
    Rung(ModelConfig(log2_table_size=5, levels=3, width=8, temporal_features=2, spatial_features=1), 3, 1, 8),
    Rung(ModelConfig(log2_table_size=4, levels=2, width=4, temporal_features=1, spatial_features=1), 3, 1, 8),
]
"""From the paper's configuration (71,813 network weights, 8 bits, 2 x 64 colours) down to 181
weights at 3 bits and 8 colours; --bpp takes the largest rung whose fixed cost fits its budget.

Cholesky symbols have 6 bits on the three rungs where that was measured to pay (carphone, first 60
frames, fast preset, 8 against 6 bits: --bpp 0.05, 0.0495 bpp 25.92 dB against 0.0493 bpp 26.01 dB;
--bpp 0.1, 0.0989 bpp 27.98 dB against 0.0991 bpp 28.16 dB; --bpp 0.3, 0.29958 bpp 32.10 dB against
0.29955 bpp 32.35 dB, on another machine's CPU with torch 2.11: the key GoP costs 10-12% fewer bytes at its count and the rest buys
Gaussians). At --bpp 0.02 (about 100 Gaussians a GoP, each large) 6 bits lost 2 dB, so the
smallest rungs keep 8, as do the larger ones, where it was not measured.
The two 589-weight rungs at 6 and 4 bits (--bpp 0.1 and 0.05 on carphone) have one codebook of
64 colours: 16 cost the most quality per byte of any quantizer there. Carphone's key GoP at --bpp
0.1 (1,083 Gaussians, fitted once, then QAT and coded; fast preset), against 1 x 16 colours at
4,878 bytes and 26.88 dB: 1 x 32 5,087 bytes 27.67 dB; 1 x 64 5,324 bytes 28.16 dB; 1 x 128 5,654
bytes 28.27 dB; 2 x 16 5,419 bytes 28.20 dB; 2 x 32 5,790 bytes 28.36 dB. Beyond 64 a byte buys
about what a byte of Gaussians does. The other quantizers cost more for less: 8-bit Cholesky
symbols 5,660 bytes 26.93 dB, an 8-bit network 5,043 bytes 27.04 dB, 8 position steps per pixel
5,102 bytes 27.26 dB (2: 4,745 bytes 26.58 dB).
The last rung (181 weights) serves budgets the 589-weight network would take over a third of, and
buys Gaussians with what it saves: carphone, --bpp 0.02, first 60 frames, 0.0202 bpp and 21.57 dB
(125 Gaussians in the key GoP) against 0.0200 bpp and 20.69 dB (101) on the 589-weight rung."""

PLANE_SIZES: list[tuple[int, int]] = [(64, 8), (32, 8), (16, 8), (8, 8), (4, 3), (4, 3), (4, 3), (3, 1)]
"""(plane_resolution, plane_features) of the plane variant at each rung of RUNGS, with the default
plane_time_resolution of 10: 43,008, 13,312, 4,608, 1,792, 288 and 69 plane weights against the
rungs' 46,720, 12,288, 4,608, 1,536, 288 and 64 hash-table weights."""


def ladder(encoding: Encoding = "hash") -> list[Rung]:
    """RUNGS for a deformation encoding, largest network first.

    Each rung keeps its MLP width, network precision and colour codebooks; "plane" takes its
    plane sizes from PLANE_SIZES, "positional" has no tables (its MLP reads 2 (2 K_p + 1) position
    features instead), and the hash-grid fields, which those two encodings do not read, stay as
    they are.
    """
    if encoding == "hash":
        return RUNGS
    if encoding == "plane":
        return [
            replace(rung, model=replace(rung.model, encoding="plane", plane_resolution=size, plane_features=features))
            for rung, (size, features) in zip(RUNGS, PLANE_SIZES)
        ]
    if encoding == "positional":
        return [replace(rung, model=replace(rung.model, encoding="positional")) for rung in RUNGS]
    raise ValueError(f"unknown encoding {encoding!r}; choose hash, plane or positional")


KEY_WEIGHT = 2.0
"""Bits per frame of a key GoP against a predicted GoP, when --bpp shares the budget out. Carphone,
first 60 frames (a key GoP and five predicted), --bpp 0.05, fast preset: 1.5 gave 0.0494 bpp and
25.58 dB, 2 gave 0.0496 bpp and 25.94 dB, 3 gave 0.0496 bpp and 25.45 dB."""
PREDICTED_BITS_PER_REFERENCE = 6.0
"""First estimate of the prediction streams' bits per reference Gaussian (keep class, and the
residuals of the updated ones), until a predicted GoP has measured it."""

FIXED_SHARE = 0.35
"""Largest share of a GoP's bits the network, codebooks and side information may take under --bpp."""


class RateModel:
    """First estimates of what a GoP costs: fixed bits (network, codebooks, side information) plus
    bits per Gaussian. The encoder replaces both by the measured values of the GoPs it has coded."""

    min_gaussians = 16
    """Never fewer Gaussians than this."""
    gaussians_per_pixel = 1.0
    """Never more Gaussians than pixels in a frame: beyond that they buy almost nothing."""

    @staticmethod
    def max_gaussians(height: int, width: int) -> int:
        """The most Gaussians a GoP of this frame size gets from --bpp or --quality."""
        cap = int(RateModel.gaussians_per_pixel * height * width)
        return max(RateModel.min_gaussians, min(cap, MAX_GAUSSIANS))

    @staticmethod
    def bits_per_weight(network_bits: int) -> float:
        """A P-bit network symbol after entropy coding: about P bits, as the trained weights of the
        small networks spread over the quantizer's whole range (6.1 bits at P = 6, 2.8 at P = 3,
        measured on carphone); large hash tables, mostly untouched, cost less."""
        return float(network_bits)

    @staticmethod
    def bits_per_gaussian(rung: Rung) -> float:
        """~11 bits of position (quarter-pixel grid keys) and ~18 of 8-bit Cholesky symbols when
        Gaussians are many, more when they are few (wider position gaps, histograms; 3 x 8 raw
        Cholesky bits), 3 fewer per Cholesky bit below 8, plus the colour indices. Kept on the high
        side: a first GoP that underspends leaves its bits to the next, one that overspends takes
        them. (Carphone's key GoP at --bpp 0.05, 374 Gaussians on the 6-bit rung: 35.5 bits each.)"""
        return 40.0 - 3 * (CHOLESKY_BITS - rung.cholesky_bits) + rung.rvq_stages * np.log2(rung.codebook_size)

    @staticmethod
    def fixed_bits(rung: Rung) -> float:
        """Network symbols, then PARAMS (head, Cholesky quantizer, codebooks, tensor scales) and
        stream framing (section 8 of bitstream_spec.md), as version 4 spelled them: 6 bytes per
        codebook entry and 4 per scale, where version 5 spends about 3 and 2. The ladder's choices
        were measured with this estimate, so it stays: with version 5's sizes, Bunny at --bpp 0.02
        would move to a larger rung, untried. The encoder replaces it by what GoPs cost."""
        sizes = tensor_sizes(rung.model)
        colours = rung.priced_colours or rung.codebook_size
        side_bytes = 35 + 6 * rung.rvq_stages * colours + 4 * len(sizes) + 3 * (8 + rung.rvq_stages)
        return sum(sizes) * RateModel.bits_per_weight(rung.network_bits) + 8 * side_bytes


def container_bits(config_bytes: int, gop_count: int) -> int:
    """Bits of the file header (38 bytes and the configuration), the GoP index (8 bytes and 21 per
    GoP) and the chunk framing (8 bytes per GoP): bitstream_spec.md, sections 3, 5 and 6."""
    return 8 * (46 + config_bytes + 29 * gop_count)


def settings_for_budget(bits: float, encoding: Encoding = "hash") -> Rung:
    """The largest rung of ladder(encoding) whose fixed cost fits FIXED_SHARE of `bits` (per GoP)."""
    rungs = ladder(encoding)
    for rung in rungs:
        if RateModel.fixed_bits(rung) <= FIXED_SHARE * bits:
            return rung
    return rungs[-1]


def settings_for_gaussians(count: int, encoding: Encoding = "hash") -> Rung:
    """The rung --bpp would choose for a budget whose Gaussian share buys `count` Gaussians: the
    largest of ladder(encoding) whose fixed cost is at most FIXED_SHARE of the GoP's bits
    (--quality's choice)."""
    rungs = ladder(encoding)
    for rung in rungs:
        gaussian_bits = count * RateModel.bits_per_gaussian(rung)
        if RateModel.fixed_bits(rung) <= FIXED_SHARE / (1 - FIXED_SHARE) * gaussian_bits:
            return rung
    return rungs[-1]


@dataclass(frozen=True)
class Video:
    """What rate control needs to know about the video being coded."""

    width: int
    height: int
    frames: int
    gops: list[tuple[int, int]]
    """(first frame, frame count) of each GoP."""
    config_bytes: int
    """Length of the packed model configuration in the header."""

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames

    @property
    def max_gaussians(self) -> int:
        """The most Gaussians a GoP of this video gets from --bpp or --quality."""
        return RateModel.max_gaussians(self.height, self.width)


def reachable_bpp(video: Video, rung: Rung) -> tuple[float, float]:
    """Estimated (lowest, highest) bpp of the video: the smallest rung of the ladder of `rung`'s
    encoding with the fewest Gaussians, and `rung` (the one a target chose) with the most."""
    low = high = container_bits(video.config_bytes, len(video.gops))
    most = video.max_gaussians
    smallest = ladder(rung.model.encoding)[-1]
    for _ in video.gops:
        low += RateModel.fixed_bits(smallest) + RateModel.min_gaussians * RateModel.bits_per_gaussian(smallest)
        high += RateModel.fixed_bits(rung) + most * RateModel.bits_per_gaussian(rung)
    return low / video.pixels, high / video.pixels


class FixedCount:
    """--gaussians N: every GoP gets N."""

    def __init__(self, gaussians: int):
        self.count = gaussians

    def check(self) -> list[str]:
        return []

    def gaussians(self, first: int, count: int, reference: int | None = None) -> int:
        return self.count

    def record(self, gaussians: int, payload_bytes: int, fixed_bytes: int, psnr: float, report=None) -> None:
        pass

    def shortfall(self, bpp: float, psnr: float) -> str | None:
        return None


class BitrateTarget:
    """--bpp: Gaussians per GoP bought with the bits left, corrected by what each GoP cost."""

    def __init__(self, bpp: float, video: Video, rung: Rung, keys: list[bool] | None = None):
        """keys: for each GoP, whether it is planned as a key GoP (default: all)."""
        self.bpp, self.video, self.rung = bpp, video, rung
        self.keys = keys if keys is not None else [True] * len(video.gops)
        self.total_bits = bpp * video.pixels
        self.spent_bits = container_bits(video.config_bytes, len(video.gops))
        self.fixed: list[float] = []
        self.gaussian_bits, self.gaussian_count = 0.0, 0
        self.reference_bits, self.reference_count = 0.0, 0
        self.capped = False

    def check(self) -> list[str]:
        """Why the target cannot be met, with the reachable range; empty when it can."""
        low, high = reachable_bpp(self.video, self.rung)
        if self.bpp < low:
            return [
                f"--bpp {self.bpp:g} is below what this video can be coded in: header, network and side "
                f"information alone take about {low:.3g} bpp (reachable about {low:.3g}-{high:.3g} bpp)"
            ]
        if self.bpp > high:
            return [
                f"--bpp {self.bpp:g} is above what this video can use: at most "
                f"{self.video.max_gaussians} Gaussians per GoP (one per "
                f"pixel) give about {high:.3g} bpp (reachable about {low:.3g}-{high:.3g} bpp)"
            ]
        return []

    def gaussians(self, first: int, count: int, reference: int | None = None) -> int:
        """Gaussians for the GoP of frames first..first+count-1; `reference`: the Gaussians of its
        reference when it is to be predicted, None for a key GoP."""
        fixed = np.mean(self.fixed) if self.fixed else RateModel.fixed_bits(self.rung)
        per_gaussian = (
            self.gaussian_bits / self.gaussian_count if self.gaussian_count else RateModel.bits_per_gaussian(self.rung)
        )
        number = next(k for k, (start, _) in enumerate(self.video.gops) if start == first)
        weights = [frames * (KEY_WEIGHT if key else 1.0) for (_, frames), key in zip(self.video.gops, self.keys)]
        weights[number] = count * (1.0 if reference is not None else KEY_WEIGHT)
        budget = (self.total_bits - self.spent_bits) * weights[number] / sum(weights[number:]) - fixed
        if reference is None:
            wanted = int(budget / per_gaussian)
        else:
            per_reference = self.reference_bits / self.reference_count if self.reference_count else PREDICTED_BITS_PER_REFERENCE
            keep_all = reference * per_reference
            wanted = int(reference + (budget - keep_all) / per_gaussian if budget >= keep_all else budget / per_reference)
        most = self.video.max_gaussians
        self.capped |= wanted > most
        return min(most, max(RateModel.min_gaussians, wanted))

    def record(self, gaussians: int, payload_bytes: int, fixed_bytes: int, psnr: float, report=None) -> None:
        """What a GoP cost; `report` (an encoder.pipeline.GopReport) separates a predicted GoP's
        prediction streams from its new Gaussians."""
        self.spent_bits += 8 * payload_bytes
        self.fixed.append(8 * fixed_bytes)
        if report is not None and report.predicted:
            prediction = 8 * report.stream_bytes["prediction"]
            self.reference_bits += prediction
            self.reference_count += report.reference_gaussians
            new = gaussians - report.kept
            if new > 0:
                self.gaussian_bits += 8 * (payload_bytes - fixed_bytes) - prediction
                self.gaussian_count += new
            return
        self.gaussian_bits += 8 * (payload_bytes - fixed_bytes)
        self.gaussian_count += gaussians

    def shortfall(self, bpp: float, psnr: float) -> str | None:
        """A sentence when the file missed the target by more than 10%."""
        if abs(bpp - self.bpp) <= 0.1 * self.bpp:
            return None
        if bpp > self.bpp:
            reason = " (header, network and side information take more)"
        elif self.capped:
            reason = f" (GoPs reached the cap of {self.video.max_gaussians} Gaussians)"
        else:
            reason = ""
        return f"target --bpp {self.bpp:g} not met: the file has {bpp:.4g} bpp{reason}"


class QualityTarget:
    """--quality DB: Gaussians per GoP from a PSNR model re-measured after every GoP."""

    DB_PER_DOUBLING = 2.5
    """PSNR gained per doubling of the Gaussians before two GoPs with different counts measure it
    (see the module docstring)."""
    MIN_DB_PER_DOUBLING = 1.0
    """Below this measured gain, more Gaussians are not worth their bits and encoding time: the
    count stops growing and the shortfall is reported."""
    MAX_STEP = 4.0
    """Largest factor between the counts of consecutive GoPs, so one odd GoP cannot swing the next far."""

    def __init__(self, quality: float, video: Video, first_count: int):
        self.quality, self.video = quality, video
        self.next_count = self._clamp(first_count)
        self.seen: list[tuple[float, float]] = []  # (log2 N, PSNR) of each coded GoP
        self.missed: list[tuple[int, float, str]] = []  # (GoP number, PSNR, why) of GoPs that stopped short

    def check(self) -> list[str]:
        return []

    def gaussians(self, first: int, count: int, reference: int | None = None) -> int:
        return self.next_count

    def slope(self) -> float:
        """dB per doubling: the least-squares slope of the GoPs so far where their counts differ
        by at least 20%, else DB_PER_DOUBLING."""
        x = np.array([p[0] for p in self.seen])
        if len(x) < 2 or x.max() - x.min() < math.log2(1.2):
            return self.DB_PER_DOUBLING
        y = np.array([p[1] for p in self.seen])
        return float(np.polyfit(x, y, 1)[0])

    def record(self, gaussians: int, payload_bytes: int, fixed_bytes: int, psnr: float, report=None) -> None:
        self.seen.append((math.log2(gaussians), psnr))
        slope = self.slope()
        most = self.video.max_gaussians
        # Content varies from GoP to GoP: the model's offset follows this GoP, its slope all of them.
        wanted = gaussians * 2.0 ** ((self.quality - psnr) / max(slope, self.MIN_DB_PER_DOUBLING))
        wanted = min(max(wanted, gaussians / self.MAX_STEP), gaussians * self.MAX_STEP)
        if psnr < self.quality - 0.5 and (gaussians >= most or slope < self.MIN_DB_PER_DOUBLING):
            why = f"the cap of {most} Gaussians" if gaussians >= most else f"{max(slope, 0.0):.2f} dB per doubling of the Gaussians"
            self.missed.append((len(self.seen), psnr, why))
            if slope < self.MIN_DB_PER_DOUBLING:
                wanted = min(wanted, 2.0 ** max(p[0] for p in self.seen))  # no more than tried already
        self.next_count = self._clamp(round(wanted))

    def shortfall(self, bpp: float, psnr: float) -> str | None:
        """A sentence when GoPs stayed more than 0.5 dB below the target because the cap or
        diminishing returns stopped the count."""
        if not self.missed:
            return None
        gops = ", ".join(str(number) for number, _, _ in self.missed)
        best = max(p for _, p, _ in self.missed)
        return (
            f"--quality {self.quality:g} dB not reached in GoP {gops}: at most {best:.2f} dB "
            f"({self.missed[-1][2]}; the file has {psnr:.2f} dB)"
        )

    def _clamp(self, count: int) -> int:
        return min(self.video.max_gaussians, max(RateModel.min_gaussians, count))


RateControl = FixedCount | BitrateTarget | QualityTarget


def rate_plan(
    video: Video,
    *,
    bpp: float | None,
    quality: float | None,
    first_count: int,
    default: Rung,
    model: ModelConfig | None = None,
    keys: list[bool] | None = None,
) -> tuple[Rung, RateControl]:
    """The network rung and the controller for a target (at most one of `bpp` and `quality`).

    Args:
        video: the video's geometry and GoPs.
        bpp: --bpp, or None.
        quality: --quality, or None.
        first_count: Gaussians of the first GoP without --bpp (the preset's density, or --gaussians).
        default: the rung without a target (the given network and quantizer settings); its
            model's encoding chooses the ladder a target picks from (ladder()).
        model: a network that replaces the rung's choice.
        keys: for each GoP, whether it is planned as a key GoP (encoder/plan.py; default all).
    """
    encoding = default.model.encoding
    if bpp is not None:
        rung = settings_for_budget(bpp * video.pixels / len(video.gops), encoding)
    elif quality is not None:
        rung = settings_for_gaussians(first_count, encoding)
    else:
        return default, FixedCount(first_count)
    rung = replace(rung, model=model or rung.model)
    if bpp is not None:
        return rung, BitrateTarget(bpp, video, rung, keys)
    return rung, QualityTarget(quality, video, first_count)
