"""The model side: HVP by double back-propagation against float64 finite differences."""

from __future__ import annotations

import pytest
import torch

from cglight.data import keys
from cglight.errors import ConfigError
from cglight.training import BackboneConfig, CGPotential

TYPES = torch.tensor([3, 1, 2, 3, 1])


def _model(name: str, losses=None) -> CGPotential:
    torch.manual_seed(0)
    cfg = BackboneConfig(name=name, embedding_dimension=16, num_layers=2, num_rbf=8, cutoff_upper=8.0, num_heads=2)
    return CGPotential(backbone=cfg, losses=losses or {"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 2}}).double()


def _pos(frames: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    chain = torch.arange(5, dtype=torch.float64)[:, None] * torch.tensor([1.4, 0.5, 0.0], dtype=torch.float64)
    return chain + 0.3 * torch.randn(frames, 5, 3, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", ["graph-network", "equivariant-transformer"])
@pytest.mark.parametrize("train", [True, False])
def test_hvp_equals_central_difference_of_forces(name, train):
    model = _model(name, {"force": {"weight": 1.0}}).train(train)
    pos = _pos()
    v = torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    eps = 1e-5
    fd = (model.forces(pos - eps * v, TYPES) - model.forces(pos + eps * v, TYPES)) / (2 * eps)
    hv = model.hvp(pos, TYPES, v)
    assert torch.allclose(hv, fd, rtol=1e-6, atol=1e-7 * fd.abs().max())
    assert hv.abs().max() > 1e-3  # not trivially zero


def test_forces_are_minus_gradient_of_energy():
    model = _model("graph-network").eval()
    pos = _pos(1)[0]
    d = torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    eps = 1e-6
    de = (model.energy(pos + eps * d, TYPES) - model.energy(pos - eps * d, TYPES)) / (2 * eps)
    f = model.forces(pos, TYPES)
    assert torch.allclose(-(f * d).sum(), de, rtol=1e-7)
    assert model.energy(pos, TYPES).shape == ()
    assert model.energy(_pos(3), TYPES).shape == (3,)


def test_parameter_gradient_of_hvp_loss_is_third_order_exact():
    """d/dθ of the hvp loss (third-order autograd) against a float64 finite difference.

    (``hvp`` rather than ``hvp_cov``: the latter's target holds the detached model forces on
    purpose, so a finite difference in θ would also move its target.)"""
    model = _model("graph-network", {"hvp": {"weight": 1.0, "probes": 1, "normalize": False}}).train()
    pos = _pos(3)
    g = torch.Generator().manual_seed(5)
    batch = {
        keys.POS: pos,
        keys.BEAD_TYPES: TYPES.expand(3, 5),
        keys.FORCES: torch.randn(3, 5, 3, generator=g, dtype=torch.float64),
        keys.HESSIAN: torch.randn(3, 15, 15, generator=g, dtype=torch.float64),
        keys.BETA: torch.full((3,), 1.7, dtype=torch.float64),
    }

    def loss() -> torch.Tensor:
        torch.manual_seed(11)  # the same probes every call
        out = model.evaluate(batch[keys.POS], batch[keys.BEAD_TYPES], create_graph=True)
        return model.objective(batch, out)[0]

    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss(), params, allow_unused=True)
    checked = 0
    for p, gp in list(zip(params, grads, strict=True))[::4]:
        if gp is None or gp.abs().max() == 0:
            continue
        i = int(gp.abs().flatten().argmax())
        flat = p.data.view(-1)
        h = 1e-6
        flat[i] += h
        up = loss().item()
        flat[i] -= 2 * h
        down = loss().item()
        flat[i] += h
        fd = (up - down) / (2 * h)
        assert abs(gp.flatten()[i].item() - fd) <= 1e-5 * abs(fd) + 1e-8, (p.shape, gp.flatten()[i].item(), fd)
        checked += 1
    assert checked >= 5


@pytest.mark.slow  # compiles TensorNet's float64 Warp kernels on first use (~15 s), fast afterwards
def test_tensornet_with_exact_hvp_loss_is_refused_by_the_probe():
    with pytest.raises(ConfigError, match="tensornet.*hvp_cov.*order 3.*autograd failed.*finite_difference"):
        CGPotential(backbone=BackboneConfig(name="tensornet", embedding_dimension=8, num_layers=1),
                    losses={"force": {}, "hvp_cov": {"weight": 0.1, "method": "autograd"}})


def test_tensornet_with_force_alone_is_allowed():
    model = CGPotential(backbone=BackboneConfig(name="tensornet", embedding_dimension=8, num_layers=1), losses={"force": {}})
    assert model.energy(_pos(2).float(), TYPES).shape == (2,)


def test_bad_backbone_and_types():
    with pytest.raises(ConfigError, match="unknown backbone 'schnet'.*graph-network.*dotted class path"):
        CGPotential(backbone=BackboneConfig(name="schnet"))
    with pytest.raises(ConfigError, match="cutoff"):
        CGPotential(backbone={"cutoff_upper": -1.0})
    with pytest.raises(ConfigError, match="unknown key.*cutof"):
        CGPotential(backbone={"cutof": 5.0})
    model = _model("graph-network").eval()
    with pytest.raises(ValueError, match="max_z"):
        model.energy(_pos(1), torch.tensor([3, 1, 2, 3, 99]))
