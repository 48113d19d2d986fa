"""End-to-end oracle (docs/method.md §10.1): training a quadratic CG potential with the shipped loss
classes on exact Gaussian samples converges to the PMF Hessian with ``hvp_cov`` and to the
wrong, bare ``BᵀKB`` with ``hvp``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cglight.data import keys
from cglight.gaussian_oracle import GaussianSystem
from cglight.losses import ModelOutput, Objective

BETA = 1.3


class Quadratic(nn.Module):
    """U(R) = ½ Rᵀ A R with A = L Lᵀ symmetric positive semi-definite."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.l = nn.Parameter(torch.eye(d, dtype=torch.float64) * 0.5)

    def hessian(self) -> torch.Tensor:
        return self.l @ self.l.T

    def output(self, r: torch.Tensor) -> ModelOutput:
        r = r.detach().requires_grad_(True)
        energy = 0.5 * torch.einsum("bi,ij,bj->b", r, self.hessian(), r)
        (g,) = torch.autograd.grad(energy.sum(), r, create_graph=True)
        return ModelOutput(energy, -g, r, create_graph=True, force_fn=lambda p: -p @ self.hessian())


def _system():
    """Three atoms on stiff springs (0–1–2, weakly anchored, a little random coupling); the
    slice map keeps the two ends, so the middle atom's fluctuations soften the PMF a lot."""
    rng = np.random.default_rng(7)
    chain = np.array([[1.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 1.0]]) * 4 + 0.5 * np.eye(3)
    a = rng.normal(size=(9, 9))
    k = np.kron(chain, np.eye(3)) + 0.1 * a @ a.T / 9
    w = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    m = np.kron(w, np.eye(3))
    return rng, GaussianSystem(k, m, m.T @ np.linalg.inv(m @ m.T), BETA)


def _batch(rng, system, size):
    return system.batch(system.sample(rng, size), dtype=torch.float64, flat=True)


def _train(losses: dict, steps: int = 800) -> tuple[float, float]:
    """Relative Frobenius errors of the learned Hessian against (PMF Hessian, bare BᵀKB)."""
    torch.manual_seed(0)
    rng, system = _system()
    pmf, bare = system.pmf_hessian(), system.bare_hessian()
    model = Quadratic(len(system.m))
    objective = Objective(losses).double()
    objective.calibrate(_batch(rng, system, 512) for _ in range(4))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-4)
    for _ in range(steps):
        batch = _batch(rng, system, 256)
        loss, _ = objective(batch, model.output(batch[keys.POS]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    learned = model.hessian().detach().numpy()
    return np.linalg.norm(learned - pmf) / np.linalg.norm(pmf), np.linalg.norm(learned - bare) / np.linalg.norm(bare)


def test_force_plus_hvp_cov_converges_to_pmf_hessian():
    err_pmf, err_bare = _train({"force": {"weight": 1.0}, "hvp_cov": {"weight": 1.0, "probes": 4}})
    assert err_pmf < 0.05
    assert err_bare > 0.4


def test_hvp_converges_to_bare_curvature_and_biases_force_matching():
    err_pmf, err_bare = _train({"force": {"weight": 0.01}, "hvp": {"weight": 1.0, "probes": 4}})
    assert err_bare < 0.05
    assert err_pmf > 0.5
    # with equal weights the naive term drags the force-matching solution away from the PMF
    err_pmf, _ = _train({"force": {"weight": 1.0}, "hvp": {"weight": 1.0, "probes": 4}})
    assert err_pmf > 0.06  # force + hvp_cov at the same weights: 0.0024
