"""``force_huber``: force matching with a Huber penalty (an example cglight loss plugin)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from cglight.data import keys
from cglight.errors import ConfigError
from cglight.losses import LossResult, LossTerm, ModelOutput

__all__ = ["HuberForceLoss"]


class HuberForceLoss(LossTerm):
    """Huber loss between model forces and mapped all-atom forces.

    Formula, per force component with residual ``e = F_θ − f``::

        ρ(e) = ½ e²                 if |e| ≤ δ
               δ (|e| − ½ δ)        otherwise

    averaged over frames, beads and components; units (kcal/mol/Å)². Quadratic near zero like
    ``force``, linear in the tails, so rare huge mapped forces (bond-stretch spikes) weigh less.
    Normalised by ``½ E[f²]`` (the loss of predicting zero forces in the quadratic regime).
    Batch keys: ``forces``. Config::

        model:
          losses:
            force_huber: {weight: 1.0, delta: 50.0}
    """

    required_keys = (keys.FORCES,)
    fits_forces = True

    def __init__(self, delta: float = 50.0, normalize: bool = True) -> None:
        super().__init__(normalize=normalize)
        if not delta > 0:
            raise ConfigError(f"loss 'force_huber': delta must be positive (kcal/mol/Å), got {delta!r}")
        self.delta = float(delta)

    def forward(self, batch: Mapping[str, Tensor], output: ModelOutput) -> LossResult:
        e = output.forces - batch[keys.FORCES]
        loss = torch.nn.functional.huber_loss(output.forces, batch[keys.FORCES], delta=self.delta)
        outliers = (e.abs() > self.delta).to(e.dtype).mean()
        return LossResult(loss, {"outlier_fraction": outliers.detach()})

    def target_second_moment(self, batch: Mapping[str, Tensor]) -> Tensor:
        return 0.5 * batch[keys.FORCES].pow(2).mean()
