"""The CG energy core, free of Lightning and of the losses: backbones, priors, ``CGEnergy``, ``ModelOutput``."""

from cglight.energy.backbone import BACKBONES, BackboneConfig, build_backbone
from cglight.energy.core import TERMS, CGEnergy
from cglight.energy.output import ModelOutput
from cglight.energy.priors import DihedralPriorConfig, HarmonicPriorConfig, PriorsConfig, RepulsionPriorConfig
from cglight.energy.topology import Topology

__all__ = [
    "BACKBONES",
    "BackboneConfig",
    "CGEnergy",
    "DihedralPriorConfig",
    "HarmonicPriorConfig",
    "ModelOutput",
    "PriorsConfig",
    "RepulsionPriorConfig",
    "TERMS",
    "Topology",
    "build_backbone",
]
