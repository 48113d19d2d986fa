"""The PMF Hessian at a fixed CG configuration, estimated from constrained all-atom sampling.

With a slice map the CG configuration ``R`` fixes the mapped atoms. Giving them zero mass makes
OpenMM hold them still while Langevin dynamics samples every other atom from
``exp(−βu(x)) δ(Mx − R)``. Over those samples

    ∇²U(R) = E[BᵀHB | R] − β Cov(f | R),      f = Bᵀ F

(the identity the ``hvp_cov`` loss is built on), so both terms are averaged directly: a
reference curvature no model was trained on. The error bar is the standard error of batch
means over ``blocks`` contiguous blocks of samples (element-wise and in Frobenius norm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cglight.errors import ConfigError
from cglight.prepare.hessian import ProjectedHessian
from cglight.prepare.reference import make_context
from cglight.progress import progress
from cglight.units import beta as beta_of


@dataclass
class PMFHessianEstimate:
    hessian: np.ndarray  # [3n, 3n] kcal/mol/Å²
    stderr: np.ndarray  # [3n, 3n] element-wise standard error
    bare: np.ndarray  # E[BᵀHB | R]
    mean_force: np.ndarray  # E[f | R], [n, 3]
    samples: int

    @property
    def frobenius_stderr(self) -> float:
        return float(np.sqrt((self.stderr**2).sum()))


def _estimate(hessians: np.ndarray, forces: np.ndarray, beta: float) -> np.ndarray:
    f = forces.reshape(len(forces), -1)
    return hessians.mean(0) - beta * np.cov(f, rowvar=False, bias=True)


def conditional_pmf_hessian(
    system,
    positions_nm: np.ndarray,
    mapped_atoms: list[int],
    temperature: float,
    samples: int = 2000,
    stride_steps: int = 20,
    equilibration_ps: float = 2.0,
    timestep_fs: float = 1.0,
    friction_per_ps: float = 5.0,
    eps_nm: float = 1e-5,
    blocks: int = 10,
    seed: int = 0,
    platform: str = "Reference",
) -> PMFHessianEstimate:
    """Estimate ``∇²U(R)`` where ``R`` is the slice of ``positions_nm`` on ``mapped_atoms``.

    ``system`` is the all-atom OpenMM System (it is copied; masses of mapped atoms set to 0).
    ``samples`` frames, ``stride_steps`` MD steps apart, after ``equilibration_ps``.
    """
    import openmm as mm
    from openmm import unit

    if samples < 2 * blocks or blocks < 2:
        raise ConfigError(f"pmf_hessian: need blocks >= 2 and samples >= 2 * blocks, got samples={samples}, blocks={blocks}")
    if system.getNumConstraints():
        constrained = {a for c in range(system.getNumConstraints()) for a in system.getConstraintParameters(c)[:2]}
        if constrained & set(mapped_atoms):
            raise ConfigError("pmf_hessian: the system constrains mapped atoms; the estimator needs flexible bonds there")
    system = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(system))
    n_atoms = system.getNumParticles()
    for a in mapped_atoms:
        if not 0 <= a < n_atoms:
            raise ConfigError(f"pmf_hessian: mapped atom {a} is outside the system's {n_atoms} atoms")
        system.setParticleMass(a, 0.0)
    integrator = mm.LangevinMiddleIntegrator(temperature * unit.kelvin, friction_per_ps / unit.picosecond, timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed + 1)
    context = make_context(system, platform, integrator)
    context.setPositions(np.asarray(positions_nm, dtype=np.float64).reshape(-1, 3))
    context.setVelocitiesToTemperature(temperature * unit.kelvin, seed + 1)
    integrator.step(int(round(equilibration_ps * 1000.0 / timestep_fs)))
    b = np.zeros((n_atoms, len(mapped_atoms)))
    b[mapped_atoms, np.arange(len(mapped_atoms))] = 1.0
    evaluate = ProjectedHessian(make_context(system, platform), b, eps_nm)
    hess, forces = [], []
    for _ in progress(range(samples), desc="PMF Hessian: constrained sampling", unit="sample"):
        integrator.step(stride_steps)
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        frame = evaluate(x)
        hess.append(frame.hessian)
        forces.append(frame.forces)
    hess, forces = np.asarray(hess), np.asarray(forces)
    beta = beta_of(temperature)
    estimate = _estimate(hess, forces, beta)
    size = samples // blocks
    per_block = np.stack([_estimate(hess[i * size : (i + 1) * size], forces[i * size : (i + 1) * size], beta) for i in range(blocks)])
    stderr = per_block.std(0, ddof=1) / np.sqrt(blocks)
    return PMFHessianEstimate(estimate, stderr, hess.mean(0), forces.mean(0), samples)
