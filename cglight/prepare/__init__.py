"""``cglight prepare``: OpenMM all-atom reference, CG maps, finite-difference Hessians, shards."""

from cglight.prepare.mapping import CGMap, make_map, slice_map
from cglight.prepare.pipeline import Part, PrepareConfig, prepare_dataset

__all__ = ["CGMap", "Part", "PrepareConfig", "make_map", "prepare_dataset", "slice_map"]
