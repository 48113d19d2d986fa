"""The loss-plugin contract: what a loss receives (``ModelOutput``) and returns (``LossResult``).

A loss plugin is an ``nn.Module`` subclass of :class:`LossTerm` with typed ``__init__`` arguments
(they are its config keys). It is registered under a name in the ``cglight.losses`` entry-point
group and configured as ``model.losses.<name>: {weight: w, <its own arguments>}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from cglight.energy.output import ModelOutput
from cglight.errors import PluginError


@dataclass
class LossResult:
    """``loss`` is a scalar in the term's physical units (before weighting or normalisation);
    ``parts`` are extra scalars to log under ``<stage>/<name>/<part>``."""

    loss: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)


class LossTerm(nn.Module):
    """Base class of every loss term, built-in or plugin.

    Subclasses set ``required_keys`` (batch fields they read), ``needs_hvp`` (whether they call
    :meth:`ModelOutput.hvp`; such losses refuse backbones without third-order autograd),
    ``fits_forces``/``needs_fitted_forces`` (see :class:`~cglight.losses.Objective`), implement
    :meth:`forward`, and may implement :meth:`target_second_moment` so that the term can be
    normalised: the trainer then divides the loss by ``E[target²]`` (per component), estimated
    once from the training data before the first step and stored in the ``scale`` buffer.
    """

    required_keys: ClassVar[tuple[str, ...]] = ()
    needs_hvp: ClassVar[bool] = False
    fits_forces: ClassVar[bool] = False
    """True for terms that pull the model forces towards the mean force (``force``)."""
    needs_fitted_forces: ClassVar[bool] = False
    """True for terms whose target uses the model's own forces (``hvp_cov``)."""
    MODEL_SQ: ClassVar[str] = "model_sq"
    """The logged part (``<stage>/<name>/model_sq``) holding the mean square of the model's prediction, for
    terms that log it (the HVP terms); read against :meth:`scale_ratio` by the runaway guard."""

    def __init__(self, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize
        self.register_buffer("scale", torch.tensor(float("nan")))

    def forward(self, batch: Mapping[str, Tensor], output: ModelOutput) -> LossResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def target_second_moment(self, batch: Mapping[str, Tensor]) -> Tensor | None:
        """Mean squared component of this term's target over ``batch`` (no model involved)."""
        return None

    @property
    def autograd_order(self) -> int:
        """Order of autograd through the backbone that training this term needs: 2 for terms on
        forces (the parameter gradient of a position gradient), 3 for exact Hessian-vector products."""
        return 3 if self.needs_hvp else 2

    @property
    def raw_unit(self) -> str:
        """The unit of this term's raw loss and of its normalisation: squared forces, or squared
        Hessian-vector products (override for a term on other quantities)."""
        return "(kcal/mol/Å²)²" if self.needs_hvp else "(kcal/mol/Å)²"

    @property
    def calibrated(self) -> bool:
        return not bool(torch.isnan(self.scale))

    def scale_ratio(self, mean_square: float) -> float:
        """``mean_square`` over the term's calibrated normalisation (its target's second moment; NaN before
        calibration): e.g. the logged :attr:`MODEL_SQ` part, which stays well below 1 near the PMF Hessian."""
        return float(mean_square) / float(self.scale)

    def check_batch(self, batch: Mapping[str, Tensor], name: str | None = None) -> None:
        missing = [k for k in self.required_keys if k not in batch]
        if missing:
            raise PluginError(
                f"loss '{name or type(self).__name__}' needs batch keys {missing}, the batch has {sorted(batch)}"
            )
