"""cglight: coarse-grained potentials by force matching plus Hessian matching.

The top-level names are imported on first use, so that ``import cglight.energy`` (a simulator
loading a model) does not import Lightning.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "BackboneConfig": "cglight.energy",
    "CGEnergy": "cglight.energy",
    "PriorsConfig": "cglight.energy",
    "ModelOutput": "cglight.energy",
    "CGDataModule": "cglight.data",
    "ShardDataset": "cglight.data",
    "LossResult": "cglight.losses",
    "LossTerm": "cglight.losses",
    "CGPotential": "cglight.model",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cglight' has no attribute {name!r}")
