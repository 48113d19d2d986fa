"""``ShardReader``, the one reader of shard frames, against h5py read directly.

Oracles: the arrays h5py returns for the same file, dataset and frames; the frames of the
dataset's own ``frame_index`` (for the trajectories' cuts); the damage the tests do themselves.
"""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from cglight.data import ShardDataset, keys, read_manifest
from cglight.data.reader import ShardReader, reference_trajectories, start_frames
from cglight.data.shards import write_shard
from cglight.data.splits import Segment
from cglight.data.stream import ShardStream
from tests.data.synthetic import write_synthetic

FIELDS = (keys.POS, keys.FORCES, keys.HESSIAN, keys.FRAME_INDEX)


@pytest.fixture(scope="module")
def two_systems(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("reader") / "ds", {"a": [7, 5, 6], "b": [4]}, beads={"a": 3, "b": 4})


def _direct(root, manifest, shard: int, name: str, frames) -> np.ndarray:
    with h5py.File(root / manifest.shards[shard].path, "r") as f:
        return f[name][:][frames]


def test_frames_by_slice_and_by_index_are_what_h5py_reads(two_systems):
    manifest = read_manifest(two_systems)
    reader = ShardReader(two_systems, manifest)
    pieces = [(1, slice(1, 4)), (0, np.array([0, 2, 6])), (2, slice(0, 6))]
    arrays = reader.frames(0, pieces)
    assert set(arrays) == set(FIELDS)
    for name in FIELDS:
        want = np.concatenate([_direct(two_systems, manifest, s, name, f) for s, f in pieces])
        np.testing.assert_array_equal(arrays[name], want)
        assert arrays[name].dtype == (np.int64 if name == keys.FRAME_INDEX else np.float32)


def test_a_dataset_batch_in_any_order_with_repeats_is_what_h5py_reads(two_systems):
    manifest = read_manifest(two_systems)
    dataset = ShardDataset(two_systems)
    asked = [13, 2, 8, 2, 0, 17]  # shard 2 frame 1, shard 0 frame 2, shard 1 frame 1, ..., shard 2 frame 5
    where = [(2, 1), (0, 2), (1, 1), (0, 2), (0, 0), (2, 5)]
    batch = dataset[asked]
    for name in FIELDS:
        want = np.stack([_direct(two_systems, manifest, s, name, i) for s, i in where])
        np.testing.assert_array_equal(batch[name].numpy(), want)
    assert batch[keys.SYSTEM].tolist() == [0] * 6 and batch[keys.BEAD_TYPES].shape == (6, 3)


def test_the_stream_and_the_dataset_assemble_the_same_batch(two_systems):
    manifest = read_manifest(two_systems)
    segments = [Segment(system=1, shard=3, start=0, stop=4)]  # system b, its one shard
    stream = ShardStream(two_systems, manifest, segments, batch_size=4, shuffle=False)
    (batch,) = list(stream.batches())
    from_dataset = ShardDataset(two_systems)[[18, 19, 20, 21]]
    assert set(batch) == set(from_dataset)
    for name, value in batch.items():
        assert value.dtype == from_dataset[name].dtype
        np.testing.assert_array_equal(value.numpy(), from_dataset[name].numpy())
    np.testing.assert_array_equal(batch[keys.POS].numpy(), _direct(two_systems, manifest, 3, keys.POS, slice(0, 4)))


def test_at_most_max_open_files_stay_open_and_a_copy_opens_its_own(two_systems):
    manifest = read_manifest(two_systems)
    reader = ShardReader(two_systems, manifest, max_open=2)
    first = reader.file(0)
    reader.file(1)
    reader.file(2)
    assert not first.id.valid  # the least recently used was closed
    copy = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(copy.read(1, keys.POS, slice(0, 5)), _direct(two_systems, manifest, 1, keys.POS, slice(0, 5)))


def test_reference_trajectories_cut_where_frame_index_jumps(tmp_path):
    root = write_synthetic(tmp_path / "ds", {"a": [6, 4]}, beads=3)
    manifest = read_manifest(root)
    shard = root / manifest.shards[1].path
    with h5py.File(shard, "r") as f:
        arrays = {name: f[name][:] for name in f}
    arrays[keys.FRAME_INDEX] = np.array([6, 7, 20, 21])  # frames 0-7 in a row, then a new trajectory
    write_shard(shard, arrays)
    manifest.shards[1].sha256 = None
    trajs = reference_trajectories(root, manifest, "a")
    direct = np.concatenate([_direct(root, manifest, s, keys.POS, slice(None)) for s in (0, 1)])
    assert [len(t) for t in trajs] == [8, 2]
    np.testing.assert_array_equal(np.concatenate(trajs), direct.astype(np.float64))


def test_start_frames_are_distinct_frames_of_the_system_in_dataset_order(two_systems):
    manifest = read_manifest(two_systems)
    frames = np.concatenate([_direct(two_systems, manifest, s, keys.POS, slice(None)) for s in (0, 1, 2)])
    start = start_frames(two_systems, manifest, "a", 10, seed=4)
    assert start.shape == (10, 3, 3) and start.dtype == np.float32
    rows = [int(np.flatnonzero((frames == x).all(axis=(1, 2)))[0]) for x in start]
    assert rows == sorted(set(rows))
