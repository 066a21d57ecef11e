"""Quantization-aware fine-tuning of a fitted GoP model, and its export to stream symbols.

    GopModel --QAT steps: every parameter passes through its quantizer (straight through)-->
        means on a grid of S per pixel | cholesky b-bit learned affine | colours residual VQ | hash + MLP 8-bit
    --export--> GopRecord (the symbols and side information the stream stores)

A predicted GoP (a PredictedRows given) quantizes its first K Gaussians, those kept from the
reference, as residuals against their reference values (quant/prediction.py), pulls them back to
those values after every step as its fit did (train/anchor.py), and quantizes only the Gaussians
after them, the new ones, as above; with the reference's Cholesky quantizer and codebooks as they
are when it inherits them (PredictedRows.quantizers), which the stream then does not repeat.

The encoder then decodes its own record (stgvcodec.decode) to report exactly what the decoder
will show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call
from tqdm import tqdm

from ..bitstream.gop import GopRecord, Keep, Prediction, Quantizers
from ..model import GopModel, frame_times
from ..render import Backend, rasterize
from ..train.anchor import Anchor
from .colours import CODEBOOK_STEP, ColourRVQ, FixedRVQ
from .prediction import fake_quantize_residual, residual_symbols, split_attributes
from .quantizers import (
    CHOLESKY_BITS,
    POSITION_GRID,
    TENSOR_BITS,
    CholeskyQuantizer,
    PositionGrid,
    fake_quantize_tensor,
    quantize_tensor,
)


@dataclass(frozen=True)
class QuantConfig:
    """How a GoP model is quantized (the stream stores the resulting sizes)."""

    steps: int = 1_000
    """Fine-tuning steps with the quantizers in the loop."""
    rvq_stages: int = 2
    """Residual VQ stages M for the colours."""
    codebook_size: int = 64
    """Colours per codebook B."""
    network_bits: int = TENSOR_BITS
    """Precision P of the hash-table and MLP symbols (2..8)."""
    cholesky_bits: int = CHOLESKY_BITS
    """Precision b of the Cholesky symbols (1..8)."""
    lr_gaussians: float = 1e-3
    """Initial learning rate of positions, Cholesky factors and colours during fine-tuning."""
    lr_gaussians_final: float = 1e-4
    """Their learning rate at the last step, reached by exponential decay, so the fine-tuning ends
    settled rather than on one frame's last update. A small gain: 26.306 dB against 26.293 dB at a
    constant 1e-3 (Bunny 320x160 GoP 1, 500 + 1,500 fit steps, 1,000 QAT steps, decoded)."""
    lr_network: float = 1.6e-5
    """Learning rate of encodings and MLP during fine-tuning (the end of the deformation schedule)."""
    lr_quantizer: float = 1e-3
    """Learning rate of the Cholesky quantizer's scale and offset."""
    codebook_step: float = CODEBOOK_STEP
    """Step c of the stored colour codebook values (a float16 in (0, 1])."""
    position_grid: int = POSITION_GRID
    """S, steps per pixel of the grid the new Gaussians' positions are quantized to (1..64; fewer
    where the frame is too large for 16-bit keys, PositionGrid.fitting)."""
    inherit_below: int = 8
    """A predicted GoP with fewer new Gaussians than this quantizes them with its reference's
    Cholesky quantizer and colour codebooks instead of learning its own, and the stream does not
    repeat those (24 bytes, and 6 bytes per codebook entry); 0: never. Not for many: on carphone at
    --bpp 0.05 (first 60 frames, fast preset; about 100 new Gaussians per predicted GoP) inheriting
    in every predicted GoP saved 187 of 1,341 bytes in GoP 2 but cost 1 dB there, and 0.43 dB over
    the clip (25.72 against 26.16 dB at 0.0495 bpp)."""


@dataclass(frozen=True)
class PredictedRows:
    """How a predicted GoP's model relates to its reference (the previous GoP's decoded Gaussians)."""

    anchor: Anchor
    """Reference values of the model's first K Gaussians, and the pull toward them."""
    kept: Tensor
    """[K] ascending rows of the reference that those K Gaussians continue."""
    reference_count: int
    """N_ref, the Gaussians of the reference."""
    steps: np.ndarray
    """[8] float32 residual steps (quant/prediction.residual_steps)."""
    quantizers: Quantizers | None = None
    """The reference's quantizers, for the new Gaussians to inherit; None: they get their own."""


class QuantizedGop(torch.nn.Module):
    """A GoP model seen through its quantizers."""

    def __init__(self, model: GopModel, config: QuantConfig, height: int, width: int, predicted: PredictedRows | None = None):
        super().__init__()
        self.model = model
        self.grid = PositionGrid(PositionGrid.fitting(config.position_grid, width, height), width, height)
        self.predicted = predicted
        self.rows = predicted.anchor.rows if predicted is not None else 0  # the first rows are residual-coded
        new = model.gaussians.cholesky[self.rows :]
        self.new = new.shape[0]
        self.inherited = predicted.quantizers if predicted is not None else None
        if self.inherited is not None:
            gamma, beta, codebooks = self.inherited
            self.cholesky = CholeskyQuantizer.fixed(gamma, beta, config.cholesky_bits)
            self.colours = FixedRVQ(codebooks) if self.new else None
        else:
            self.cholesky = CholeskyQuantizer(new if self.new else torch.zeros(1, 3, device=new.device), config.cholesky_bits)
            books = min(config.codebook_size, max(self.new, 1))
            self.colours = ColourRVQ(config.rvq_stages, books, step=config.codebook_step) if self.new else None
        self.network_bits = config.network_bits
        self.codebook_step = config.codebook_step
        if predicted is not None:
            device = model.gaussians.means.device
            self.register_buffer("steps", torch.from_numpy(predicted.steps).to(device))
            self.register_buffer("reference", split_attributes(*predicted.anchor.references()))

    def render(self, times: Tensor, height: int, width: int, backend: Backend) -> tuple[Tensor, Tensor]:
        """Frames [T, H, W, 3] of the fake-quantized model and the RVQ commitment loss."""
        g, k = self.model.gaussians, self.rows
        means, cholesky = self.grid(g.means[k:]), self.cholesky(g.cholesky[k:])
        colours, commitment = self.colours(g.colors[k:]) if self.colours is not None else (g.colors[k:], g.colors.sum() * 0.0)
        if k:
            kept = fake_quantize_residual(split_attributes(g.means[:k], g.cholesky[:k], g.colors[:k]), self.reference, self.steps)
            means, cholesky, colours = (
                torch.cat((kept[:, a:b], part)) for (a, b), part in zip(((0, 2), (2, 5), (5, 8)), (means, cholesky, colours))
            )
        field = self.model.deformation
        weights = {name: fake_quantize_tensor(p, self.network_bits) for name, p in field.named_parameters()}
        dmu, dc = functional_call(field, weights, (means, times))
        steps = times.shape[0]
        frames = rasterize(means + dmu, cholesky.expand(steps, *cholesky.shape), colours + dc, height, width, backend)
        return frames, commitment

    @torch.no_grad()
    def export(self) -> GopRecord:
        """The stream's view of the model: symbols, scales, codebooks (and, for a predicted GoP,
        keep classes and residuals)."""
        g, k = self.model.gaussians, self.rows
        if self.colours is not None:
            indices, codebooks = self.colours.export(g.colors[k:])
        elif self.inherited is not None:  # no new Gaussians
            codebooks = self.inherited.codebooks
            indices = np.zeros((0, codebooks.shape[0]), np.int32)
        else:  # no new Gaussians: one stage of one colour, which nothing indexes
            indices, codebooks = np.zeros((0, 1), np.int32), np.zeros((1, 1, 3), np.float32)
        tensors = [quantize_tensor(p, self.network_bits) for _, p in self.model.deformation.named_parameters()]
        return GopRecord(
            positions=self.grid.keys(g.means[k:]).cpu().numpy(),
            cholesky_symbols=self.cholesky.symbols(g.cholesky[k:]).cpu().numpy().astype("int32"),
            cholesky_gamma=self.cholesky.gamma.detach().cpu().numpy().astype("float32"),
            cholesky_beta=self.cholesky.beta.detach().cpu().numpy().astype("float32"),
            colour_indices=indices,
            codebooks=codebooks,
            tensor_symbols=[symbols for symbols, _ in tensors],
            tensor_scales=[scale for _, scale in tensors],
            network_bits=self.network_bits,
            prediction=self._prediction() if self.predicted is not None else None,
            inherits=self.inherited is not None,
            position_grid=self.grid.grid,
            codebook_step=self.codebook_step,
        )

    def _prediction(self) -> Prediction:
        g, k, predicted = self.model.gaussians, self.rows, self.predicted
        residuals = residual_symbols(split_attributes(g.means[:k], g.cholesky[:k], g.colors[:k]), self.reference, self.steps)
        changed = residuals.any(axis=1)
        keep = np.full(predicted.reference_count, Keep.DROPPED, np.int32)
        keep[predicted.kept.cpu().numpy()] = np.where(changed, Keep.UPDATED, Keep.COPIED)
        return Prediction(keep, predicted.steps.astype(np.float32), residuals[changed])


def finetune(
    model: GopModel,
    frames: Tensor,
    config: QuantConfig,
    *,
    predicted: PredictedRows | None = None,
    backend: Backend = "auto",
    seed: int = 0,
    quiet: bool = False,
    label: str = "QAT",
) -> GopRecord:
    """Fine-tunes `model` with its quantizers in the loop on frames [T, H, W, 3] float, then exports it.

    Args:
        predicted: for a predicted GoP, how the model's first Gaussians continue the reference's.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    count, height, width = frames.shape[:3]
    times = torch.tensor(frame_times(count), device=frames.device)
    quantized = QuantizedGop(model, config, height, width, predicted).to(frames.device)
    optimizer = torch.optim.Adam(
        [
            {"params": model.gaussians.parameters(), "lr": config.lr_gaussians},
            {"params": model.deformation.parameters(), "lr": config.lr_network},
            {"params": quantized.cholesky.parameters(), "lr": config.lr_quantizer},
        ]
    )
    queue: list[int] = []
    decay = (config.lr_gaussians_final / config.lr_gaussians) ** (1.0 / max(config.steps, 1))
    bar = tqdm(range(config.steps), desc=label, unit="step", disable=quiet, leave=False)
    for step in bar:
        if not queue:
            queue = torch.randperm(count, generator=generator).tolist()
        index = [queue.pop()]
        rendered, commitment = quantized.render(times[index], height, width, backend)
        mse = torch.mean((rendered - frames[index]) ** 2)
        optimizer.zero_grad(set_to_none=True)
        (mse + commitment).backward()
        optimizer.step()
        if predicted is not None:
            predicted.anchor.pull(model.gaussians, optimizer.param_groups[0]["lr"])
        optimizer.param_groups[0]["lr"] *= decay
        if quantized.cholesky.gamma.requires_grad:  # learned (not inherited): a scale must stay positive
            with torch.no_grad():
                quantized.cholesky.gamma.clamp_(min=1e-6)
        if step % 100 == 0:
            bar.set_postfix(psnr=f"{-10.0 * torch.log10(mse.detach()).item():.2f}dB", refresh=False)
    bar.close()
    return quantized.export()
