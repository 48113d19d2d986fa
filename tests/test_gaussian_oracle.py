"""``cglight.gaussian_oracle``: the closed-form PMF Hessian against the samples' own statistics."""

from __future__ import annotations

import numpy as np
import torch

from cglight.data import keys
from cglight.gaussian_oracle import spring_chain


def test_the_mapped_covariance_is_the_inverse_pmf_hessian_over_beta():
    rng, system = spring_chain()
    x = system.sample(rng, 200_000)
    cov = np.cov((x @ system.m.T).T)  # the CG coordinates' covariance: P⁻¹/β for a Gaussian
    expected = np.linalg.inv(system.pmf_hessian()) / system.beta
    assert np.abs(cov - expected).max() < 0.02 * np.abs(expected).max()
    assert np.allclose(system.m @ system.b, np.eye(9))
    assert np.abs(system.bare_hessian() - system.pmf_hessian()).max() > 0.1 * np.abs(system.pmf_hessian()).max()


def test_batch_holds_mapped_positions_forces_and_hessian():
    rng, system = spring_chain()
    centre = np.linspace(0.0, 1.7, 18)
    x = system.sample(rng, 4, centre)
    batch = system.batch(x, centre, dtype=torch.float64)
    assert batch[keys.POS].shape == (4, 3, 3) and batch[keys.HESSIAN].shape == (4, 9, 9)
    # the slice map keeps atoms 0, 2, 4: positions and forces of those atoms (forces −K(x − c) by hand)
    kept = [0, 1, 2, 6, 7, 8, 12, 13, 14]
    np.testing.assert_allclose(batch[keys.POS].reshape(4, 9).numpy(), x[:, kept])
    np.testing.assert_allclose(batch[keys.FORCES].reshape(4, 9).numpy(), -((x - centre) @ system.k)[:, kept])
    assert system.batch(x, centre, flat=True)[keys.POS].shape == (4, 9)
