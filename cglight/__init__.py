"""cglight: coarse-grained potentials by force matching plus Hessian matching.

The top-level names are imported on first use, so that ``import cglight.energy`` (a simulator
loading a model) does not import Lightning.
"""

from __future__ import annotations

from cglight.lazy import lazy_exports

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
    "CGPotential": "cglight.training",
}

__getattr__, _names = lazy_exports(__name__, _EXPORTS)
__all__ = [*_names, "__version__"]
