"""``data.train_frames``: learning curves on a subset of the training frames, validation and test untouched."""

from __future__ import annotations

import pytest

from cglight.data import keys
from cglight.data.datamodule import CGDataModule
from cglight.errors import ConfigError
from tests.data.synthetic import write_synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # system a: 300 frames in 3 shards, system b: 100 frames; 80 % / 10 % / 10 % splits
    return write_synthetic(tmp_path_factory.mktemp("tf"), {"a": [120, 100, 80], "b": [100]}, beads=3)


def _frames(loader) -> set[tuple[int, int]]:
    return {(s, i) for b in loader for s, i in zip(b[keys.SYSTEM].tolist(), b[keys.FRAME_INDEX].tolist(), strict=True)}


def _module(data, **kw) -> CGDataModule:
    dm = CGDataModule(str(data), batch_size=8, num_workers=0, **kw)
    dm.setup()
    return dm


@pytest.mark.parametrize("frames", [1, 37, 250, 320])
def test_exactly_the_asked_frames_are_trained_on_and_none_of_validation_or_test(data, frames):
    full = _module(data)
    dm = _module(data, train_frames=frames, train_block_frames=10, seed=3)
    train = _frames(dm.train_dataloader())
    assert len(train) == frames and sum(s.frames for s in dm.splits.train) == frames
    assert train <= _frames(full.train_dataloader())
    assert not train & (_frames(dm.val_dataloader()) | _frames(dm.test_dataloader()))
    assert _frames(dm.val_dataloader()) == _frames(full.val_dataloader())
    assert _frames(dm.test_dataloader()) == _frames(full.test_dataloader())
    per_system = [sum(1 for s, _ in train if s == k) for k in (0, 1)]
    assert abs(per_system[0] - 3 * per_system[1]) <= 3  # each system its share: 240 : 80 training frames


def test_the_subset_is_set_by_the_seed_and_grows_by_blocks(data):
    def chosen(seed, frames, system="a"):
        dm = _module(data, train_frames=frames, train_block_frames=10, seed=seed, holdout_systems=["b"])
        return dm.splits.train, _frames(dm.train_dataloader())

    segments, frames = chosen(5, 60)
    assert chosen(5, 60)[1] == frames and chosen(6, 60)[1] != frames
    # contiguous blocks: whole blocks of 10 frames (the first trajectory's training frames start at 0)
    assert all(s.frames == 10 for s in segments)
    assert chosen(5, 20)[1] < frames < chosen(5, 150)[1]  # nested: a learning curve adds frames, keeps the old ones


def test_bad_counts_are_refused_naming_the_key(data):
    with pytest.raises(ConfigError, match=r"data.train_frames must be in \[1, 320\].*got 321"):
        _module(data, train_frames=321)
    with pytest.raises(ConfigError, match="data.train_frames must be >= 1"):
        CGDataModule(str(data), train_frames=0)
    with pytest.raises(ConfigError, match="data.train_block_frames must be >= 1"):
        CGDataModule(str(data), train_frames=5, train_block_frames=0)
