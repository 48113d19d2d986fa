"""The runaway guard stops training with a checkpoint and a message naming the term and step."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from cglight.errors import TrainingDivergedError
from cglight.model import BackboneConfig, CGPotential
from cglight.model.safeguard import RunawayGuard
from cglight.testing import synthetic_batch


def _fit(tmp_path, guard: RunawayGuard, steps: int = 4):
    torch.manual_seed(0)
    batch = {k: (v.float() if v.is_floating_point() else v) for k, v in synthetic_batch(frames=4, beads=5).items()}
    model = CGPotential(
        backbone=BackboneConfig(embedding_dimension=8, num_layers=1, num_rbf=8, cutoff_upper=5.0, max_z=8),
        losses={"force": {"weight": 1.0}, "hvp_cov": {"weight": 1.0, "probes": 1}},
    )
    system = SimpleNamespace(temperature=300.0, bead_types=batch["bead_types"][0].tolist(), bonds=[[i, i + 1] for i in range(4)])
    model.fit_to_data([batch], {"synthetic": system})  # the explicit hand-over (a plain DataLoader has none)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, callbacks=[guard], inference_mode=False)
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader([batch] * steps, batch_size=None))
    return trainer


def test_runaway_stops_with_checkpoint_naming_term_and_step(tmp_path):
    # a curvature limit no model meets: the guard must fire after `patience` steps
    with pytest.raises(TrainingDivergedError, match=r"step 2: loss 'hvp_cov' ran away .*model's HVP mean square") as info:
        _fit(tmp_path, RunawayGuard(max_curvature_ratio=1e-30, patience=2))
    ckpt = tmp_path / "runaway-step2.ckpt"
    assert ckpt.is_file() and str(ckpt) in str(info.value)
    assert CGPotential.load_from_checkpoint(ckpt).objective.calibrated


def test_guard_quiet_on_a_healthy_run(tmp_path):
    trainer = _fit(tmp_path, RunawayGuard(), steps=3)
    assert trainer.global_step == 3 and not list(tmp_path.glob("runaway-*.ckpt"))


def test_guard_rules_per_term():
    from types import SimpleNamespace

    from cglight.losses import Objective

    objective = Objective({"force": {"normalize": False}, "hvp_cov": {}})
    objective.terms["hvp_cov"].scale.fill_(4.0)
    module = SimpleNamespace(objective=objective)
    guard = RunawayGuard(patience=2)
    healthy = {"train/force": torch.tensor(5e3), "train/hvp_cov": torch.tensor(0.9), "train/hvp_cov/model_sq": torch.tensor(0.1)}
    assert guard._check(module, healthy) is None and guard._check(module, healthy) is None  # raw force in physical units
    assert guard._check(module, {**healthy, "train/force": torch.tensor(float("nan"))})[0] == "force"  # at once
    feedback = {**healthy, "train/hvp_cov/model_sq": torch.tensor(8.0)}  # 2× the calibrated scale
    assert guard._check(module, feedback) is None  # patience
    name, reason = guard._check(module, feedback)
    assert name == "hvp_cov" and "2× the target's calibrated second moment" in reason
