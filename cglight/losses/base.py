"""The loss-plugin contract: what a loss receives (``ModelOutput``) and returns (``LossResult``).

A loss plugin is an ``nn.Module`` subclass of :class:`LossTerm` with typed ``__init__`` arguments
(they are its config keys). It is registered under a name in the ``cglight.losses`` entry-point
group and configured as ``model.losses.<name>: {weight: w, <its own arguments>}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from cglight.errors import PluginError


@dataclass
class ModelOutput:
    """What the model computed for a batch of conformations.

    ``energy [B]`` (kcal/mol) and ``forces [B, n, 3]`` (kcal/mol/Å) are differentiable with
    respect to the parameters; :meth:`hvp` gives Hessian-vector products by double
    back-propagation without forming the Hessian.
    """

    energy: Tensor
    forces: Tensor
    pos: Tensor
    create_graph: bool = True
    force_fn: Callable[[Tensor], Tensor] | None = None
    """The model's forces at other positions: ``force_fn(pos [M, n, 3]) -> [M, n, 3]`` with ``M`` a
    multiple of the batch size (the batch's frames repeated in blocks, bead types alike),
    differentiable in the parameters. Finite-difference Hessian-vector products use it; ``None``
    when the producer of this output cannot re-evaluate the model."""

    def hvp(self, v: Tensor) -> Tensor:
        """``∇²U_θ(pos) · v`` for ``v`` shaped like ``pos`` ([B, n, 3]), in kcal/mol/Å² × [v]."""
        if v.shape != self.pos.shape:
            raise ValueError(f"probe shape {tuple(v.shape)} must match positions {tuple(self.pos.shape)}")
        (g,) = torch.autograd.grad(self.forces, self.pos, grad_outputs=v, create_graph=self.create_graph, retain_graph=True)
        return -g

    def hvp_fd(self, v: Tensor, eps: float, central: bool = False) -> Tensor:
        """``∇²U_θ · v`` for ``K`` probes at once, ``v [K, B, n, 3]``, by finite differences of the forces.

        One-sided (default): ``−(F(R + εv) − F(R)) / ε``, reusing ``F(R)``: one batched forward of
        ``K·B`` frames, error O(ε). Central: ``−(F(R + εv) − F(R − εv)) / 2ε``: ``2K·B`` frames,
        error O(ε²). Differentiable in the parameters like :attr:`forces`; needs :attr:`force_fn`.
        """
        if self.force_fn is None:
            raise RuntimeError("finite-difference HVPs need ModelOutput.force_fn (the model's forces at other positions)")
        if v.dim() != self.pos.dim() + 1 or v.shape[1:] != self.pos.shape:
            raise ValueError(f"probes must be [K, *pos.shape] = [K, {', '.join(map(str, self.pos.shape))}], got {tuple(v.shape)}")
        k, base = v.shape[0], self.pos.detach()
        frame = base.shape[1:]
        if central:
            shifted = torch.cat([base + eps * v, base - eps * v]).reshape(-1, *frame)
            f = self.force_fn(shifted).reshape(2, k, *base.shape)
            return -(f[0] - f[1]) / (2 * eps)
        f = self.force_fn((base + eps * v).reshape(-1, *frame)).reshape(k, *base.shape)
        return -(f - self.forces.unsqueeze(0)) / eps


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
    def calibrated(self) -> bool:
        return not bool(torch.isnan(self.scale))

    def check_batch(self, batch: Mapping[str, Tensor], name: str | None = None) -> None:
        missing = [k for k in self.required_keys if k not in batch]
        if missing:
            raise PluginError(
                f"loss '{name or type(self).__name__}' needs batch keys {missing}, the batch has {sorted(batch)}"
            )
