"""A float64 pair potential smooth to any order and a synthetic batch with every standard field: what the
loss suite (and cglight's own loss tests) run a loss on."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cglight.data import keys
from cglight.losses.base import ModelOutput


class PairPotential(nn.Module):
    """``U = Σ_{i<j} k_ij (|r_i − r_j| − d_ij)² + Σ_i a_i |r_i|⁴``: smooth to any order, in float64."""

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = nn.Parameter(1.0 + torch.rand(n, n, generator=g, dtype=torch.float64))
        self.d = nn.Parameter(1.0 + torch.rand(n, n, generator=g, dtype=torch.float64))
        self.a = nn.Parameter(0.01 * torch.rand(n, generator=g, dtype=torch.float64))

    def energy(self, pos: Tensor) -> Tensor:
        n = pos.shape[-2]
        i, j = torch.triu_indices(n, n, 1)
        r = (pos[:, i] - pos[:, j]).norm(dim=-1)
        return (self.k[i, j] * (r - self.d[i, j]).pow(2)).sum(-1) + (self.a * pos.pow(2).sum(-1).pow(2)).sum(-1)

    def forces(self, pos: Tensor) -> Tensor:
        """``−∇U`` at ``pos [M, n, 3]``, differentiable in the parameters."""
        with torch.enable_grad():
            pos = pos.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(pos).sum(), pos, create_graph=True)
        return -g

    def output(self, pos: Tensor) -> ModelOutput:
        pos = pos.detach().requires_grad_(True)
        energy = self.energy(pos)
        (g,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        return ModelOutput(energy, -g, pos, create_graph=True, force_fn=self.forces)


def synthetic_batch(frames: int = 4, beads: int = 5, seed: int = 0) -> dict[str, Tensor]:
    """A float64 batch with every standard field (random but well-scaled)."""
    g = torch.Generator().manual_seed(seed)
    d = 3 * beads
    a = torch.randn(frames, d, d, generator=g, dtype=torch.float64)
    chain = torch.arange(beads, dtype=torch.float64)[:, None] * torch.tensor([1.5, 0.0, 0.0], dtype=torch.float64)
    return {
        keys.POS: chain + 0.2 * torch.randn(frames, beads, 3, generator=g, dtype=torch.float64),
        keys.FORCES: torch.randn(frames, beads, 3, generator=g, dtype=torch.float64),
        keys.HESSIAN: a @ a.transpose(1, 2) / d,
        keys.BETA: torch.full((frames,), 1.68, dtype=torch.float64),
        keys.BEAD_TYPES: torch.arange(beads).expand(frames, beads).clone(),
        keys.FRAME_INDEX: torch.arange(frames),
        keys.SYSTEM: torch.zeros(frames, dtype=torch.long),
    }
