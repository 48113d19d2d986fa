"""``cglight prepare``: OpenMM all-atom reference, CG maps, finite-difference Hessians, shards."""

from cglight.prepare.mapping import CGMap, slice_map
from cglight.prepare.pipeline import PrepareConfig, prepare_dataset

__all__ = ["CGMap", "PrepareConfig", "prepare_dataset", "slice_map"]
