"""The PMF Hessian at a fixed CG configuration, estimated from constrained all-atom sampling.

With a slice map the CG configuration ``R`` fixes the mapped atoms. They are held still while
every other atom is sampled from ``exp(−βu(x)) δ(Mx − R)``, and over those samples

    ∇²U(R) = E[BᵀHB | R] − β Cov(f | R),      f = Bᵀ F

(the identity the ``hvp_cov`` loss is built on), so both terms are averaged directly: a
reference curvature no model was trained on. The error bar is the standard error of batch
means over ``blocks`` contiguous blocks of samples (element-wise and in Frobenius norm).

Samplers (``sampler``, one table: :data:`SAMPLERS`):

- ``ghmc`` (default): generalised hybrid Monte Carlo (:mod:`cglight.prepare.ghmc`), exact for any
  step: the Metropolis test removes the integrator's bias, the step sets only the acceptance.
- ``langevin``: OpenMM's LangevinMiddleIntegrator with the mapped atoms at zero mass. Measured on
  alanine dipeptide (one configuration, 2000 samples 20 fs apart) it samples the moving atoms too
  cold (configurational temperature 252 ± 12 K at 1 fs, 298 ± 13 K at 0.25 fs) and its mapped-force
  variance moves with the step (324, 339, 378 kcal²/mol²/Å² at 1, 0.5, 0.25 fs, against 440–463
  from ``ghmc`` at 0.5–2 fs): ``β Cov(f|R)`` comes out too small and the reference too stiff.
  Kept for comparison only (docs/evaluate.md has the table).

:func:`convergence_report` repeats the estimate with the step halved and with the samples doubled
and states how far each moved against the standard errors; the excess of the step change over
its noise is folded into the estimate's error bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cglight.errors import ConfigError
from cglight.prepare.ghmc import acceptance, ghmc_integrator
from cglight.prepare.hessian import ProjectedHessian
from cglight.prepare.reference import make_context
from cglight.progress import progress
from cglight.units import steps_in
from cglight.units import beta as beta_of

SAMPLERS = ("ghmc", "langevin")
"""How the unmapped atoms are sampled: see the module docstring."""


@dataclass
class PMFHessianEstimate:
    hessian: np.ndarray  # [3n, 3n] kcal/mol/Å²
    stderr: np.ndarray  # [3n, 3n] element-wise standard error
    bare: np.ndarray  # E[BᵀHB | R]
    mean_force: np.ndarray  # E[f | R], [n, 3]
    samples: int
    per_block: np.ndarray = field(repr=False, default=None)  # [blocks, 3n, 3n]: the estimate of each block of samples
    settings: dict = field(default_factory=dict)  # sampler, timestep_fs, stride_steps, friction_per_ps, equilibration_ps, ...
    acceptance: float = float("nan")  # GHMC: fraction of steps accepted
    force_variance: float = float("nan")  # mean per-component Var(f | R), kcal²/mol²/Å²
    step_bias: float = 0.0  # Frobenius excess of the half-step change over its noise (convergence_report)

    @property
    def frobenius_stderr(self) -> float:
        """The standard error in Frobenius norm, with any measured step-size bias added in quadrature."""
        return float(np.sqrt((self.stderr**2).sum() + self.step_bias**2))


def _estimate(hessians: np.ndarray, forces: np.ndarray, beta: float) -> np.ndarray:
    f = forces.reshape(len(forces), -1)
    return hessians.mean(0) - beta * np.cov(f, rowvar=False, bias=True)


def constrained_sampler(system, positions_nm: np.ndarray, mapped_atoms: list[int], temperature: float, sampler: str = "ghmc",
                        timestep_fs: float = 1.0, friction_per_ps: float = 5.0, seed: int = 0, platform: str = "Reference"):
    """``(context, integrator, system)``: an OpenMM context sampling every atom but ``mapped_atoms`` (held
    where ``positions_nm`` puts them) from ``exp(−βu)`` at ``temperature`` with ``sampler``, its velocities
    drawn (the held atoms' at rest); ``system`` is the copy it runs (``system`` itself is not changed)."""
    import openmm as mm
    from openmm import unit

    if sampler not in SAMPLERS:
        raise ConfigError(f"pmf_hessian: unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    system = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(system))
    n_atoms = system.getNumParticles()
    for a in mapped_atoms:
        if not 0 <= a < n_atoms:
            raise ConfigError(f"pmf_hessian: mapped atom {a} is outside the system's {n_atoms} atoms")
    if sampler == "ghmc":
        integrator = ghmc_integrator(temperature, friction_per_ps, timestep_fs, mapped_atoms, n_atoms, seed + 1)
    else:  # langevin: OpenMM holds zero-mass atoms still
        for a in mapped_atoms:
            system.setParticleMass(a, 0.0)
        integrator = mm.LangevinMiddleIntegrator(temperature * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
        integrator.setRandomNumberSeed(seed + 1)
    context = make_context(system, platform, integrator)
    context.setPositions(np.asarray(positions_nm, dtype=np.float64).reshape(-1, 3))
    context.setVelocitiesToTemperature(temperature * unit.kelvin, seed + 1)
    v = context.getState(getVelocities=True).getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
    v[list(mapped_atoms)] = 0.0  # the held atoms start (and stay) at rest
    context.setVelocities(v)
    return context, integrator, system


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
    sampler: str = "ghmc",
) -> PMFHessianEstimate:
    """Estimate ``∇²U(R)`` where ``R`` is the slice of ``positions_nm`` on ``mapped_atoms``.

    ``system`` is the all-atom OpenMM System (it is copied, not changed). ``samples`` frames,
    ``stride_steps`` steps of ``timestep_fs`` apart, after ``equilibration_ps``, by ``sampler``.
    """
    from openmm import unit

    if sampler not in SAMPLERS:
        raise ConfigError(f"pmf_hessian: unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if not (timestep_fs > 0 and stride_steps >= 1 and equilibration_ps >= 0 and friction_per_ps > 0):
        raise ConfigError("pmf_hessian: need timestep_fs > 0, stride_steps >= 1, equilibration_ps >= 0, friction_per_ps > 0; got "
                          f"{timestep_fs}, {stride_steps}, {equilibration_ps}, {friction_per_ps}")
    if samples < 2 * blocks or blocks < 2:
        raise ConfigError(f"pmf_hessian: need blocks >= 2 and samples >= 2 * blocks, got samples={samples}, blocks={blocks}")
    if system.getNumConstraints():
        constrained = {a for c in range(system.getNumConstraints()) for a in system.getConstraintParameters(c)[:2]}
        if constrained & set(mapped_atoms):
            raise ConfigError("pmf_hessian: the system constrains mapped atoms; the estimator needs flexible bonds there")
    context, integrator, system = constrained_sampler(system, positions_nm, mapped_atoms, temperature, sampler, timestep_fs,
                                                      friction_per_ps, seed, platform)
    n_atoms = system.getNumParticles()
    integrator.step(steps_in(equilibration_ps, timestep_fs))
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
    settings = dict(sampler=sampler, timestep_fs=timestep_fs, stride_steps=stride_steps, friction_per_ps=friction_per_ps,
                    equilibration_ps=equilibration_ps, samples=samples, blocks=blocks, eps_nm=eps_nm, seed=seed)
    return PMFHessianEstimate(estimate, stderr, hess.mean(0), forces.mean(0), samples, per_block, settings,
                              acceptance(integrator) if sampler == "ghmc" else float("nan"),
                              float(forces.reshape(samples, -1).var(0).mean()))


def convergence_report(system, positions_nm: np.ndarray, mapped_atoms: list[int], temperature: float, **settings) -> dict:
    """The estimate at ``settings``, again with the step halved (the same time between samples) and
    with the samples doubled; how far each moved, in Frobenius norm and against the combined
    standard errors; and the estimate with the step change's excess over its noise added to its
    error bar (``step_bias``). Returns ``{estimate, half_step, more_samples, table}``."""
    base = conditional_pmf_hessian(system, positions_nm, mapped_atoms, temperature, **settings)
    s = base.settings
    half = conditional_pmf_hessian(system, positions_nm, mapped_atoms, temperature,
                                   **{**settings, "timestep_fs": s["timestep_fs"] / 2, "stride_steps": 2 * s["stride_steps"],
                                      "seed": s["seed"] + 101})
    more = conditional_pmf_hessian(system, positions_nm, mapped_atoms, temperature,
                                   **{**settings, "samples": 2 * s["samples"], "seed": s["seed"] + 202})
    rows = {}
    for name, other in (("half_step", half), ("more_samples", more)):
        change = float(np.linalg.norm(other.hessian - base.hessian))
        noise = float(np.sqrt((base.stderr**2).sum() + (other.stderr**2).sum()))
        rows[name] = {"change": change, "noise": noise, "ratio": change / noise if noise > 0 else float("inf"),
                      "force_variance": other.force_variance, "timestep_fs": other.settings["timestep_fs"],
                      "samples": other.samples}
    rows["base"] = {"force_variance": base.force_variance, "timestep_fs": s["timestep_fs"], "samples": base.samples,
                    "frobenius_norm": float(np.linalg.norm(base.hessian)), "stderr": float(np.sqrt((base.stderr**2).sum()))}
    base.step_bias = float(np.sqrt(max(0.0, rows["half_step"]["change"] ** 2 - rows["half_step"]["noise"] ** 2)))
    rows["base"]["error_with_step_bias"] = base.frobenius_stderr
    return {"estimate": base, "half_step": half, "more_samples": more, "table": rows}
