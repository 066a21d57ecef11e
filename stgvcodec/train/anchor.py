"""Anchoring a predicted GoP's Gaussians to its reference: a decoupled L1 pull after each step.

    reference rows (the previous GoP's decoded Gaussians a warm start kept) --fit / QAT step-->
    moved --pull: each value moves back toward its reference by strength x learning rate, and
    stops there--> most values exactly on the reference, the rest where the loss holds them

A predicted GoP codes its kept Gaussians as residuals against the reference (bitstream_spec.md,
section 8.3); a Gaussian whose values all equal the reference costs a fraction of a bit. Adam
moves every parameter by about its learning rate per step whatever the gradient's size, so a
free fit shifts nearly every Gaussian a little and almost none stays on its reference. The pull
is a proximal step for the penalty strength x |x - reference| measured in learning rates: a value
whose gradient does not push it away consistently (in more than `strength` of its steps, roughly)
returns to the reference and stays there exactly, which is what makes it free to code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import Gaussians


@dataclass(frozen=True)
class Anchor:
    """Reference values of the first `rows` Gaussians of a fit, and how hard they are pulled back."""

    means: Tensor
    """[K, 2] reference positions of rows 0..K-1."""
    cholesky: Tensor
    """[K, 3]."""
    colors: Tensor
    """[K, 3]."""
    strength: float
    """The pull per step, in units of the step's learning rate; 0 leaves the fit free."""

    @property
    def rows(self) -> int:
        return self.means.shape[0]

    @classmethod
    def of(cls, gaussians: Gaussians, rows: int, strength: float) -> Anchor:
        """An anchor on the current values of the first `rows` of `gaussians`."""
        return cls(*(p.detach()[:rows].clone() for p in (gaussians.means, gaussians.cholesky, gaussians.colors)), strength)

    @torch.no_grad()
    def pull(self, gaussians: Gaussians, lr: float, cholesky_lr: float | None = None) -> None:
        """Moves rows 0..K-1 of `gaussians` toward the reference by strength x lr, stopping on it;
        the Cholesky factors by strength x `cholesky_lr` when they train at their own rate."""
        if self.strength <= 0 or not self.rows:
            return
        rates = (lr, lr if cholesky_lr is None else cholesky_lr, lr)
        parameters = (gaussians.means, gaussians.cholesky, gaussians.colors)
        for parameter, reference, rate in zip(parameters, self.references(), rates):
            step = self.strength * rate
            offset = parameter[: self.rows] - reference
            parameter[: self.rows] = reference + offset.sign() * (offset.abs() - step).clamp(min=0.0)

    def references(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.means, self.cholesky, self.colors

    def unchanged(self, gaussians: Gaussians) -> Tensor:
        """[K] bool: rows whose every value equals its reference."""
        same = [(p.detach()[: self.rows] == r).all(-1) for p, r in zip((gaussians.means, gaussians.cholesky, gaussians.colors), self.references())]
        return same[0] & same[1] & same[2]
