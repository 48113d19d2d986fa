"""The conformance suite of backbones: ``BackboneTests``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from cglight.testing.derivatives import assert_grad_matches_fd, assert_hvp_matches_fd
from cglight.testing.tolerances import FLOAT32_TOLERANCES


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
