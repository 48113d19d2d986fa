"""``cglight prepare``: OpenMM all-atom reference, CG maps, finite-difference Hessians, shards.

The names are imported on first use, so that ``cglight prepare --help`` does not import OpenMM.
"""

from __future__ import annotations

from cglight.lazy import lazy_exports

_EXPORTS = {
    "CGMap": "cglight.prepare.mapping",
    "make_map": "cglight.prepare.mapping",
    "Part": "cglight.prepare.plan",
    "PrepareConfig": "cglight.prepare.config",
    "prepare_dataset": "cglight.prepare.run",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
