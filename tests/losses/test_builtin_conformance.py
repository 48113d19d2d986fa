"""The built-in losses pass the same conformance suite that plugins reuse."""

from __future__ import annotations

import pytest

from cglight.losses import CovarianceHVPLoss, ForceLoss, HVPLoss
from cglight.testing import LossPluginTests


class TestForce(LossPluginTests):
    entry_point = "force"

    @pytest.fixture
    def loss(self):
        return ForceLoss()


class TestHVP(LossPluginTests):
    entry_point = "hvp"

    @pytest.fixture
    def loss(self):
        return HVPLoss(probes=3)


class TestHVPGaussianProbes(LossPluginTests):
    @pytest.fixture
    def loss(self):
        return HVPLoss(probes=2, probe_kind="gaussian")


class TestHVPCov(LossPluginTests):
    entry_point = "hvp_cov"
    target_depends_on_model = True

    @pytest.fixture
    def loss(self):
        return CovarianceHVPLoss(probes=3)
