"""Internal coordinates of bead tuples, differentiable: distances (Å), angles and dihedrals (radians).

Every function takes ``pos [F, n, 3]`` and an index tensor ``[T, arity]`` and returns ``[F, T]``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def distances(pos: Tensor, index: Tensor) -> Tensor:
    return (pos[:, index[:, 1]] - pos[:, index[:, 0]]).norm(dim=-1)


def angles(pos: Tensor, index: Tensor) -> Tensor:
    """The angle at the middle bead, in [0, π]."""
    a = pos[:, index[:, 0]] - pos[:, index[:, 1]]
    b = pos[:, index[:, 2]] - pos[:, index[:, 1]]
    return torch.atan2(torch.linalg.cross(a, b).norm(dim=-1), (a * b).sum(-1))


def dihedrals(pos: Tensor, index: Tensor) -> Tensor:
    """The dihedral angle of ``i–j–k–l`` in (−π, π] (IUPAC convention: cis = 0, trans = ±π)."""
    b0 = pos[:, index[:, 0]] - pos[:, index[:, 1]]
    b1 = pos[:, index[:, 2]] - pos[:, index[:, 1]]
    b2 = pos[:, index[:, 3]] - pos[:, index[:, 2]]
    axis = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * axis).sum(-1, keepdim=True) * axis
    w = b2 - (b2 * axis).sum(-1, keepdim=True) * axis
    return torch.atan2((torch.linalg.cross(axis, v) * w).sum(-1), (v * w).sum(-1))
