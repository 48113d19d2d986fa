"""The hand-over from data to model: ``CGPotential.fit_to_data``, called by ``on_fit_start`` from a
DataModule's ``calibration_batches``/``systems`` or by the user; training frames only; no refit on
resume; and a checkpoint that restores ``CGEnergy`` without Lightning."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import h5py
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from cglight.data import CGDataModule, ShardDataset, keys
from cglight.data.shards import sha256
from cglight.errors import ConfigError
from cglight.training import CGPotential

PRIORS = {"bonds": {}, "angles": {}, "dihedrals": {}, "repulsion": {}}
LOSSES = {"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 1}}


def _model(priors=PRIORS) -> CGPotential:
    torch.manual_seed(0)
    return CGPotential(backbone={"embedding_dimension": 8, "num_layers": 1, "num_rbf": 8}, priors=priors, losses=LOSSES)


def _trainer(**kw) -> L.Trainer:
    return L.Trainer(max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, inference_mode=False, accelerator="cpu", **kw)


def _fitted_state(model: CGPotential) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith("core.priors.") or k.endswith(".scale")}


@pytest.fixture
def corrupted_validation(tiny_dataset, tmp_path):
    """A copy of the tiny dataset whose held-out frames (validation 32–35 and test 36–39, the last
    20%, in the last shard) are wildly different: positions ×2, forces and Hessians ×50."""
    root = tmp_path / "corrupted"
    shutil.copytree(tiny_dataset, root)
    manifest = json.loads((root / "manifest.json").read_text())
    last = manifest["shards"][-1]
    with h5py.File(root / last["path"], "r+") as f:
        n = f[keys.POS].shape[0]
        for name, factor in ((keys.POS, 2.0), (keys.FORCES, 50.0), (keys.HESSIAN, 50.0)):
            f[name][n - 8 :] = f[name][n - 8 :] * factor
    last["sha256"] = sha256(root / last["path"])  # damaged values behind a valid checksum (checksums are verified)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_calibration_and_priors_read_training_frames_only(tiny_dataset, corrupted_validation):
    fitted = []
    for root in (tiny_dataset, corrupted_validation):
        model = _model()
        _trainer().fit(model, datamodule=CGDataModule(str(root), batch_size=8))
        fitted.append(_fitted_state(model))
    assert fitted[0].keys() == fitted[1].keys() and len(fitted[0]) == 10  # 4 priors × (keys, params) + 2 scales
    for name, value in fitted[0].items():
        assert torch.equal(value, fitted[1][name]), name
    # the corruption is visible to a fit that does read validation frames
    dm = CGDataModule(str(corrupted_validation), batch_size=8)
    leaky = _model({kind: {"min_samples": 1} for kind in PRIORS})  # 4 validation frames
    leaky.fit_to_data(dm.val_dataloader(), dm.systems)
    moved = _fitted_state(leaky)
    assert not torch.allclose(moved["core.priors.bonds.params"], fitted[0]["core.priors.bonds.params"], rtol=0.1)
    assert moved["objective.terms.force.scale"] > 100 * fitted[0]["objective.terms.force.scale"]


def test_own_datamodule_needs_an_explicit_hand_over(tiny_dataset):
    class Plain(L.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(range(8), batch_size=None, collate_fn=lambda i: ShardDataset(tiny_dataset).__getitems__(list(range(8))))

    model = _model()
    with pytest.raises(ConfigError, match=r"call model.fit_to_data\(batches_of_training_frames, systems\) before trainer.fit"):
        _trainer().fit(model, datamodule=Plain())
    dm = CGDataModule(str(tiny_dataset), batch_size=8)
    model.fit_to_data(dm.calibration_batches(64), dm.systems)
    assert model.fitted_to_data and model.core.systems["ala2"]["bonds"] == [[0, 1], [1, 2], [2, 3], [3, 4]]
    _trainer().fit(model, datamodule=Plain())


def test_a_fitted_model_is_not_refitted(tiny_dataset, corrupted_validation):
    model = _model()
    dm = CGDataModule(str(tiny_dataset), batch_size=8)
    model.fit_to_data(dm.calibration_batches(64), dm.systems)
    before = _fitted_state(model)
    other = CGDataModule(str(corrupted_validation), batch_size=8)
    model.fit_to_data(other.val_dataloader(), other.systems)  # what a resumed run would see: kept
    for name, value in _fitted_state(model).items():
        assert torch.equal(value, before[name]), name


def test_bead_types_beyond_max_z_are_refused_at_hand_over(tiny_dataset):
    model = CGPotential(backbone={"embedding_dimension": 8, "num_layers": 1, "max_z": 3})
    dm = CGDataModule(str(tiny_dataset), batch_size=8)
    with pytest.raises(ConfigError, match="system 'ala2' has bead type 3 but model.backbone.max_z is 3"):
        model.fit_to_data(dm.calibration_batches(8), dm.systems)


@pytest.mark.slow
def test_checkpoint_restores_the_energy_core_without_lightning(tiny_dataset, tmp_path):
    model = _model()
    trainer = _trainer()
    trainer.fit(model, datamodule=CGDataModule(str(tiny_dataset), batch_size=8))
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    batch = ShardDataset(tiny_dataset).__getitems__([0, 1, 2])
    torch.save({"pos": batch[keys.POS], "types": batch[keys.BEAD_TYPES][0]}, tmp_path / "frames.pt")
    script = (
        "import sys, torch\n"
        "from cglight.energy import CGEnergy\n"
        f"e = CGEnergy.from_checkpoint({str(ckpt)!r})\n"
        f"x = torch.load({str(tmp_path / 'frames.pt')!r})\n"
        "assert not any(m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning')) for m in sys.modules), 'Lightning was imported'\n"
        "print(repr(e.energy(x['pos'], x['types']).tolist()))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    restored = eval(r.stdout.strip().splitlines()[-1])
    expected = model.eval().energy(batch[keys.POS], batch[keys.BEAD_TYPES][0]).tolist()
    assert restored == expected
    loaded = CGPotential.load_from_checkpoint(ckpt).eval()
    assert loaded.energy(batch[keys.POS], batch[keys.BEAD_TYPES][0]).tolist() == expected
    assert set(loaded.energy_terms(batch[keys.POS], batch[keys.BEAD_TYPES][0])) == {"bonds", "angles", "dihedrals", "repulsion", "network"}


def test_validating_an_unfitted_model_says_what_to_do(tiny_dataset):
    with pytest.raises(ConfigError, match=r"validation needs a model fitted to its training data.*--ckpt_path"):
        L.Trainer(logger=False, enable_progress_bar=False, inference_mode=False, accelerator="cpu").validate(
            _model(), datamodule=CGDataModule(str(tiny_dataset), batch_size=8))
