"""Batched CG Langevin dynamics of a trained energy model (no Lightning, no losses)."""

from cglight.simulate.langevin import LangevinIntegrator, LangevinState

__all__ = ["LangevinIntegrator", "LangevinState"]
