"""Shard format (manifest + HDF5), splits, the streaming reader and the DataModule.

The names are imported on first use, so that ``cglight.data.manifest`` (``cglight data info``, the
``--help`` of every command) does not import torch or Lightning.
"""

from __future__ import annotations

from cglight.lazy import lazy_exports

_EXPORTS = {
    "CGDataModule": "cglight.data.datamodule",
    "ShardDataset": "cglight.data.dataset",
    "Manifest": "cglight.data.manifest",
    "ShardInfo": "cglight.data.manifest",
    "SystemInfo": "cglight.data.manifest",
    "read_manifest": "cglight.data.manifest",
    "write_manifest": "cglight.data.manifest",
    "Segment": "cglight.data.splits",
    "Splits": "cglight.data.splits",
    "split_dataset": "cglight.data.splits",
    "ShardStream": "cglight.data.stream",
    "StreamLoader": "cglight.data.stream",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
