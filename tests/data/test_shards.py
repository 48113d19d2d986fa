"""Shard format: validation errors name the file, key or frame; reads return the stored values."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from cglight.atomic import PARTIAL
from cglight.data import CGDataModule, ShardDataset, keys, read_manifest
from cglight.data.shards import write_shard
from cglight.errors import DatasetError


@pytest.fixture
def copy(tiny_dataset, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(tiny_dataset, dst)
    return dst


def test_manifest_matches_the_contract(tiny_dataset):
    raw = json.loads((tiny_dataset / "manifest.json").read_text())
    assert raw["format"] == "cglight-shards" and raw["version"] == 1
    assert raw["units"] == {"length": "angstrom", "energy": "kcal/mol"}
    s = raw["systems"]["ala2"]
    assert s["bead_names"] == ["C", "N", "CA", "C", "N"] and s["mapping"] == "backbone" and s["hessian"] == "full"
    assert s["bonds"] == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert len(s["map"]["atoms"]) == 5 and all(w == [1.0] for w in s["map"]["weights"])
    assert [sh["frames"] for sh in raw["shards"]] == [16, 16, 8]
    for sh in raw["shards"]:
        with h5py.File(tiny_dataset / sh["path"], "r") as f:
            assert f["pos"].dtype == np.float32 and f["hessian"].shape == (sh["frames"], 15, 15)
            assert np.issubdtype(f["frame_index"].dtype, np.integer)
    assert not list(tiny_dataset.rglob(f"*{PARTIAL}*")) and not list(tiny_dataset.parent.glob(f"*{PARTIAL}*"))


def test_batches_return_stored_values_in_requested_order(tiny_dataset):
    ds = ShardDataset(tiny_dataset, verify_checksums=True)
    assert len(ds) == 40
    idx = [33, 2, 17, 2, 15]
    batch = ds.__getitems__(idx)
    with h5py.File(tiny_dataset / "ala2/shard-00001.h5", "r") as f:
        assert torch.equal(batch[keys.FORCES][2], torch.from_numpy(f["forces"][1]))
        assert torch.equal(batch[keys.HESSIAN][2], torch.from_numpy(f["hessian"][1]))
    assert batch[keys.FRAME_INDEX].tolist() == idx
    assert batch[keys.BEAD_TYPES].shape == (5, 5)
    assert torch.allclose(batch[keys.BETA], torch.tensor(1 / (0.0019872041 * 300.0)))


def test_datamodule_holds_out_the_end_of_the_trajectory(tiny_dataset):
    dm = CGDataModule(str(tiny_dataset), batch_size=8, val_fraction=0.25, test_fraction=0.1, num_workers=0)
    dm.setup()

    def frames(loader):
        return sorted(i for b in loader for i in b[keys.FRAME_INDEX].tolist())

    assert frames(dm.train_dataloader()) == list(range(26))
    assert frames(dm.val_dataloader()) == list(range(26, 36))
    assert frames(dm.test_dataloader()) == list(range(36, 40))


def test_missing_manifest(tmp_path):
    with pytest.raises(DatasetError, match=r"has no manifest\.json.*cglight prepare"):
        ShardDataset(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        ShardDataset(tmp_path / "nope")


def test_malformed_manifest_names_key(copy):
    raw = json.loads((copy / "manifest.json").read_text())
    del raw["systems"]["ala2"]["temperature"]
    (copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=r"manifest\.json: system 'ala2': missing key 'temperature'"):
        read_manifest(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_manifest(copy)


def test_shard_shape_disagreeing_with_manifest(copy):
    raw = json.loads((copy / "manifest.json").read_text())
    raw["shards"][1]["frames"] = 17
    (copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=r"shard-00001\.h5: dataset 'pos' has shape \(16, 5, 3\), the manifest implies \(17, 5, 3\)"):
        ShardDataset(copy)


def test_non_finite_value_names_file_and_frame(copy):
    with h5py.File(copy / "ala2/shard-00002.h5", "r+") as f:
        f["forces"][3, 1, 0] = np.nan
    ds = ShardDataset(copy, verify_checksums=False)
    with pytest.raises(DatasetError, match=r"shard-00002\.h5: dataset 'forces' holds NaN or inf at frame 3"):
        ds.__getitems__([32, 35])
    with pytest.raises(DatasetError, match="sha256"):
        ShardDataset(copy)


def test_write_shard_refuses_nan_and_leaves_nothing(tmp_path):
    arrays = {keys.POS: np.zeros((2, 3, 3)), keys.FORCES: np.full((2, 3, 3), np.nan), keys.FRAME_INDEX: np.arange(2)}
    with pytest.raises(DatasetError, match="non-finite 'forces' at frame 0"):
        write_shard(tmp_path / "s.h5", arrays)
    assert list(tmp_path.iterdir()) == []


def test_probes_mode_dataset_written_by_hand(tmp_path):
    """A dataset in 'probes' mode, written by a tool outside cglight from the public contract."""
    from cglight.data import Manifest, ShardInfo, SystemInfo, write_manifest

    rng = np.random.default_rng(0)
    f, n, k = 6, 3, 2
    arrays = {
        keys.POS: rng.normal(size=(f, n, 3)), keys.FORCES: rng.normal(size=(f, n, 3)),
        keys.PROBES: rng.choice([-1.0, 1.0], size=(f, k, 3 * n)), keys.HVP: rng.normal(size=(f, k, 3 * n)),
        keys.FRAME_INDEX: np.arange(f),
    }
    digest = write_shard(tmp_path / "toy/shard-00000.h5", arrays)
    system = SystemInfo(350.0, [1, 2, 1], ["A", "B", "A"], [[0, 1], [1, 2]], "custom", "probes")
    write_manifest(tmp_path, Manifest({"toy": system}, [ShardInfo("toy/shard-00000.h5", "toy", f, digest)]))
    batch = ShardDataset(tmp_path, verify_checksums=True).__getitems__([4, 1])
    assert keys.HESSIAN not in batch
    assert batch[keys.PROBES].shape == (2, k, 9)
    assert torch.allclose(batch[keys.HVP][0], torch.from_numpy(arrays[keys.HVP][4]).float())
    assert torch.allclose(batch[keys.BETA], torch.tensor(1 / (0.0019872041 * 350.0)))
