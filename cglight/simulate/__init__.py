"""Batched CG Langevin dynamics of a trained energy model (no Lightning, no losses).

The names are imported on first use, so that ``cglight simulate --help`` does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"LangevinIntegrator": "cglight.simulate.langevin", "LangevinState": "cglight.simulate.langevin"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cglight.simulate' has no attribute {name!r}")
