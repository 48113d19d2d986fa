"""Internal coordinates of bead tuples, differentiable: distances (Å), angles and dihedrals (radians).

Every function takes ``pos [F, n, 3]`` and an index tensor ``[T, arity]`` and returns ``[F, T]``.
The beads of all terms are gathered in one ``index_select`` (its derivatives stay one op each).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _beads(pos: Tensor, index: Tensor) -> tuple[Tensor, ...]:
    """``arity`` tensors ``[F, T, 3]``: the positions of each term's beads, in order."""
    picked = pos.index_select(1, index.reshape(-1)).reshape(pos.shape[0], *index.shape, 3)
    return picked.unbind(2)


def distances(pos: Tensor, index: Tensor) -> Tensor:
    a, b = _beads(pos, index)
    return (b - a).norm(dim=-1)


def angles(pos: Tensor, index: Tensor) -> Tensor:
    """The angle at the middle bead, in [0, π] (its derivatives grow without bound at 0 and π)."""
    p0, p1, p2 = _beads(pos, index)
    a, b = p0 - p1, p2 - p1
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    edge = 1.0 - torch.finfo(pos.dtype).eps
    return torch.acos(cos.clamp(-edge, edge))


def dihedral_cos_sin(pos: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """``(cos φ, sin φ)`` of the dihedral of ``i–j–k–l`` without an ``atan2`` (cheaper to differentiate).

    With bond vectors ``b₁ = rⱼ − rᵢ``, ``b₂ = rₖ − rⱼ``, ``b₃ = rₗ − rₖ``: ``φ`` is the angle of
    ``((b₁ × b₂)·(b₂ × b₃), |b₂| b₁·(b₂ × b₃))``."""
    p0, p1, p2, p3 = _beads(pos, index)
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n2 = torch.linalg.cross(b2, b3)
    x = (torch.linalg.cross(b1, b2) * n2).sum(-1)
    y = b2.norm(dim=-1) * (b1 * n2).sum(-1)
    r = (x * x + y * y).sqrt()
    return x / r, y / r


def dihedrals(pos: Tensor, index: Tensor) -> Tensor:
    """The dihedral angle of ``i–j–k–l`` in (−π, π] (IUPAC convention: cis = 0, trans = ±π)."""
    cos, sin = dihedral_cos_sin(pos, index)
    return torch.atan2(sin, cos)
