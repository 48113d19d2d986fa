from __future__ import annotations

import pytest
import torch

from cglight.data import keys
from cglight.errors import ConfigError
from cglight.losses import ModelOutput
from cglight.testing import LossPluginTests
from cglight_huber import HuberForceLoss


class TestHuberConformance(LossPluginTests):
    entry_point = "force_huber"

    @pytest.fixture
    def loss(self):
        return HuberForceLoss(delta=0.7)


def test_value_against_closed_form():
    f = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    model = torch.tensor([[[0.5, -2.0, 0.0], [3.0, 0.0, -0.25]]], dtype=torch.float64)
    out = ModelOutput(torch.zeros(1, dtype=torch.float64), model, model.clone())
    delta = 1.0
    per_component = [0.125, 1.5, 0.0, 2.5, 0.0, 0.03125]  # ½e² inside, δ(|e| − δ/2) outside
    result = HuberForceLoss(delta=delta)({keys.FORCES: f}, out)
    assert result.loss.item() == pytest.approx(sum(per_component) / 6, rel=1e-12)
    assert result.parts["outlier_fraction"].item() == pytest.approx(2 / 6)


def test_bad_delta():
    with pytest.raises(ConfigError, match="delta must be positive"):
        HuberForceLoss(delta=0.0)
