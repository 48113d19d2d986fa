"""Mapped forces and projected Hessians ``Bᵀ H B`` from OpenMM, by central finite differences.

Three modes (the ``hessian`` key of ``cglight prepare``):

``full``
    All of ``BᵀHB``. Only ``3n`` directions are needed, not ``3N``: column ``k`` of ``H B`` is the
    derivative of the all-atom force along column ``k`` of ``B``,
    ``H b_k ≈ (F(x − ε b_k) − F(x + ε b_k)) / 2ε``, and ``Bᵀ H B = Bᵀ [H b_1 … H b_3n]``:
    ``6n`` force evaluations per frame. Quality figure: the relative asymmetry
    ``max|A − Aᵀ| / max|A|`` of the raw difference matrix (stored symmetrised).
``probes``
    ``K`` Rademacher probes ``v`` per frame and ``(BᵀHB) v = Bᵀ H (B v)`` by one central difference
    along ``B v`` each: ``2K`` force evaluations, whatever the size of the protein. Quality figure:
    the relative asymmetry of the ``K × K`` matrix ``vᵢᵀ (BᵀHB) vⱼ`` (exactly symmetric in exact
    arithmetic; 0 when ``K = 1``).
``none``
    Mapped forces only (1 force evaluation).

With the Reference platform (double precision) and ε = 1e-5 nm the error is ~1e-7 relative
(truncation ε² against round-off 1e-16/ε).

Force fields are not everywhere twice differentiable. The OBC implicit solvent's Born radii sum
pair integrals that are only C¹ where two atomic spheres touch, so the Hessian jumps there; a
central difference whose ±ε stencil straddles such a point averages the two sides and shows up as
an asymmetry of order 1e-3 (villin with OBC: ~5 % of frames at ε = 1e-5 nm, the median frame at
1e-9). ``evaluate_refined`` re-evaluates such a frame with steps 10, 100, 1000 times smaller:
once ε is below the distance to the kink the stencil lies on one side, and the result is the
Hessian of the side the frame is on. In double precision a step of 1e-8 nm still has round-off
far below the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cglight.errors import ConfigError
from cglight.units import FORCE_OPENMM_TO_CGLIGHT, HESSIAN_OPENMM_TO_CGLIGHT

MODES = ("full", "probes", "none")


@dataclass
class MappedFrame:
    forces: np.ndarray  # [n, 3] kcal/mol/Å
    hessian: np.ndarray | None = None  # [3n, 3n] kcal/mol/Å², symmetrised ('full')
    probes: np.ndarray | None = None  # [K, 3n] ±1 ('probes')
    hvp: np.ndarray | None = None  # [K, 3n] kcal/mol/Å², (BᵀHB)·probe ('probes')
    asymmetry: float = 0.0  # finite-difference quality figure (see the module docstring)


def relative_asymmetry(a: np.ndarray) -> float:
    """``max|A − Aᵀ| / max|A|``: 0 for a symmetric matrix."""
    return float(np.abs(a - a.T).max() / max(np.abs(a).max(), 1e-300))


def rademacher(rng: np.random.Generator, k: int, dim: int) -> np.ndarray:
    return rng.integers(0, 2, size=(k, dim)).astype(np.float64) * 2.0 - 1.0


class ProjectedHessian:
    """Evaluate mapped forces and ``BᵀHB`` (or its probe sketch) of one OpenMM context, frame by frame.

    ``context`` must be a Context of the all-atom system (Reference platform recommended);
    ``force_matrix`` is ``B`` as ``[N, n]`` (atoms × beads), applied per Cartesian component.
    """

    def __init__(self, context, force_matrix: np.ndarray, eps_nm: float = 1e-5, mode: str = "full", probes: int = 4) -> None:
        if eps_nm <= 0:
            raise ValueError(f"finite-difference step must be positive, got {eps_nm}")
        if mode not in MODES:
            raise ConfigError(f"unknown hessian mode {mode!r}; available: {', '.join(MODES)}")
        if mode == "probes" and probes < 1:
            raise ConfigError(f"hessian_probes must be >= 1, got {probes}")
        self.context = context
        self.b_atoms = np.asarray(force_matrix, dtype=np.float64)
        # B as a [3N, 3n] matrix with index 3*atom + xyz and 3*bead + xyz, and its rows restricted to
        # the atoms the map uses (all other rows are zero): projections then cost nothing, even for
        # a C-alpha map of a large protein (a full [3n, 3N] product would rival the force evaluations).
        self.b = np.kron(self.b_atoms, np.eye(3))
        self.rows = np.nonzero(np.abs(self.b).sum(axis=1))[0]
        self.b_used = self.b[self.rows]
        self.eps, self.mode, self.k = eps_nm, mode, probes
        self.evaluations = 0  # force evaluations so far (the benchmark's count)

    def forces_nm(self, x_nm: np.ndarray) -> np.ndarray:
        """All-atom forces in kJ/mol/nm, flattened to [3N]."""
        from openmm import unit

        self.context.setPositions(np.asarray(x_nm).reshape(-1, 3))
        state = self.context.getState(getForces=True)
        self.evaluations += 1
        forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        return np.asarray(forces, dtype=np.float64).reshape(-1)

    def _bt_h_times(self, x: np.ndarray, direction: np.ndarray, eps: float) -> np.ndarray:
        """``Bᵀ H (B d)`` in kJ/mol/nm² by a central difference along ``B d`` (``d`` in CG space)."""
        step = np.zeros_like(x)
        step[self.rows] = eps * (self.b_used @ direction)
        df = self.forces_nm(x - step) - self.forces_nm(x + step)
        return self.b_used.T @ df[self.rows] / (2 * eps)

    def __call__(self, x_nm: np.ndarray, rng: np.random.Generator | None = None, eps_nm: float | None = None) -> MappedFrame:
        """Mapped forces and ``BᵀHB`` (or its probes) at ``x_nm``; ``eps_nm`` overrides the step for this frame."""
        eps = self.eps if eps_nm is None else eps_nm
        x = np.asarray(x_nm, dtype=np.float64).reshape(-1)
        f = self.forces_nm(x) * FORCE_OPENMM_TO_CGLIGHT
        frame = MappedFrame((self.b_used.T @ f[self.rows]).reshape(-1, 3))
        dim = self.b.shape[1]
        if self.mode == "full":
            a = np.stack([self._bt_h_times(x, e, eps) for e in np.eye(dim)], axis=1) * HESSIAN_OPENMM_TO_CGLIGHT
            frame.hessian, frame.asymmetry = 0.5 * (a + a.T), relative_asymmetry(a)
        elif self.mode == "probes":
            if rng is None:
                raise ValueError("probes mode needs a random generator")
            v = rademacher(rng, self.k, dim)
            hvp = np.stack([self._bt_h_times(x, vk, eps) for vk in v]) * HESSIAN_OPENMM_TO_CGLIGHT
            frame.probes, frame.hvp, frame.asymmetry = v, hvp, relative_asymmetry(v @ hvp.T)
        return frame


def refine_steps(eps_nm: float, refinements: int = 3) -> list[float]:
    """The finite-difference steps tried for one frame: ``ε, ε/10, …`` (see the module docstring)."""
    return [eps_nm * 10.0**-k for k in range(refinements + 1)]


def evaluate_refined(
    evaluate: ProjectedHessian, x_nm: np.ndarray, seed: list[int], max_asymmetry: float, refinements: int = 3
) -> tuple[MappedFrame, float, list[float]]:
    """One frame, re-evaluated with 10× smaller steps while its asymmetry exceeds ``max_asymmetry``.

    Returns the frame of the last step tried, that step, and the asymmetry at every step tried; the
    caller decides what a frame still above the threshold means. Every try draws the same probes
    (``seed`` seeds a fresh generator each time).
    """
    tried: list[float] = []
    for eps in refine_steps(evaluate.eps, refinements):  # mode 'none' has asymmetry 0: one try
        frame = evaluate(x_nm, np.random.default_rng(seed), eps)
        tried.append(frame.asymmetry)
        if frame.asymmetry <= max_asymmetry:
            break
    return frame, eps, tried
