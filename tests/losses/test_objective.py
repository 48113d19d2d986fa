from __future__ import annotations

import pytest
import torch

from cglight.data import keys
from cglight.errors import ConfigError
from cglight.losses import Objective
from cglight.testing import PairPotential, synthetic_batch


def test_total_is_weighted_sum_of_normalised_terms():
    batch = synthetic_batch(frames=6)
    objective = Objective({"force": {"weight": 2.0}, "hvp": {"weight": 0.5, "probes": 2}}).double()
    objective.calibrate([batch])
    f = batch[keys.FORCES]
    h = batch[keys.HESSIAN]
    assert objective.terms["force"].scale.item() == pytest.approx(f.pow(2).mean().item())
    assert objective.terms["hvp"].scale.item() == pytest.approx((h.pow(2).sum((1, 2)) / 15).mean().item())
    out = PairPotential(5).output(batch[keys.POS])
    torch.manual_seed(0)
    total, logs = objective(batch, out)
    torch.manual_seed(0)
    raw_force = (out.forces - f).pow(2).mean()
    assert logs["force_raw"].item() == pytest.approx(raw_force.item())
    expected = 2.0 * logs["force_raw"] / objective.terms["force"].scale + 0.5 * logs["hvp_raw"] / objective.terms["hvp"].scale
    assert total.item() == pytest.approx(expected.item())
    assert logs["force"].item() == pytest.approx((raw_force / f.pow(2).mean()).item())


def test_zero_model_scores_one_on_force():
    """Normalised loss 1.0 means 'as bad as predicting zero forces'."""
    batch = synthetic_batch(frames=6)
    objective = Objective({"force": {}}).double()
    objective.calibrate([batch])
    pot = PairPotential(5)
    out = pot.output(batch[keys.POS])
    out.forces = torch.zeros_like(out.forces)
    assert objective(batch, out)[1]["force"].item() == pytest.approx(1.0)


@pytest.mark.parametrize("weight", [-1.0, float("nan"), "heavy", True])
def test_bad_weights(weight):
    with pytest.raises(ConfigError, match="model.losses.force.weight"):
        Objective({"force": {"weight": weight}})


def test_uncalibrated_and_empty():
    with pytest.raises(ConfigError, match="must map loss names"):
        Objective({})
    objective = Objective({"force": {}}).double()
    batch = synthetic_batch()
    with pytest.raises(RuntimeError, match="not calibrated"):
        objective(batch, PairPotential(5).output(batch[keys.POS]))
    assert Objective({"force": {"normalize": False}}).calibrated


def test_hvp_cov_without_force_term_warns():
    with pytest.warns(UserWarning, match=r"\['hvp_cov'\] use the model's own forces"):
        Objective({"hvp_cov": {"weight": 1.0}})


def test_weight_schedule_warmup_then_linear_ramp_training_only():
    batch = synthetic_batch()
    potential = PairPotential(5)
    objective = Objective({"force": {"weight": 1.0}, "hvp": {"weight": 2.0, "warmup_steps": 2, "ramp_steps": 3, "normalize": False}}).double()
    objective.calibrate([batch])
    force_only = (potential.output(batch[keys.POS]).forces - batch[keys.FORCES]).pow(2).mean() / objective.terms["force"].scale
    factors = []
    for step in range(7):
        objective.set_step(step)
        torch.manual_seed(0)
        total, logs = objective(batch, potential.output(batch[keys.POS]))
        if step < 2:
            assert "hvp" not in logs  # warming up: not computed
            assert float(total) == pytest.approx(float(force_only))
            factors.append(0.0)
        else:
            factors.append(float(logs["hvp/weight"]) / 2.0)
            assert float(total) == pytest.approx(float(force_only + logs["hvp/weight"] * logs["hvp"]))
    assert factors == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1.0, 1.0])
    objective.eval()  # evaluation: full weights whatever the step
    objective.set_step(0)
    _, logs = objective(batch, potential.output(batch[keys.POS]))
    assert float(logs["hvp/weight"]) == 2.0
    with pytest.raises(ConfigError, match="hvp.warmup_steps must be an integer >= 0"):
        Objective({"hvp": {"warmup_steps": -1}})
