"""The streaming DataModule on one process: splits, rank/worker shares, epochs, resume, bad shards.

The oracle for "which frames" is the split's definition worked out by hand from the shard sizes
(each synthetic system numbers its frames 0, 1, ... in trajectory order), never the stream's plan.
"""

from __future__ import annotations

import collections
import json

import h5py
import numpy as np
import pytest
import torch

from cglight.data import keys, mixed
from cglight.data.datamodule import CGDataModule
from cglight.data.stream import StreamLoader, StreamPosition
from cglight.errors import ConfigError, DatasetError
from tests.data.synthetic import write_synthetic

# system a: 102 frames (uneven shards), b: 23 frames
SHARDS = {"a": [37, 5, 60], "b": [23]}
# round(102 * 0.1) = 10 and round(23 * 0.1) = 2 frames each for validation and for test
TRAIN = {(0, f) for f in range(82)} | {(1, f) for f in range(19)}
VAL = {(0, f) for f in range(82, 92)} | {(1, f) for f in range(19, 21)}
TEST = {(0, f) for f in range(92, 102)} | {(1, f) for f in range(21, 23)}
# batches of 8 in windows of 16: a: 82 frames → 5 windows (10 batches) + 2 frames (1); b: 19 → 1 window (2) + 3 frames (1)
BATCHES = 10 + 1 + 2 + 1
# data.mix_systems (a of 5 beads, b of 8): the 101 frames of both systems in windows of 16 → 6 windows (12 batches) + 5 frames (1)
MIXED_BATCHES = 12 + 1


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("stream") / "ds", SHARDS)


@pytest.fixture(scope="module")
def synthetic_mixed(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("stream_mixed") / "ds", SHARDS, beads={"a": 5, "b": 8})


@pytest.fixture(params=[False, True], ids=["one-system", "mixed"])
def case(request, synthetic, synthetic_mixed):
    """(dataset, DataModule options, batches per epoch): one-system batches, or mixed batches of two bead counts."""
    if request.param:
        return synthetic_mixed, {"mix_systems": True}, MIXED_BATCHES
    return synthetic, {}, BATCHES


def _dm(path, **kw) -> CGDataModule:
    args = dict(batch_size=8, num_workers=0, block_frames=4, window_frames=16) | kw
    dm = CGDataModule(str(path), **args)
    dm.setup()
    return dm


def _frames(batches) -> list[tuple[int, int]]:
    out = []
    for b in batches:
        assert mixed.is_mixed(b) or len(set(b[keys.SYSTEM].tolist())) == 1  # one system per batch unless mixing
        out += [(int(s), int(f)) for s, f in zip(b[keys.SYSTEM], b[keys.FRAME_INDEX], strict=True)]
    return out


def _rank_pass(dm, stream, rank, world, epoch, skip=0):
    stream.configure(rank, world, epoch, skip)
    return list(stream.batches())


def test_splits_are_disjoint_time_blocks(synthetic):
    dm = _dm(synthetic)
    assert set(_frames(dm.calibration_batches(10**6))) == TRAIN
    assert set(_frames(dm.val_dataloader())) == VAL
    assert set(_frames(dm.test_dataloader())) == TEST
    held = _dm(synthetic, holdout_systems=["b"])
    assert {f for f in _frames(held.test_dataloader()) if f[0] == 1} == {(1, f) for f in range(23)}
    assert all(s == 0 for s, _ in _frames(held.val_dataloader()))
    with pytest.raises(ConfigError, match=r"holdout_systems names \['c'\].*systems: a, b"):
        _dm(synthetic, holdout_systems=["c"])


@pytest.mark.parametrize("world", [1, 2, 3])
def test_every_training_frame_once_per_epoch_across_ranks(case, world):
    synthetic, options, total = case
    dm = _dm(synthetic, **options)
    stream = dm.train_dataloader().dataset
    k = -(-total // world)
    passes = [_rank_pass(dm, stream, r, world, epoch=0) for r in range(world)]
    assert [len(p) for p in passes] == [k] * world == [stream.batches_per_rank(world)] * world
    seen = collections.Counter(f for p in passes for f in _frames(p))
    assert set(seen) == TRAIN
    # pad: the first k*world - total batches of the epoch's order are seen twice, nothing else
    first = _frames(passes[0][: k * world - total])
    assert sorted(f for f, n in seen.items() if n == 2) == sorted(first) and max(seen.values()) <= 2
    drop = _dm(synthetic, remainder="drop", **options).train_dataloader().dataset
    dropped = [f for r in range(world) for f in _frames(_rank_pass(dm, drop, r, world, 0))]
    assert len(dropped) == len(set(dropped)) and set(dropped) <= TRAIN


def test_order_reproducible_from_seed_and_epoch_and_mixes_shards(synthetic):
    dm = _dm(synthetic)
    stream = dm.train_dataloader().dataset
    e0, e0_again, e1 = (_frames(_rank_pass(dm, stream, 0, 1, e)) for e in (0, 0, 1))
    assert e0 == e0_again and e0 != e1 and sorted(e0) == sorted(e1)
    other_seed = _dm(synthetic, seed=1).train_dataloader().dataset
    assert _frames(_rank_pass(dm, other_seed, 0, 1, 0)) != e0
    # a shuffle window mixes frames of different shards of system a (shard 0: frames 0-36, 1: 37-41, 2: 42-)
    shards_of = [{0 if f < 37 else 1 if f < 42 else 2 for s, f in _frames([b]) if s == 0} for b in _rank_pass(dm, stream, 0, 1, 0)]
    assert any(len(s) > 1 for s in shards_of)
    # and the window is permuted as a whole: unshuffled, a batch of 8 would be two blocks of 4 consecutive
    # frames (a few more runs where a block is cut short by a shard's end); shuffled, it is scattered
    def runs(batch):
        f = sorted(batch[keys.FRAME_INDEX].tolist())
        return 1 + sum(b != a + 1 for a, b in zip(f, f[1:]))

    assert max(runs(b) for b in _rank_pass(dm, stream, 0, 1, 0)) >= 6


def test_workers_deliver_the_same_order_and_resume_skips_consumed(case):
    synthetic, options, total = case
    dm = _dm(synthetic, **options)
    def batches(loader):
        return [_frames([b]) for b in loader]

    def resumed_at(consumed):
        position = StreamPosition()
        setting = {"world": 1, "batch_size": 8, "seed": 0, "remainder": "pad"} | ({"mix_systems": True} if options else {})
        position.load_state_dict({"epoch": 3, "consumed": consumed, "setting": setting})
        return position

    full = batches(StreamLoader(dm.train_dataloader().dataset, num_workers=0, epoch=lambda: 3))
    for workers in (0, 2):
        assert batches(StreamLoader(dm.train_dataloader().dataset, num_workers=workers, epoch=lambda: 3)) == full
        for consumed in (3, 4):  # resuming in an odd and an even chunk of 2 batches
            tail = StreamLoader(dm.train_dataloader().dataset, num_workers=workers, epoch=lambda: 3, position=resumed_at(consumed))
            assert batches(tail) == full[consumed:]
    other_epoch = StreamLoader(dm.train_dataloader().dataset, epoch=lambda: 4, position=resumed_at(5))
    assert len(batches(other_epoch)) == total  # a position of another epoch is not applied


def test_datamodule_state_resumes_the_epoch_it_stopped_in(case):
    synthetic, options, _ = case
    dm = _dm(synthetic, **options)
    dm.set_epoch(2)
    loader = dm.train_dataloader()
    it = iter(loader)
    first = [next(it) for _ in range(4)]
    for b in first:
        dm.position.consumed += 1  # what on_before_batch_transfer counts during training
    state = json.loads(json.dumps(dm.state_dict()))
    assert state["epoch"] == 2 and state["consumed"] == 4
    rest = list(it)
    resumed = _dm(synthetic, **options)
    resumed.set_epoch(2)
    resumed.load_state_dict(state)
    assert _frames(resumed.train_dataloader()) == _frames(rest)
    assert len(_frames(resumed.train_dataloader())) == len(_frames(first + rest))  # the next pass is whole again


def test_memory_stays_within_one_window(case):
    synthetic, options, _ = case
    dm = _dm(synthetic, **options)
    stream = dm.train_dataloader().dataset
    stream.configure(0, 1, 0)
    sizes = []
    for chunk in stream:
        sizes.append(sum(a[keys.POS].shape[0] for a in stream._window[1][0].values()))
        assert len(chunk) <= 2  # window_frames / batch_size batches per item
    assert max(sizes) <= 16


def test_missing_truncated_and_mismatched_shards_name_the_file(synthetic, tmp_path):
    import shutil

    def copy(name):
        dst = tmp_path / name
        shutil.copytree(synthetic, dst)
        return dst

    missing = copy("missing")
    (missing / "a/shard-00001.h5").unlink()
    with pytest.raises(DatasetError, match=r"shard file .*missing/a/shard-00001\.h5 does not exist"):
        _dm(missing)
    truncated = copy("truncated")
    path = truncated / "a/shard-00002.h5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"truncated/a/shard-00002\.h5: truncated or not an HDF5 file"):
        _dm(truncated)
    mismatch = copy("mismatch")
    raw = json.loads((mismatch / "manifest.json").read_text())
    raw["shards"][3]["frames"] = 24
    (mismatch / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=r"mismatch/b/shard-00000\.h5: dataset 'pos' has shape \(23, 5, 3\), the manifest implies \(24, 5, 3\)"):
        _dm(mismatch)


def test_bad_values_found_at_first_read_reach_the_main_process_as_one_line(synthetic, tmp_path):
    import shutil

    bad = tmp_path / "nan"
    shutil.copytree(synthetic, bad)
    with h5py.File(bad / "b/shard-00000.h5", "r+") as f:
        f["hessian"][3, 0, 0] = np.nan
    dm = _dm(bad, num_workers=1, verify_checksums=False)  # the value found as it is read, not by the checksum
    with pytest.raises(DatasetError) as exc:
        list(dm.train_dataloader())
    assert str(exc.value) == f"{bad}/b/shard-00000.h5: dataset 'hessian' holds NaN or inf at frame 3"


def test_mixed_batches_hold_several_systems_with_their_own_data(synthetic_mixed):
    """data.mix_systems: batches mix the 5- and the 8-bead molecule; split per system, every
    field equals the shard's own values at the frame (read here straight from HDF5)."""
    dm = _dm(synthetic_mixed, mix_systems=True)
    shard_of = {"a": [(0, 37), (37, 42), (42, 102)], "b": [(0, 23)]}

    def shard_frame(name, f):
        k = next(i for i, (lo, hi) in enumerate(shard_of[name]) if lo <= f < hi)
        return synthetic_mixed / name / f"shard-{k:05d}.h5", f - shard_of[name][k][0]

    both = 0
    for batch in dm.train_dataloader():
        n = torch.bincount(batch[keys.BATCH])
        assert batch[keys.POS].shape == (int(n.sum()), 3) and set(n.tolist()) <= {5, 8}
        groups = mixed.split(batch)
        both += len(groups) == 2
        for g in groups:
            name = "ab"[int(g[keys.SYSTEM][0])]
            beads = 5 if name == "a" else 8
            assert g[keys.POS].shape[1:] == (beads, 3) and g[keys.HESSIAN].shape[1:] == (3 * beads, 3 * beads)
            assert g[keys.BEAD_TYPES].tolist() == [dm.systems[name].bead_types] * len(g[keys.POS])
            for i, f in enumerate(g[keys.FRAME_INDEX].tolist()):
                path, local = shard_frame(name, f)
                with h5py.File(path, "r") as h:
                    for field in (keys.POS, keys.FORCES, keys.HESSIAN):
                        assert np.array_equal(g[field][i].numpy(), h[field][local].astype(np.float32)), (name, f, field)
    assert both >= 3
    # validation and test mix too, and the calibration frames (the priors' fit) stay one molecule per batch
    assert set(_frames(dm.val_dataloader())) == VAL and set(_frames(dm.test_dataloader())) == TEST
    assert all(not mixed.is_mixed(b) for b in dm.calibration_batches(10**6))


def test_pack_and_split_are_inverse_with_stored_probes():
    g = torch.Generator().manual_seed(0)

    def molecule(system, frames, beads, probes):
        return {keys.POS: torch.randn(frames, beads, 3, generator=g), keys.FORCES: torch.randn(frames, beads, 3, generator=g),
                keys.PROBES: torch.randn(frames, probes, 3 * beads, generator=g), keys.HVP: torch.randn(frames, probes, 3 * beads, generator=g),
                keys.BEAD_TYPES: torch.randint(0, 4, (frames, beads), generator=g), keys.BETA: torch.rand(frames, generator=g),
                keys.SYSTEM: torch.full((frames,), system), keys.FRAME_INDEX: torch.arange(frames)}

    molecules = [molecule(0, 3, 5, 2), molecule(1, 2, 8, 3)]
    batch = mixed.pack(molecules)
    assert batch[keys.HVP].shape == (3 * 2 * 15 + 2 * 3 * 24,) and batch[keys.PROBE_COUNT].tolist() == [2, 2, 2, 3, 3]
    assert batch[keys.BATCH].tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 8 + [4] * 8
    for got, want in zip(mixed.split(batch), molecules, strict=True):
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    # frames need not be grouped by system: split collects each system's frames in batch order
    head, tail = ({k: v[sl] for k, v in molecules[0].items()} for sl in (slice(0, 2), slice(2, 3)))
    interleaved = mixed.pack([head, molecules[1], tail])
    assert interleaved[keys.SYSTEM].tolist() == [0, 0, 1, 1, 0]
    for got, want in zip(mixed.split(interleaved), molecules, strict=True):
        assert all(torch.equal(got[k], want[k]) for k in want)
    with pytest.raises(DatasetError, match="different fields"):
        mixed.pack([molecules[0], {k: v for k, v in molecules[1].items() if k != keys.HVP}])

