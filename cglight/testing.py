"""Conformance tests for loss plugins and backbones, reusable from a plugin's own test suite.

Two suites: ``LossPluginTests`` (loss plugins) and ``BackboneTests`` (backbones), plus the
assertions ``assert_grad_matches_fd`` and ``assert_hvp_matches_fd``.

Usage in a plugin repository (pytest)::

    import pytest
    from cglight.testing import LossPluginTests
    from my_plugin import MyLoss

    class TestMyLoss(LossPluginTests):
        entry_point = "my_loss"          # name registered in 'cglight.losses' (optional)

        @pytest.fixture
        def loss(self):
            return MyLoss(some_option=2.0)

The inherited tests run the loss in float64 on a small differentiable pair potential and a
synthetic batch with every standard field, and check: it is a ``LossTerm`` with typed,
keyword-only-friendly arguments; it returns a finite scalar and finite parts; its parameter
gradient equals a central finite difference (skip with ``target_depends_on_model = True`` for
losses whose target holds detached model outputs, like ``hvp_cov``); it declares the batch keys
it needs and fails with a message naming them; its normalisation, if any, is positive; its
buffers survive a state-dict round trip; the entry point, if named, resolves to it; and float32
gives the same value, parts and gradient as float64 within :data:`FLOAT32_TOLERANCES`.

A backbone (``model.backbone.name: my_package.MyNet``) is checked the same way::

    from cglight.testing import BackboneTests

    class TestMyNet(BackboneTests):
        @pytest.fixture
        def backbone(self):
            return MyNet(hidden=16)

which runs it on a random chain of beads: one energy per frame, frames independent, rotation and
translation invariance, forces and Hessian-vector products against float64 finite differences,
and float32 against float64 within :data:`FLOAT32_TOLERANCES` (``backbone``).
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch import Tensor, nn

from cglight.data import keys
from cglight.errors import PluginError
from cglight.losses.base import LossResult, LossTerm, ModelOutput
from cglight.losses.registry import OBJECTIVE_KEYS


class PairPotential(nn.Module):
    """``U = Σ_{i<j} k_ij (|r_i − r_j| − d_ij)² + Σ_i a_i |r_i|⁴``: smooth to any order, in float64."""

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = nn.Parameter(1.0 + torch.rand(n, n, generator=g, dtype=torch.float64))
        self.d = nn.Parameter(1.0 + torch.rand(n, n, generator=g, dtype=torch.float64))
        self.a = nn.Parameter(0.01 * torch.rand(n, generator=g, dtype=torch.float64))

    def energy(self, pos: Tensor) -> Tensor:
        n = pos.shape[-2]
        i, j = torch.triu_indices(n, n, 1)
        r = (pos[:, i] - pos[:, j]).norm(dim=-1)
        return (self.k[i, j] * (r - self.d[i, j]).pow(2)).sum(-1) + (self.a * pos.pow(2).sum(-1).pow(2)).sum(-1)

    def forces(self, pos: Tensor) -> Tensor:
        """``−∇U`` at ``pos [M, n, 3]``, differentiable in the parameters."""
        with torch.enable_grad():
            pos = pos.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(pos).sum(), pos, create_graph=True)
        return -g

    def output(self, pos: Tensor) -> ModelOutput:
        pos = pos.detach().requires_grad_(True)
        energy = self.energy(pos)
        (g,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        return ModelOutput(energy, -g, pos, create_graph=True, force_fn=self.forces)


def synthetic_batch(frames: int = 4, beads: int = 5, seed: int = 0) -> dict[str, Tensor]:
    """A float64 batch with every standard field (random but well-scaled)."""
    g = torch.Generator().manual_seed(seed)
    d = 3 * beads
    a = torch.randn(frames, d, d, generator=g, dtype=torch.float64)
    chain = torch.arange(beads, dtype=torch.float64)[:, None] * torch.tensor([1.5, 0.0, 0.0], dtype=torch.float64)
    return {
        keys.POS: chain + 0.2 * torch.randn(frames, beads, 3, generator=g, dtype=torch.float64),
        keys.FORCES: torch.randn(frames, beads, 3, generator=g, dtype=torch.float64),
        keys.HESSIAN: a @ a.transpose(1, 2) / d,
        keys.BETA: torch.full((frames,), 1.68, dtype=torch.float64),
        keys.BEAD_TYPES: torch.arange(beads).expand(frames, beads).clone(),
        keys.FRAME_INDEX: torch.arange(frames),
        keys.SYSTEM: torch.zeros(frames, dtype=torch.long),
    }


# ----------------------------------------------------------------------------- float32 vs float64

FLOAT32_TOLERANCES = {
    "exact": {"loss": 1e-5, "parts": 1e-5, "gradient": 1e-5},
    "finite_difference": {"loss": 1e-3, "parts": 1e-3, "gradient": 3e-3},
    "backbone": {"energy": 1e-5, "forces": 1e-4, "hvp": 1e-3},
}
"""Largest relative differences allowed between float32 and float64.

``backbone`` (:class:`BackboneTests`): of a backbone's energy, forces and HVP, relative to the largest
float64 magnitude of the quantity (float32 has ~7 digits; each derivative loses some).

``exact`` and ``finite_difference`` (:class:`LossPrecisionTests`), a loss computed in both (same
batch, model and probes): of the loss value, of each logged part, and of the parameter gradient
(in norm). ``finite_difference`` applies to losses with ``method = "finite_difference"`` (their
HVPs difference forces, which loses digits in float32), ``exact`` to all others. Measured on
the built-in losses (cglight.testing's pair potential): exact ≤ 3e-7 (value, parts) and 1e-7
(gradient); finite differences at the default ``fd_eps`` ≤ 1.7e-4 (value, parts) and 7.5e-4
(gradient). A plugin may override entries through :attr:`LossPrecisionTests.float32_tolerances`."""


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300))


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
        assert _relative(r32.loss.detach(), r64.loss.detach()) <= tol["loss"], (float(r32.loss), float(r64.loss))
        for name, part in r64.parts.items():
            assert _relative(r32.parts[name].detach(), part.detach()) <= tol["parts"], (name, float(r32.parts[name]), float(part))
        assert _relative(g32, g64) <= tol["gradient"], _relative(g32, g64)


# ----------------------------------------------------------------------------- the full kit


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


# ---------------------------------------------------------------- derivative assertions
def assert_grad_matches_fd(fn, x: Tensor, direction: Tensor | None = None, eps: float = 1e-6, rtol: float = 1e-6) -> None:
    """``∇fn(x) · d`` by autograd equals the central difference ``(fn(x + εd) − fn(x − εd)) / 2ε``.

    ``fn`` maps a float64 tensor shaped like ``x`` to a scalar; ``d`` is random unless given.
    """
    d = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(101)) if direction is None else direction
    p = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(p), p)
    exact = (g * d).sum().item()
    with torch.no_grad():
        fd = (fn(x + eps * d).item() - fn(x - eps * d).item()) / (2 * eps)
    assert abs(exact - fd) <= rtol * max(abs(fd), abs(exact)) + 1e-12, f"gradient {exact!r} != finite difference {fd!r}"


def assert_hvp_matches_fd(fn, x: Tensor, v: Tensor | None = None, eps: float = 1e-5, rtol: float = 1e-6) -> None:
    """``∇²fn(x) v`` by double back-propagation equals ``(∇fn(x + εv) − ∇fn(x − εv)) / 2ε`` (every component)."""
    v = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(102)) if v is None else v

    def grad(p: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
        p = p.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(p), p, create_graph=create_graph)
        return p, g

    p, g = grad(x, True)
    assert g.requires_grad, "HVP differs from a finite difference: the gradient has no graph (no double backward)"
    (hv,) = torch.autograd.grad(g, p, grad_outputs=v)
    fd = (grad(x + eps * v, False)[1] - grad(x - eps * v, False)[1]) / (2 * eps)
    scale = float(fd.abs().max())
    assert scale > 0, "the Hessian-vector product is zero: nothing was checked"
    err = float((hv - fd).abs().max())
    assert err <= rtol * scale, f"HVP differs from a finite difference of gradients by {err:.3g} (scale {scale:.3g})"


# ---------------------------------------------------------------- backbone conformance
def backbone_energy(backbone: nn.Module, z: Tensor):
    """``pos [F, n, 3] -> total energy`` of ``backbone`` for bead types ``z [n]`` (the backbone interface)."""

    def energy(pos: Tensor) -> Tensor:
        frames, n, _ = pos.shape
        batch = torch.arange(frames).repeat_interleave(n)
        return backbone(z.repeat(frames), pos.reshape(-1, 3), batch, frames)

    return energy


class BackboneTests:
    """Conformance tests of a backbone (``forward(z [N], pos [N, 3], batch [N], n_graphs) -> [n_graphs]``).

    Inherit and override the ``backbone`` fixture (an ``nn.Module``; it is copied to float64 and
    float32 here). The tests check, on a random chain of ``n_beads`` beads: one energy per frame,
    frames independent of each other in a batch, invariance under rotation and translation, forces
    and HVPs against float64 finite differences, and float32 against float64 within
    :data:`FLOAT32_TOLERANCES` (``backbone``). Set ``invariant = False`` for a backbone that is not meant to be.
    """

    n_beads: int = 6
    max_z: int = 4
    invariant: bool = True

    @pytest.fixture
    def backbone(self) -> nn.Module:
        raise NotImplementedError("override the 'backbone' fixture to return your backbone module")

    @pytest.fixture
    def z(self) -> Tensor:
        return torch.arange(self.n_beads) % self.max_z

    @pytest.fixture
    def pos(self) -> Tensor:
        g = torch.Generator().manual_seed(7)
        line = torch.arange(self.n_beads, dtype=torch.float64)[:, None] * torch.tensor([1.4, 0.5, 0.0], dtype=torch.float64)
        return line + 0.3 * torch.randn(2, self.n_beads, 3, generator=g, dtype=torch.float64)

    def test_one_energy_per_frame_and_frames_independent(self, backbone, z, pos):
        energy = backbone_energy(copy.deepcopy(backbone).double(), z)
        both = energy(pos)
        assert both.shape == (2,) and torch.isfinite(both).all()
        alone = torch.cat([energy(pos[:1]), energy(pos[1:])])
        assert torch.allclose(both, alone, rtol=1e-10, atol=1e-10)

    def test_rotation_and_translation_invariance(self, backbone, z, pos):
        if not self.invariant:
            pytest.skip("backbone declared not invariant")
        energy = backbone_energy(copy.deepcopy(backbone).double(), z)
        q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
        moved = pos @ q.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
        assert torch.allclose(energy(moved), energy(pos), rtol=1e-9, atol=1e-9)

    def test_forces_match_finite_difference(self, backbone, z, pos):
        energy = backbone_energy(copy.deepcopy(backbone).double(), z)
        assert_grad_matches_fd(lambda p: energy(p).sum(), pos)

    def test_hvp_matches_finite_difference(self, backbone, z, pos):
        energy = backbone_energy(copy.deepcopy(backbone).double(), z)
        assert_hvp_matches_fd(lambda p: energy(p).sum(), pos)

    def test_float32_matches_float64(self, backbone, z, pos):
        v = torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
        values = {}
        for dtype in (torch.float64, torch.float32):
            energy = backbone_energy(copy.deepcopy(backbone).to(dtype), z)
            p = pos.to(dtype).requires_grad_(True)
            e = energy(p)
            (g,) = torch.autograd.grad(e.sum(), p, create_graph=True)
            (hv,) = torch.autograd.grad(g, p, grad_outputs=v.to(dtype))
            values[dtype] = {"energy": e.detach(), "forces": -g.detach(), "hvp": hv.detach()}
        for name in ("energy", "forces", "hvp"):
            tol = FLOAT32_TOLERANCES["backbone"][name]
            ref, low = values[torch.float64][name], values[torch.float32][name].double()
            err = float((ref - low).abs().max() / ref.abs().max())
            assert err <= tol, f"{name}: float32 differs from float64 by {err:.2e} (relative), tolerance {tol:.0e}"
