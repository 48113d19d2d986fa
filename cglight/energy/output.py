"""``ModelOutput``: what the energy model computed for a batch, and how to ask it for Hessian-vector products.

The energy core (:class:`cglight.energy.CGEnergy`) produces it; the loss terms consume it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


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
