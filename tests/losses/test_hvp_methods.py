"""The finite-difference HVP method against the exact one, and the backbones it opens up."""

from __future__ import annotations

import pytest
import torch

from cglight.data import keys
from cglight.errors import ConfigError
from cglight.losses import CovarianceHVPLoss, HVPLoss, Objective
from cglight.testing import PairPotential, synthetic_batch


def _exact_and_fd(eps: float, central: bool):
    batch = synthetic_batch(frames=3, beads=5, seed=1)
    potential = PairPotential(5, seed=2)
    out = potential.output(batch[keys.POS])
    v = torch.randn(4, *out.pos.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = torch.stack([out.hvp(vk) for vk in v])
    return exact, out.hvp_fd(v, eps, central=central)


@pytest.mark.parametrize(("central", "order"), [(False, 1), (True, 2)])
def test_fd_hvp_converges_to_exact_at_its_order(central, order):
    """Halving ε divides the error by 2^order (float64, where round-off is negligible)."""
    errors = []
    for eps in (4e-3, 2e-3, 1e-3):
        exact, fd = _exact_and_fd(eps, central)
        errors.append(float((fd - exact).detach().norm() / exact.detach().norm()))
    assert errors[0] < 0.05
    for coarse, fine in zip(errors, errors[1:]):
        assert coarse / fine == pytest.approx(2.0**order, rel=0.1), errors


def test_fd_loss_matches_exact_loss_and_needs_second_order_only():
    batch = synthetic_batch(frames=4, beads=5, seed=3)
    potential = PairPotential(5)
    exact = CovarianceHVPLoss(probes=3, method="autograd").double()
    fd = CovarianceHVPLoss(probes=3, method="finite_difference", fd_eps=1e-4, fd_central=True).double()
    assert (exact.autograd_order, fd.autograd_order) == (3, 2)
    values = []
    for loss in (exact, fd):
        torch.manual_seed(0)  # the same probes
        values.append(loss(batch, potential.output(batch[keys.POS])).loss)
    assert float(values[1]) == pytest.approx(float(values[0]), rel=1e-6)
    objective = Objective({"force": {}, "hvp": {"method": "finite_difference"}})
    assert objective.autograd_order == 2
    assert Objective({"force": {}, "hvp": {"method": "autograd"}}).autograd_order == 3


def test_bad_method_options_are_named():
    with pytest.raises(ConfigError, match="method must be one of"):
        HVPLoss(method="fd")
    with pytest.raises(ConfigError, match="fd_eps"):
        CovarianceHVPLoss(fd_eps=0.0)


def _tensornet(method: str):
    from cglight.training import BackboneConfig, CGPotential

    config = BackboneConfig(name="tensornet", embedding_dimension=16, num_layers=1, num_rbf=8, cutoff_upper=5.0, max_z=8)
    losses = {"force": {"weight": 1.0}, "hvp_cov": {"weight": 1.0, "probes": 2, "method": method}}
    return CGPotential(backbone=config, losses=losses)


def test_tensornet_refused_for_exact_hvp_with_the_reason():
    with pytest.raises(ConfigError, match="tensornet.*autograd failed.*no autograd formula.*method: finite_difference"):
        _tensornet("autograd")


def test_tensornet_trains_with_fd_hvp_cov():
    torch.manual_seed(0)
    model = _tensornet("finite_difference").train()
    batch = {k: (v.float() if v.is_floating_point() else v) for k, v in synthetic_batch(frames=4, beads=5).items()}
    model.objective.calibrate([batch])
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        out = model.evaluate(batch[keys.POS], batch[keys.BEAD_TYPES])
        loss, logs = model.objective(batch, out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss) and torch.isfinite(logs["hvp_cov"])
    moved = [not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)]
    assert sum(moved) > len(moved) // 2
