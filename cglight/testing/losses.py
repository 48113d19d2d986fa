"""The conformance suite of loss plugins: ``LossPluginTests`` (with ``LossPrecisionTests``, float32 against float64)."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch import Tensor, nn

from cglight.data import keys
from cglight.errors import PluginError
from cglight.losses.base import LossResult, LossTerm
from cglight.losses.registry import OBJECTIVE_KEYS
from cglight.testing.potential import PairPotential, synthetic_batch
from cglight.testing.tolerances import FLOAT32_TOLERANCES, relative


class LossPrecisionTests:
    """Checks that a loss gives the same value, parts and parameter gradient in float32 as in
    float64, within :data:`FLOAT32_TOLERANCES` (training runs in float32; the oracles in float64).

    Mixed into :class:`LossPluginTests`; needs the ``loss``, ``batch`` and ``potential`` fixtures.
    """

    float32_tolerances: dict[str, float] = {}

    def _precision_run(self, loss: LossTerm, batch, potential: nn.Module, dtype: torch.dtype):
        loss, potential = copy.deepcopy(loss).to(dtype), copy.deepcopy(potential).to(dtype)
        batch = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in batch.items()}
        torch.manual_seed(0)  # the same probes in both precisions
        result = loss(batch, potential.output(batch[keys.POS]))
        params = [p for p in potential.parameters() if p.requires_grad]
        grads = torch.autograd.grad(result.loss, params, allow_unused=True)
        flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params, strict=True)])
        return result, flat

    def test_float32_matches_float64(self, loss, batch, potential):
        kind = "finite_difference" if getattr(loss, "method", None) == "finite_difference" else "exact"
        tol = FLOAT32_TOLERANCES[kind] | self.float32_tolerances
        r64, g64 = self._precision_run(loss, batch, potential, torch.float64)
        r32, g32 = self._precision_run(loss, batch, potential, torch.float32)
        assert r32.loss.dtype == torch.float32, "the loss must compute in the dtype of its inputs"
        assert relative(r32.loss.detach(), r64.loss.detach()) <= tol["loss"], (float(r32.loss), float(r64.loss))
        for name, part in r64.parts.items():
            assert relative(r32.parts[name].detach(), part.detach()) <= tol["parts"], (name, float(r32.parts[name]), float(part))
        assert relative(g32, g64) <= tol["gradient"], relative(g32, g64)


class LossPluginTests(LossPrecisionTests):
    """Inherit and override the ``loss`` fixture (and ``batch``/``potential`` if needed)."""

    entry_point: str | None = None
    target_depends_on_model: bool = False

    @pytest.fixture
    def loss(self) -> LossTerm:
        raise NotImplementedError("override the 'loss' fixture to return an instance of your loss")

    @pytest.fixture
    def batch(self) -> dict[str, Tensor]:
        return synthetic_batch()

    @pytest.fixture
    def potential(self, batch) -> PairPotential:
        return PairPotential(batch[keys.POS].shape[1])

    def _value(self, loss: LossTerm, batch, potential, seed: int = 0) -> LossResult:
        torch.manual_seed(seed)  # the same random probes on every call
        return loss(batch, potential.output(batch[keys.POS]))

    def test_is_a_loss_term_with_typed_arguments(self, loss):
        assert isinstance(loss, LossTerm), "a loss plugin must subclass cglight.losses.LossTerm"
        for p in list(inspect.signature(type(loss).__init__).parameters.values())[1:]:
            assert p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL), f"no **kwargs/*args in __init__ ({p.name})"
            assert p.annotation is not inspect.Parameter.empty, f"__init__ argument '{p.name}' needs a type annotation"
            assert p.name not in OBJECTIVE_KEYS, f"'{p.name}' is reserved for the objective ({', '.join(OBJECTIVE_KEYS)})"

    def test_returns_finite_scalar_and_parts(self, loss, batch, potential):
        loss = loss.double()
        result = self._value(loss, batch, potential)
        assert isinstance(result, LossResult)
        assert result.loss.shape == () and torch.isfinite(result.loss) and result.loss >= 0
        for name, part in result.parts.items():
            assert isinstance(name, str) and part.shape == () and torch.isfinite(part), name

    def test_parameter_gradient_matches_finite_difference(self, loss, batch, potential):
        if self.target_depends_on_model:
            pytest.skip("the target holds detached model outputs, so a finite difference in θ moves it too")
        loss = loss.double()
        params = list(potential.parameters())
        grads = torch.autograd.grad(self._value(loss, batch, potential).loss, params)
        h = 1e-6
        for p, g in zip(params, grads, strict=True):
            i = int(g.abs().flatten().argmax())
            flat = p.data.view(-1)
            flat[i] += h
            up = self._value(loss, batch, potential).loss.item()
            flat[i] -= 2 * h
            down = self._value(loss, batch, potential).loss.item()
            flat[i] += h
            fd = (up - down) / (2 * h)
            assert abs(g.flatten()[i].item() - fd) <= 1e-5 * max(abs(fd), 1e-3), (g.flatten()[i].item(), fd)

    def test_missing_batch_key_is_named(self, loss, batch):
        for key in loss.required_keys:
            partial = {k: v for k, v in batch.items() if k != key}
            with pytest.raises(PluginError, match=key):
                loss.check_batch(partial, "under_test")

    def test_normalisation_is_positive(self, loss, batch):
        m = loss.double().target_second_moment(batch)
        if m is None:
            assert not loss.normalize, "normalize=True needs target_second_moment"
        else:
            assert m.shape == () and torch.isfinite(m) and m > 0

    def test_state_dict_round_trip(self, loss):
        loss.scale.fill_(2.5)
        clone = copy.deepcopy(loss)
        clone.scale.fill_(float("nan"))
        clone.load_state_dict(loss.state_dict())
        assert clone.calibrated and float(clone.scale) == 2.5

    def test_entry_point_resolves(self, loss):
        if self.entry_point is None:
            pytest.skip("no entry_point name given")
        from cglight.losses.registry import get_loss_class

        assert get_loss_class(self.entry_point) is type(loss)
