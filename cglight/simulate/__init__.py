"""Batched CG Langevin dynamics of a trained energy model (no Lightning, no losses).

The names are imported on first use, so that ``cglight simulate --help`` does not import torch.
"""

from __future__ import annotations

from cglight.lazy import lazy_exports

_EXPORTS = {"LangevinIntegrator": "cglight.simulate.langevin", "LangevinState": "cglight.simulate.langevin"}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
