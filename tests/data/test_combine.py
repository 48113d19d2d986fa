"""``cglight data combine``: datasets of different systems joined into one, checked against the sources read directly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cglight.cli import main
from cglight.data import keys
from cglight.data.combine import SOURCES, combine_datasets
from cglight.data.dataset import ShardDataset
from cglight.data.datamodule import CGDataModule
from cglight.data.manifest import read_manifest
from cglight.data.shards import sha256
from cglight.errors import DatasetError
from tests.data.synthetic import write_synthetic


def _as_backbone(root: Path) -> Path:
    """A synthetic dataset labelled with the ``backbone`` map of the tiny dataset (so that the two may be combined)."""
    raw = json.loads((root / "manifest.json").read_text())
    for s in raw["systems"].values():
        s["mapping"] = "backbone"
    (root / "manifest.json").write_text(json.dumps(raw))
    return root


@pytest.fixture
def other(tmp_path):
    return _as_backbone(write_synthetic(tmp_path / "other", {"pep1": [6, 5], "pep2": [7]}, beads={"pep1": 8, "pep2": 11},
                                        temperature=300.0))


def _frames(root: Path) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """Every frame of a dataset, read directly, by (system, frame_index)."""
    ds = ShardDataset(root)
    names = list(ds.manifest.systems)
    out = {}
    for i in range(len(ds)):
        batch = ds.__getitems__([i])
        key = (names[int(batch[keys.SYSTEM][0])], int(batch[keys.FRAME_INDEX][0]))
        out[key] = {k: batch[k][0].numpy() for k in (keys.POS, keys.FORCES, keys.HESSIAN)}
    return out


def test_combined_dataset_reads_as_its_sources(tiny_dataset, other, tmp_path, capsys):
    out = tmp_path / "family"
    assert main(["data", "combine", str(out), str(tiny_dataset), str(other)]) == 0
    manifest = read_manifest(out)
    assert list(manifest.systems) == ["ala2", "pep1", "pep2"]
    assert manifest.systems["ala2"] == read_manifest(tiny_dataset).systems["ala2"]
    expected = {**_frames(tiny_dataset), **_frames(other)}
    combined = _frames(out)
    assert combined.keys() == expected.keys() and len(combined) == 40 + 18
    for key, arrays in expected.items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(combined[key][name], value, err_msg=f"{key} {name}")
    reference = manifest.systems["ala2"].reference
    for rel in (reference["topology"], reference["system"], reference["trajectory"]):
        assert sha256(out / rel) == sha256(tiny_dataset / rel)
    assert main(["data", "verify", str(out)]) == 0
    # the splits of the transfer study: pep2 held out whole, the others trained on in mixed batches
    dm = CGDataModule(str(out), batch_size=4, val_fraction=0.2, test_fraction=0.0, holdout_systems=["pep2"],
                      num_workers=0, mix_systems=True)
    dm.setup()
    names = list(dm.systems)
    assert {names[s.system] for s in dm.splits.test} == {"pep2"} and sum(s.frames for s in dm.splits.test) == 7
    assert {names[s.system] for s in dm.splits.train} == {"ala2", "pep1"}
    assert any(len(set(b[keys.SYSTEM].tolist())) > 1 for b in dm.train_dataloader())


def test_combine_refuses_a_system_name_twice(other, tmp_path):
    twin = _as_backbone(write_synthetic(tmp_path / "twin", {"pep1": [4]}, temperature=300.0))
    with pytest.raises(DatasetError, match=r"system 'pep1' is in both .*other and .*twin"):
        combine_datasets(tmp_path / "out", [other, twin])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key, value", [("temperature", 310.0), ("hessian", "none"), ("mapping", "ca")])
def test_combine_refuses_systems_that_differ(other, tmp_path, key, value):
    second = _as_backbone(write_synthetic(tmp_path / "second", {"pep3": [4]}, temperature=300.0))
    raw = json.loads((second / "manifest.json").read_text())
    raw["systems"]["pep3"][key] = value
    (second / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=rf"system 'pep3' of .*second has {key} {value!r}, but system 'pep1'"):
        combine_datasets(tmp_path / "out", [other, second])
    assert not (tmp_path / "out").exists()


def test_combine_refuses_a_shard_changed_since_its_manifest_and_writes_no_manifest(other, tmp_path):
    second = _as_backbone(write_synthetic(tmp_path / "second", {"pep3": [4]}, temperature=300.0))
    shard = second / "pep3/shard-00000.h5"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    shard.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"pep3/shard-00000.h5: sha256 does not match its manifest"):
        combine_datasets(tmp_path / "out", [other, second])
    assert not (tmp_path / "out/manifest.json").exists()


def test_an_interrupted_combine_is_completed_and_an_occupied_out_refused(other, tmp_path):
    second = _as_backbone(write_synthetic(tmp_path / "second", {"pep3": [4]}, temperature=300.0))
    out = combine_datasets(tmp_path / "out", [other, second])
    first = (out / "manifest.json").read_text()
    (out / "manifest.json").unlink()
    (out / "pep3/shard-00000.h5").unlink()  # as if killed before the last copy
    combine_datasets(out, [other, second])
    assert (out / "manifest.json").read_text() == first
    with pytest.raises(DatasetError, match="holds a combine of other datasets"):
        combine_datasets(out, [other])
    (out / SOURCES).unlink()
    with pytest.raises(DatasetError, match="already exists and holds other files"):
        combine_datasets(out, [other, second])


def test_combine_refuses_a_file_outside_its_system_folder(other, tmp_path):
    second = _as_backbone(write_synthetic(tmp_path / "second", {"pep3": [4]}, temperature=300.0))
    shutil.copy(second / "pep3/shard-00000.h5", second / "elsewhere.h5")
    raw = json.loads((second / "manifest.json").read_text())
    raw["shards"][0]["path"] = "elsewhere.h5"
    (second / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=r"lists file 'elsewhere.h5' outside its folder 'pep3/'"):
        combine_datasets(tmp_path / "out", [other, second])
