"""The Lightning side: ``CGPotential`` (training a ``cglight.energy.CGEnergy``) and its callbacks."""

from cglight.energy.backbone import BACKBONES, BackboneConfig
from cglight.energy.priors import PriorsConfig
from cglight.training.potential import CGPotential

__all__ = ["BACKBONES", "BackboneConfig", "CGPotential", "PriorsConfig"]
