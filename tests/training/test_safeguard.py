"""The runaway guard stops training with a checkpoint and a message naming the term and step."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from cglight.errors import TrainingDivergedError
from cglight.losses.base import LossResult
from cglight.losses.force import ForceLoss
from cglight.training import BackboneConfig, CGPotential
from cglight.training.last_checkpoint import LastCheckpoint
from cglight.training.safeguard import RunawayGuard
from cglight.testing import synthetic_batch


class NaNAfter(ForceLoss):
    """A plugin's force loss that turns NaN from training step ``step`` on (a diverging plugin)."""

    def __init__(self, step: int = 6, normalize: bool = True) -> None:
        super().__init__(normalize=normalize)
        self.step, self.calls = step, 0

    def forward(self, batch, output) -> LossResult:
        result = super().forward(batch, output)
        self.calls += self.training
        return LossResult(result.loss * float("nan")) if self.training and self.calls > self.step else result


def _fit(tmp_path, guard: RunawayGuard, steps: int = 4, losses=None, epochs: int = 1):
    torch.manual_seed(0)
    batch = {k: (v.float() if v.is_floating_point() else v) for k, v in synthetic_batch(frames=4, beads=5).items()}
    model = CGPotential(
        backbone=BackboneConfig(embedding_dimension=8, num_layers=1, num_rbf=8, cutoff_upper=5.0, max_z=8),
        losses=losses or {"force": {"weight": 1.0}, "hvp_cov": {"weight": 1.0, "probes": 1}},
    )
    system = SimpleNamespace(temperature=300.0, bead_types=batch["bead_types"][0].tolist(), bonds=[[i, i + 1] for i in range(4)])
    model.fit_to_data([batch], {"synthetic": system})  # the explicit hand-over (a plain DataLoader has none)
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=[guard, LastCheckpoint()], inference_mode=False)
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader([batch] * steps, batch_size=None))
    return trainer


def _finite(path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()
               and not k.endswith(".scale"))


def test_runaway_stops_with_checkpoint_naming_term_and_step(tmp_path):
    # a curvature limit no model meets: the guard must fire after `patience` steps
    with pytest.raises(TrainingDivergedError, match=r"step 2: loss 'hvp_cov' ran away .*model's HVP mean square") as info:
        _fit(tmp_path, RunawayGuard(max_curvature_ratio=1e-30, patience=2))
    ckpt = tmp_path / "runaway-step2.ckpt"
    assert ckpt.is_file() and str(ckpt) in str(info.value) and _finite(ckpt)
    assert CGPotential.load_from_checkpoint(ckpt).objective.calibrated
    # its advice fits hvp_cov with the default (centered) estimator: weight and schedule, no estimator to change
    assert "model.losses.hvp_cov.weight" in str(info.value) and "estimator" not in str(info.value)


def test_runaway_advice_names_the_estimator_only_where_it_applies(tmp_path):
    losses = {"force": {"weight": 1.0}, "hvp_cov": {"weight": 1.0, "probes": 1, "estimator": "uncentered"}}
    with pytest.raises(TrainingDivergedError, match="model.losses.hvp_cov.estimator: centered"):
        _fit(tmp_path, RunawayGuard(max_curvature_ratio=1e-30, patience=2), losses=losses)


def test_nan_weights_are_not_saved_and_the_message_points_to_the_last_finite_checkpoint(tmp_path, register_loss):
    register_loss("nanny", f"{__name__}:NaNAfter")
    with pytest.raises(TrainingDivergedError) as info:
        _fit(tmp_path, RunawayGuard(), steps=4, epochs=3, losses={"nanny": {"weight": 1.0, "step": 6}})
    message = str(info.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert "step 7: loss 'nanny' ran away (its normalised loss is nan)" in message  # the 7th step (6) was NaN
    assert not list(tmp_path.rglob("runaway-*.ckpt"))  # no file of NaN weights
    assert f"none was saved; the run's last checkpoint is {last} (step 4, before the loss turned non-finite)" in message
    assert torch.load(last, weights_only=True)["global_step"] == 4 and _finite(last)
    assert "estimator" not in message and "model.losses.nanny.weight" in message and "model.lr" in message


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
