"""A Metropolised sampler for constrained all-atom sampling: generalised hybrid Monte Carlo (GHMC).

Langevin dynamics with a finite step samples a distribution that is off by ``O(Δt²)``; for the
PMF-Hessian reference that bias lands in ``β Cov(f | R)``, whose stiff part comes from hydrogens
vibrating against the held atoms. GHMC removes it: each step partly refreshes the velocities
(``v ← a v + √(1 − a²) σ ξ``, ``a = e^{−γΔt}``), takes one velocity-Verlet step, and accepts it
with probability ``min(1, e^{−βΔH})``; a rejection restores the positions and reverses the
velocities. Every step keeps ``exp(−β u(x))`` on the moving atoms exactly, whatever ``Δt``; the
step size only sets the acceptance rate and so the correlation between samples.

Held atoms keep their masses; a per-degree-of-freedom ``mobile`` mask (0 for them, 1 for the others)
keeps their velocities at zero and their positions fixed, so no zero-mass trick is needed.
"""

from __future__ import annotations

import math

import numpy as np

from cglight.units import FS_TO_PS, KB_KJ_PER_MOL_K


def ghmc_integrator(temperature: float, friction_per_ps: float, timestep_fs: float, held_atoms: list[int], n_atoms: int,
                    seed: int = 0):
    """An OpenMM ``CustomIntegrator`` running GHMC at ``temperature`` (K) with ``held_atoms`` fixed.

    ``accepted`` and ``trials`` are global variables: :func:`acceptance` reads their ratio.
    """
    import openmm as mm

    dt_ps = timestep_fs * FS_TO_PS
    kt = KB_KJ_PER_MOL_K * temperature
    a = math.exp(-friction_per_ps * dt_ps)
    integrator = mm.CustomIntegrator(dt_ps)
    integrator.addGlobalVariable("kT", kt)
    integrator.addGlobalVariable("a", a)
    integrator.addGlobalVariable("b", math.sqrt(1.0 - a * a))
    for name in ("h_old", "h_new", "take", "accepted", "trials"):
        integrator.addGlobalVariable(name, 0.0)
    integrator.addPerDofVariable("mobile", 1.0)
    integrator.addPerDofVariable("x_old", 0.0)
    integrator.addPerDofVariable("v_old", 0.0)
    integrator.addComputePerDof("v", "mobile * (a * v + b * sqrt(kT / m) * gaussian)")
    integrator.addComputeSum("ke", "0.5 * m * v * v")
    integrator.addComputeGlobal("h_old", "ke + energy")
    integrator.addComputePerDof("x_old", "x")
    integrator.addComputePerDof("v_old", "v")
    integrator.addComputePerDof("v", "v + mobile * 0.5 * dt * f / m")
    integrator.addComputePerDof("x", "x + mobile * dt * v")
    integrator.addComputePerDof("v", "v + mobile * 0.5 * dt * f / m")
    integrator.addComputeSum("ke", "0.5 * m * v * v")
    integrator.addComputeGlobal("h_new", "ke + energy")
    integrator.addComputeGlobal("take", "step(exp(-(h_new - h_old) / kT) - uniform)")
    integrator.addComputePerDof("x", "take * x + (1 - take) * x_old")
    integrator.addComputePerDof("v", "take * v - (1 - take) * v_old")
    integrator.addComputeGlobal("accepted", "accepted + take")
    integrator.addComputeGlobal("trials", "trials + 1")
    integrator.setRandomNumberSeed(seed)
    integrator.setPerDofVariableByName("mobile", [mm.Vec3(*m) for m in mobile_mask(held_atoms, n_atoms)])
    return integrator


def mobile_mask(held_atoms: list[int], n_atoms: int) -> np.ndarray:
    """``[N, 3]``: 0 for the held atoms' coordinates, 1 for the rest."""
    mask = np.ones((n_atoms, 3))
    mask[list(held_atoms)] = 0.0
    return mask


def acceptance(integrator) -> float:
    """The fraction of GHMC steps accepted so far (NaN before the first)."""
    trials = integrator.getGlobalVariableByName("trials")
    return integrator.getGlobalVariableByName("accepted") / trials if trials else float("nan")
