"""cglight: coarse-grained potentials by force matching plus Hessian matching."""

__version__ = "0.1.0"

from cglight.data import CGDataModule, ShardDataset  # noqa: E402
from cglight.losses import LossResult, LossTerm, ModelOutput  # noqa: E402
from cglight.model import BackboneConfig, CGPotential  # noqa: E402

__all__ = ["BackboneConfig", "CGDataModule", "CGPotential", "LossResult", "LossTerm", "ModelOutput", "ShardDataset", "__version__"]
