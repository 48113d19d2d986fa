"""Built-in backbones through the conformance kit; the start-up autograd probe; dotted-path backbones."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from cglight.energy import BackboneConfig, CGEnergy, build_backbone
from cglight.energy.autograd_probe import autograd_order_error
from cglight.errors import ConfigError
from cglight.model import CGPotential
from cglight.testing import BackboneTests


def _config(name: str) -> BackboneConfig:
    return BackboneConfig(name=name, embedding_dimension=16, num_layers=2, num_rbf=8, num_heads=2, max_z=8)


class TestGraphNetwork(BackboneTests):
    @pytest.fixture
    def backbone(self):
        torch.manual_seed(0)
        return build_backbone(_config("graph-network"))


class TestEquivariantTransformer(BackboneTests):
    @pytest.fixture
    def backbone(self):
        torch.manual_seed(0)
        return build_backbone(_config("equivariant-transformer"))


@pytest.mark.slow  # compiles TensorNet's Warp kernels on first use
class TestTensorNet(BackboneTests):
    @pytest.fixture
    def backbone(self):
        torch.manual_seed(0)
        return build_backbone(BackboneConfig(name="tensornet", embedding_dimension=8, num_layers=1, num_rbf=8, max_z=8))


class PairSprings(nn.Module):
    """A user backbone by dotted path: ``Σ_{i<j} k_{z_i z_j} (|r_i − r_j| − d)²`` per frame."""

    def __init__(self, types: int = 8, length: float = 1.5) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.rand(types, types) + 0.5)
        self.length = length

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor, n_graphs: int) -> Tensor:
        i, j = torch.triu_indices(len(z), len(z), 1)
        same = batch[i] == batch[j]
        i, j = i[same], j[same]
        e = self.k[z[i], z[j]] * ((pos[i] - pos[j]).norm(dim=-1) - self.length).pow(2)
        return torch.zeros(n_graphs, dtype=pos.dtype).index_add(0, batch[i], e)


class TestDottedPathBackbone(BackboneTests):
    @pytest.fixture
    def backbone(self):
        torch.manual_seed(0)
        return build_backbone(BackboneConfig(name=f"{__name__}.PairSprings", options={"length": 1.2}))


def test_dotted_path_backbone_in_the_energy_model():
    model = CGEnergy(BackboneConfig(name=f"{__name__}.PairSprings", options={"length": 1.2}))
    assert isinstance(model.net, PairSprings) and model.net.length == 1.2
    pos = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    k = model.net.k.detach()
    assert torch.allclose(model.energy(pos, torch.tensor([1, 2])), k[1, 2] * 0.8**2)
    with pytest.raises(ConfigError, match=r"PairSprings has no option\(s\) \['lenght'\]; allowed: types, length"):
        build_backbone(BackboneConfig(name=f"{__name__}.PairSprings", options={"lenght": 1.0}))
    with pytest.raises(ConfigError, match="cannot import 'nowhere.Net'"):
        build_backbone(BackboneConfig(name="nowhere.Net"))
    with pytest.raises(ConfigError, match="not an nn.Module"):
        build_backbone(BackboneConfig(name="collections.OrderedDict"))


def test_torchmdnet_model_options_are_checked():
    net = build_backbone(BackboneConfig(name="tensornet", embedding_dimension=8, num_layers=1,
                                        options={"equivariance_invariance_group": "SO(3)"}))
    assert net.representation.equivariance_invariance_group == "SO(3)"
    with pytest.raises(ConfigError, match=r"TorchMD_GN has no option\(s\) \['num_heads'\]"):
        build_backbone(BackboneConfig(options={"num_heads": 2}))


def test_probe_accepts_graph_network_to_third_order():
    torch.manual_seed(0)
    assert autograd_order_error(build_backbone(_config("graph-network")), 3) is None
    CGPotential(backbone=_config("graph-network"), losses={"force": {}, "hvp_cov": {"weight": 0.1}})


def test_probe_refuses_equivariant_transformer_for_exact_hvp():
    """Its third derivative disagrees with a float64 finite difference (by ~1e-3 to 1e-1 here)."""
    torch.manual_seed(0)
    net = build_backbone(_config("equivariant-transformer"))
    assert autograd_order_error(net, 2) is None
    assert "third order: autograd gives" in autograd_order_error(net, 3)
    with pytest.raises(ConfigError, match=r"equivariant-transformer' cannot train losses \['hvp'\].*order 3"):
        CGPotential(backbone=_config("equivariant-transformer"), losses={"force": {}, "hvp": {"weight": 0.1}})
    CGPotential(backbone=_config("equivariant-transformer"), losses={"force": {}})


class BrokenDoubleBackward(torch.autograd.Function):
    """``sin`` whose backward is not differentiable again (a kernel without a double-backward formula)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x.detach().cos()


class SilentlyWrong(nn.Module):
    def forward(self, z, pos, batch, n_graphs):
        e = BrokenDoubleBackward.apply(pos).sum(-1)
        return torch.zeros(n_graphs, dtype=pos.dtype).index_add(0, batch, e)


def test_probe_catches_a_missing_double_backward_at_second_order():
    reason = autograd_order_error(SilentlyWrong(), 2)
    assert reason is not None and reason.startswith("Hessian-vector products (second order)")
    assert autograd_order_error(SilentlyWrong(), 1) is None


def test_the_assertions_catch_wrong_derivatives():
    from cglight.testing import assert_grad_matches_fd, assert_hvp_matches_fd

    x = torch.randn(3, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert_hvp_matches_fd(lambda p: p.sin().sum(), x)
    with pytest.raises(AssertionError, match="HVP differs"):
        assert_hvp_matches_fd(lambda p: BrokenDoubleBackward.apply(p).sum(), x)

    class HalfGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, p):
            ctx.save_for_backward(p)
            return p.pow(3).sum()

        @staticmethod
        def backward(ctx, grad):
            (p,) = ctx.saved_tensors
            return grad * 1.5 * p.pow(2)

    assert_grad_matches_fd(lambda p: p.pow(3).sum(), x)
    with pytest.raises(AssertionError, match="gradient"):
        assert_grad_matches_fd(HalfGradient.apply, x)
