"""Mapped forces and projected Hessians ``Bᵀ H B`` from OpenMM, by central finite differences.

Only ``3n`` directions are needed, not ``3N``: column ``k`` of ``H B`` is the derivative of the
all-atom force along column ``k`` of ``B``,

    H b_k ≈ (F(x − ε b_k) − F(x + ε b_k)) / 2ε,

and ``Bᵀ H B = Bᵀ [H b_1 … H b_3n]``. With the Reference platform (double precision) and
ε = 1e-5 nm the error is ~1e-7 relative (truncation ε² against round-off 1e-16/ε).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cglight.units import FORCE_OPENMM_TO_CGLIGHT, HESSIAN_OPENMM_TO_CGLIGHT


@dataclass
class MappedFrame:
    forces: np.ndarray  # [n, 3] kcal/mol/Å
    hessian: np.ndarray  # [3n, 3n] kcal/mol/Å², symmetrised
    asymmetry: float  # max |A − Aᵀ| / max |A| of the raw finite-difference matrix


class ProjectedHessian:
    """Evaluate mapped forces and ``BᵀHB`` of one OpenMM context, frame by frame.

    ``context`` must be a Context of the all-atom system (Reference platform recommended);
    ``force_matrix`` is ``B`` as ``[N, n]`` (atoms × beads), applied per Cartesian component.
    """

    def __init__(self, context, force_matrix: np.ndarray, eps_nm: float = 1e-5) -> None:
        if eps_nm <= 0:
            raise ValueError(f"finite-difference step must be positive, got {eps_nm}")
        self.context = context
        self.b_atoms = np.asarray(force_matrix, dtype=np.float64)
        n_atoms, n = self.b_atoms.shape
        # B as a [3N, 3n] matrix with index 3*atom + xyz and 3*bead + xyz.
        self.b = np.kron(self.b_atoms, np.eye(3))
        self.eps = eps_nm

    def forces_nm(self, x_nm: np.ndarray) -> np.ndarray:
        """All-atom forces in kJ/mol/nm, flattened to [3N]."""
        self.context.setPositions(np.asarray(x_nm).reshape(-1, 3))
        state = self.context.getState(getForces=True)
        return np.asarray(state.getForces(asNumpy=True)._value, dtype=np.float64).reshape(-1)

    def __call__(self, x_nm: np.ndarray) -> MappedFrame:
        x = np.asarray(x_nm, dtype=np.float64).reshape(-1)
        f = self.forces_nm(x) * FORCE_OPENMM_TO_CGLIGHT
        mapped = (self.b.T @ f).reshape(-1, 3)
        hb = np.empty((x.size, self.b.shape[1]))
        for k in range(self.b.shape[1]):
            step = self.eps * self.b[:, k]
            hb[:, k] = (self.forces_nm(x - step) - self.forces_nm(x + step)) / (2 * self.eps)
        a = self.b.T @ hb * HESSIAN_OPENMM_TO_CGLIGHT
        asym = float(np.abs(a - a.T).max() / max(np.abs(a).max(), 1e-300))
        return MappedFrame(mapped, 0.5 * (a + a.T), asym)
