"""Shard format (manifest + HDF5), splits, the streaming reader and the DataModule."""

from cglight.data.datamodule import CGDataModule
from cglight.data.dataset import ShardDataset
from cglight.data.manifest import Manifest, ShardInfo, SystemInfo, read_manifest, write_manifest
from cglight.data.splits import Segment, Splits, split_dataset
from cglight.data.stream import ShardStream, StreamLoader

__all__ = [
    "CGDataModule", "Manifest", "Segment", "ShardDataset", "ShardInfo", "ShardStream", "Splits", "StreamLoader", "SystemInfo",
    "read_manifest", "split_dataset", "write_manifest",
]
