"""Shard format (manifest + HDF5), the dataset and the DataModule."""

from cglight.data.datamodule import CGDataModule
from cglight.data.dataset import ShardDataset
from cglight.data.manifest import Manifest, ShardInfo, SystemInfo, read_manifest, write_manifest

__all__ = ["CGDataModule", "Manifest", "ShardDataset", "ShardInfo", "SystemInfo", "read_manifest", "write_manifest"]
