"""A Gaussian all-atom system whose PMF Hessian is known in closed form: the oracle of the Hessian-matching
tests and benchmarks (docs/method.md §10.1).

All-atom energy ``u = ½ (x − c)ᵀ K (x − c)`` on ``3N`` coordinates, a linear CG map ``R = M x`` with a
force map ``B`` (``M B = I``). The PMF is quadratic with Hessian ``P = (M K⁻¹ Mᵀ)⁻¹``; the bare projected
curvature ``BᵀKB`` differs from it. Samples are exact (``x ~ N(c, K⁻¹/β)``), with mapped forces
``f = −Bᵀ K (x − c)`` and the projected Hessian ``BᵀKB`` of every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cglight.data import keys
from cglight.units import beta as beta_of


@dataclass(frozen=True)
class GaussianSystem:
    """``u = ½ (x − c)ᵀ K (x − c)`` mapped by ``M`` (forces by ``B``, ``M B = I``) at inverse temperature ``beta``."""

    k: np.ndarray  # [3N, 3N], kcal/mol/Å²
    m: np.ndarray  # [3n, 3N]
    b: np.ndarray  # [3N, 3n]
    beta: float  # mol/kcal

    def pmf_hessian(self) -> np.ndarray:
        """The exact CG Hessian: the inverse of the mapped covariance, ``(M K⁻¹ Mᵀ)⁻¹`` (times nothing: β cancels)."""
        return np.linalg.inv(self.m @ np.linalg.inv(self.k) @ self.m.T)

    def bare_hessian(self) -> np.ndarray:
        """``BᵀKB``: what matching the projected Hessian without the covariance correction converges to."""
        return self.b.T @ self.k @ self.b

    def sample(self, rng: np.random.Generator, n: int, centre: np.ndarray | None = None) -> np.ndarray:
        """``n`` exact all-atom samples ``[n, 3N]`` (centred on ``centre``, default 0)."""
        mean = np.zeros(len(self.k)) if centre is None else centre
        return rng.multivariate_normal(mean, np.linalg.inv(self.k) / self.beta, size=n)

    def batch(self, x: np.ndarray, centre: np.ndarray | None = None, dtype: torch.dtype = torch.float32,
              flat: bool = False) -> dict[str, torch.Tensor]:
        """The training batch of samples ``x``: positions ``M x`` (``[n, beads, 3]``, or ``[n, 3n]`` if ``flat``),
        mapped forces, the projected Hessian of every frame ``[n, 3n, 3n]`` and ``beta``."""
        n, d = len(x), len(self.m)
        shape = (n, d) if flat else (n, d // 3, 3)
        dx = x if centre is None else x - centre
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dtype)  # noqa: E731
        return {
            keys.POS: t((x @ self.m.T).reshape(shape)),
            keys.FORCES: t((-(dx @ self.k) @ self.b).reshape(shape)),
            keys.HESSIAN: t(self.bare_hessian()).expand(n, d, d).contiguous(),
            keys.BETA: torch.full((n,), self.beta, dtype=dtype),
        }


def spring_chain(seed: int = 0, temperature: float = 300.0) -> tuple[np.random.Generator, GaussianSystem]:
    """Six atoms in 3-D on a chain of stiff springs plus weak random couplings; the slice map keeps atoms
    0, 2 and 4 (9 CG coordinates). Returns the generator that drew the couplings (draw the samples from it)."""
    rng = np.random.default_rng(seed)
    chain = np.zeros((6, 6))
    for i in range(5):
        chain[[i, i + 1], [i, i + 1]] += 40.0
        chain[i, i + 1] -= 40.0
        chain[i + 1, i] -= 40.0
    a = rng.normal(size=(18, 18))
    k = np.kron(chain + 2.0 * np.eye(6), np.eye(3)) + 2.0 * a @ a.T / 18  # kcal/mol/Å²
    m = np.kron(np.eye(6)[[0, 2, 4]], np.eye(3))
    return rng, GaussianSystem(k, m, m.T, beta_of(temperature))
