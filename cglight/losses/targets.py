"""Per-frame second-order targets of docs/method.md §3–4, as plain tensor functions.

Shapes: ``hessian [B, D, D]`` with ``D = 3n``, vectors ``[B, D]``, ``beta [B]``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def projected_hvp(hessian: Tensor, v: Tensor) -> Tensor:
    """``(BᵀHB) v``: the target of the ``hvp`` loss."""
    return torch.einsum("bij,bj->bi", hessian, v)


def covariance_correction(forces: Tensor, model_forces: Tensor, v: Tensor, beta: Tensor) -> Tensor:
    """``β [(f·v) f − (F_θ·v) F_θ]`` with ``F_θ`` detached (no gradient flows through it)."""
    model_forces = model_forces.detach()
    fv = (forces * v).sum(-1, keepdim=True)
    mv = (model_forces * v).sum(-1, keepdim=True)
    return beta[:, None] * (fv * forces - mv * model_forces)


def covariance_corrected_hvp(hv: Tensor, forces: Tensor, model_forces: Tensor, v: Tensor, beta: Tensor) -> Tensor:
    """``(BᵀHB) v − β[(f·v) f − (F_θ·v) F_θ]``: the target of the ``hvp_cov`` loss, given ``hv = (BᵀHB) v``."""
    return hv - covariance_correction(forces, model_forces, v, beta)
