"""Built-in backbones through the conformance kit; the start-up autograd probe; dotted-path backbones."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from cglight.energy import BackboneConfig, CGEnergy, build_backbone
from cglight.energy.backbone import backbone_dict
from cglight.energy.autograd_probe import autograd_order_error
from cglight.errors import ConfigError
from cglight.training import CGPotential
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
        CGPotential(backbone=_config("equivariant-transformer"), losses={"force": {}, "hvp": {"weight": 0.1, "method": "autograd"}})
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


class DoubledParameterGradient(torch.autograd.Function):
    """Identity on a parameter whose backward doubles the gradient: positions are unaffected."""

    @staticmethod
    def forward(ctx, theta):
        return theta.clone()

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


class WrongParameterGradient(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(1.3))

    def forward(self, z, pos, batch, n_graphs):
        e = DoubledParameterGradient.apply(self.theta) * pos.sin().sum(-1)
        return torch.zeros(n_graphs, dtype=pos.dtype).index_add(0, batch, e)


def test_probe_checks_the_parameter_gradient_training_uses():
    reason = autograd_order_error(WrongParameterGradient(), 2)
    assert reason is not None and reason.startswith("parameter gradient of the order-1 derivative")


def write_side_effect_backbone(folder, marker) -> str:
    """A backbone module in ``folder`` whose import writes ``marker`` (code a checkpoint could name); its module name."""
    name = f"sideeffect_{abs(hash(str(folder))):x}"
    (folder / f"{name}.py").write_text(
        "import pathlib\nimport torch\nfrom torch import nn\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "class Net(nn.Module):\n"
        "    def forward(self, z, pos, batch, n_graphs):\n"
        "        e = 0.5 * pos.pow(2).sum(-1)\n"
        "        return torch.zeros(n_graphs, dtype=pos.dtype, device=pos.device).index_add(0, batch, e)\n"
    )
    return name


def write_checkpoint_naming(path, backbone: str) -> None:
    """A ``cglight fit``-shaped checkpoint of a parameter-free model whose backbone is ``backbone``, written
    without importing it."""
    backbone_hp = {**backbone_dict(BackboneConfig()), "name": backbone}
    torch.save({"hyper_parameters": {"backbone": backbone_hp, "priors": None},
                "state_dict": {"core.priors_fitted": torch.tensor(False), "core._extra_state": {"systems": {}}}}, path)


def test_a_checkpoint_naming_a_module_imports_it_only_when_trusted(tmp_path, monkeypatch):
    import sys

    marker = tmp_path / "imported.txt"
    module = write_side_effect_backbone(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = tmp_path / "model.ckpt"
    write_checkpoint_naming(ckpt, f"{module}.Net")
    for trusted in (None, [], ["other.Net"], [module]):
        with pytest.raises(ConfigError, match=rf"{ckpt}: its backbone is the class '{module}.Net'.*trusted_backbones") as err:
            CGEnergy.from_checkpoint(ckpt, trusted_backbones=trusted)
        assert "\n" not in str(err.value)
        assert not marker.exists() and module not in sys.modules, trusted
    model = CGEnergy.from_checkpoint(ckpt, trusted_backbones=[f"{module}.Net"])
    assert marker.exists() and type(model.net).__name__ == "Net"
    assert float(model.energy(torch.tensor([[1.0, 2.0, 2.0]]), torch.tensor([0]))) == pytest.approx(4.5)
    # the built-in table is always allowed, and a user's own config may name any class
    write_checkpoint_naming(tmp_path / "gn.ckpt", "graph-network")
    with pytest.raises(ConfigError, match="weights do not fit its hyper-parameters"):  # built (no trust needed), then refused
        CGEnergy.from_checkpoint(tmp_path / "gn.ckpt")
    assert isinstance(CGEnergy(BackboneConfig(name=f"{__name__}.PairSprings")).net, PairSprings)
