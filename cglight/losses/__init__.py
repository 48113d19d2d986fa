"""Loss terms and their registry (entry-point group ``cglight.losses``)."""

from cglight.losses.base import LossResult, LossTerm, ModelOutput
from cglight.losses.force import ForceLoss
from cglight.losses.hessian import CovarianceHVPLoss, HVPLoss
from cglight.losses.objective import Objective
from cglight.losses.registry import available, build_loss, discover, get_loss_class

__all__ = [
    "CovarianceHVPLoss",
    "ForceLoss",
    "HVPLoss",
    "LossResult",
    "LossTerm",
    "ModelOutput",
    "Objective",
    "available",
    "build_loss",
    "discover",
    "get_loss_class",
]
