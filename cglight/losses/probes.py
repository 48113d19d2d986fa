"""Random probe vectors with ``E[v vᵀ] = I`` for Hessian-vector matching (docs/method.md §4)."""

from __future__ import annotations

import torch
from torch import Tensor

PROBE_KINDS = ("rademacher", "gaussian")


def draw_probes(shape: tuple[int, ...], kind: str, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Probes of ``shape`` with the dtype and device of ``like``: ±1 (Rademacher) or N(0, 1)."""
    if kind == "rademacher":
        v = torch.randint(0, 2, shape, generator=generator, device=like.device).to(like.dtype) * 2 - 1
    elif kind == "gaussian":
        v = torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
    else:
        raise ValueError(f"unknown probe kind {kind!r}; available: {', '.join(PROBE_KINDS)}")
    return v
