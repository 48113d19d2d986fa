"""``cglight prepare``: OpenMM all-atom reference, CG maps, finite-difference Hessians, shards.

The names are imported on first use, so that ``cglight prepare --help`` does not import OpenMM.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CGMap": "cglight.prepare.mapping",
    "make_map": "cglight.prepare.mapping",
    "slice_map": "cglight.prepare.mapping",
    "Part": "cglight.prepare.pipeline",
    "PrepareConfig": "cglight.prepare.pipeline",
    "prepare_dataset": "cglight.prepare.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cglight.prepare' has no attribute {name!r}")
