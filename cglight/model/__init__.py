"""The CG potential: torchmd-net backbone wrapper and the LightningModule."""

from cglight.model.backbone import BACKBONES, Backbone, BackboneConfig
from cglight.model.potential import CGPotential

__all__ = ["BACKBONES", "Backbone", "BackboneConfig", "CGPotential"]
