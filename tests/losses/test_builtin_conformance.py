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
    same_random_numbers_in_float32 = False  # torch.randn differs between float32 and float64
    @pytest.fixture
    def loss(self):
        return HVPLoss(probes=2, probe_kind="gaussian")


class TestHVPCov(LossPluginTests):
    entry_point = "hvp_cov"
    target_depends_on_model = True

    @pytest.fixture
    def loss(self):
        return CovarianceHVPLoss(probes=3)


def test_stored_probes_give_the_same_loss_as_the_full_hessian():
    """A ``hessian: probes`` dataset (K stored probes and their HVPs) is matched exactly like the full matrix."""
    import torch

    from cglight.data import keys
    from cglight.testing import PairPotential, synthetic_batch

    batch = synthetic_batch(frames=3)
    pot = PairPotential(5)
    out = pot.output(batch[keys.POS])
    g = torch.Generator().manual_seed(3)
    probes = (torch.randint(0, 2, (3, 2, 15), generator=g) * 2 - 1).double()
    stored = {k: v for k, v in batch.items() if k != keys.HESSIAN}
    stored[keys.PROBES] = probes
    stored[keys.HVP] = torch.einsum("bij,bkj->bki", batch[keys.HESSIAN], probes)
    for cls in (HVPLoss, CovarianceHVPLoss):
        loss = cls(probes=7)  # ignored: the stored probes are used
        value = loss(stored, out).loss
        expected = []
        for k in range(2):
            v = probes[:, k]
            target = stored[keys.HVP][:, k]
            if cls is CovarianceHVPLoss:
                f, m = batch[keys.FORCES].flatten(1), out.forces.detach().flatten(1)
                beta = batch[keys.BETA][:, None]
                target = target - beta * ((f * v).sum(1, keepdim=True) * f - (m * v).sum(1, keepdim=True) * m)
            model_hv = out.hvp(v.reshape(3, 5, 3)).flatten(1)
            expected.append((model_hv - target).pow(2).mean())
        assert torch.allclose(value, torch.stack(expected).mean(), rtol=1e-12)
