"""Per-frame second-order targets against closed forms and quadrature (docs/method.md §10.1–10.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cglight.gaussian_oracle import GaussianSystem
from cglight.losses.hessian import hvp_cov_target

BETA = 1.7


def _gaussian_system(seed: int = 0):
    """4 atoms in 3-D with a random SPD coupling K; 2 beads, centre-of-mass-like weights."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(12, 12))
    k = a @ a.T / 12 + np.eye(12)
    w = np.array([[0.3, 0.7, 0.0, 0.0], [0.0, 0.0, 0.55, 0.45]])
    m = np.kron(w, np.eye(3))  # [6, 12]
    b = m.T @ np.linalg.inv(m @ m.T)  # [12, 6], M B = I
    return rng, k, m, b


def _target_matrices(k, m, b, x, model_hessian):
    """Mean over frames of the per-frame hvp_cov and hvp targets, assembled column by column."""
    f = torch.from_numpy(-(x @ k) @ b)  # mapped forces [S, 6]
    r = x @ m.T
    mean_force = torch.from_numpy(-r @ model_hessian)  # exact mean force −P R
    s, d = f.shape
    hessian = torch.from_numpy(b.T @ k @ b).expand(s, d, d)
    beta = torch.full((s,), BETA, dtype=torch.float64)
    cov_cols, hvp_cols = [], []
    for i in range(d):
        v = torch.zeros(s, d, dtype=torch.float64)
        v[:, i] = 1.0
        hv = torch.einsum("bij,bj->bi", hessian, v)  # (BᵀHB) v
        cov_cols.append(hvp_cov_target(hv, f, mean_force, v, beta, "uncentered"))
        hvp_cols.append(hv)
    return torch.stack(cov_cols, -1).numpy(), torch.stack(hvp_cols, -1).numpy()


@pytest.mark.parametrize("other_force_map", [False, True])
def test_hvp_cov_target_mean_is_pmf_hessian_of_gaussian(other_force_map):
    rng, k, m, b = _gaussian_system()
    if other_force_map:  # any B with M B = I gives the same conditional mean
        b = b + (np.eye(12) - b @ m) @ rng.normal(scale=0.3, size=(12, 6))
        assert np.allclose(m @ b, np.eye(6))
    system = GaussianSystem(k, m, b, BETA)
    pmf_hessian = system.pmf_hessian()
    x = system.sample(rng, 100_000)
    per_frame, hvp = _target_matrices(k, m, b, x, pmf_hessian)
    mean = per_frame.mean(0)
    se = per_frame.std(0) / np.sqrt(len(per_frame))
    assert np.all(np.abs(mean - pmf_hessian) < 5 * se + 1e-9), np.abs(mean - pmf_hessian) / se
    # the naive target is the bare curvature BᵀKB, which differs from the PMF Hessian
    np.testing.assert_allclose(hvp, np.broadcast_to(b.T @ k @ b, hvp.shape), rtol=1e-12, atol=1e-12)
    assert np.abs(b.T @ k @ b - pmf_hessian).max() > 50 * se.max()


# Double well with a bath whose stiffness depends on x1 (docs/method.md §10.2):
# u = a (x1² − 1)² + ½ k0 (1 + b x1²) (x2 − c x1)²
A, K0, BB, C = 1.0, 4.0, 0.8, 0.6


def _u_derivatives(x1, x2):
    kk = K0 * (1 + BB * x1**2)
    y = x2 - C * x1
    dk = 2 * K0 * BB * x1
    du = 4 * A * x1 * (x1**2 - 1) + 0.5 * dk * y**2 - C * kk * y
    d2u = 4 * A * (3 * x1**2 - 1) + 0.5 * 2 * K0 * BB * y**2 - 2 * C * dk * y + C**2 * kk
    return du, d2u


def _pmf_by_quadrature(grid):
    """U(x1) = −β⁻¹ ln ∫ exp(−β u) dx2, by the trapezoidal rule on a wide x2 grid."""
    x2 = np.linspace(-12, 12, 6001)
    u = A * (grid[:, None] ** 2 - 1) ** 2 + 0.5 * K0 * (1 + BB * grid[:, None] ** 2) * (x2[None] - C * grid[:, None]) ** 2
    z = np.trapezoid(np.exp(-BETA * (u - u.min(1, keepdims=True))), x2, axis=1)
    return u.min(1) - np.log(z) / BETA


def test_hvp_cov_target_matches_pmf_curvature_of_double_well():
    rng = np.random.default_rng(1)
    grid = np.linspace(-2.5, 2.5, 5001)
    h = grid[1] - grid[0]
    pmf = _pmf_by_quadrature(grid)
    dpmf = np.gradient(pmf, h)
    d2pmf = np.gradient(dpmf, h)
    # exact samples: x1 from the marginal by inverse CDF, x2 | x1 Gaussian
    p = np.exp(-BETA * (pmf - pmf.min()))
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    n = 400_000
    x1 = np.interp(rng.uniform(size=n), cdf, grid)
    x2 = C * x1 + rng.normal(size=n) / np.sqrt(BETA * K0 * (1 + BB * x1**2))
    du, d2u = _u_derivatives(x1, x2)
    f = torch.from_numpy(-du)[:, None]
    mean_force = torch.from_numpy(-np.interp(x1, grid, dpmf))[:, None]
    v = torch.ones_like(f)
    target = hvp_cov_target(torch.from_numpy(d2u)[:, None], f, mean_force, v, torch.full((n,), BETA, dtype=torch.float64),
                            "uncentered")
    target = target.numpy()[:, 0]
    exact = np.interp(x1, grid, d2pmf)
    checked = 0
    for lo in np.arange(-1.6, 1.6, 0.2):
        sel = (x1 >= lo) & (x1 < lo + 0.2)
        if sel.sum() < 2000:
            continue
        se = target[sel].std() / np.sqrt(sel.sum())
        assert abs(target[sel].mean() - exact[sel].mean()) < 5 * se, (lo, target[sel].mean(), exact[sel].mean(), se)
        checked += 1
    assert checked >= 10
    # the naive (bare) curvature is biased in the same bins: the correction is doing the work
    sel = np.abs(x1) < 0.2
    assert abs(d2u[sel].mean() - exact[sel].mean()) > 10 * target[sel].std() / np.sqrt(sel.sum())
