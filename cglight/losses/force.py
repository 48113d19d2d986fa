"""``force``: plain force matching (docs/method.md §2)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from cglight.data import keys
from cglight.losses.base import LossResult, LossTerm, ModelOutput


class ForceLoss(LossTerm):
    """Mean squared error between model forces and mapped all-atom forces.

    Formula: ``L_F = mean_{frames, beads, xyz} (F_θ(R) − f)²``, units (kcal/mol/Å)².
    Normalised by ``E[f²]`` (per component) unless ``normalize: false``.
    Batch keys: ``forces``. Config::

        model:
          losses:
            force: {weight: 1.0}
    """

    required_keys = (keys.FORCES,)
    fits_forces = True

    def __init__(self, normalize: bool = True) -> None:
        super().__init__(normalize=normalize)

    def forward(self, batch: Mapping[str, Tensor], output: ModelOutput) -> LossResult:
        return LossResult((output.forces - batch[keys.FORCES]).pow(2).mean())

    def target_second_moment(self, batch: Mapping[str, Tensor]) -> Tensor:
        return batch[keys.FORCES].pow(2).mean()
