"""Does the PMF-Hessian reference depend on how the unmapped atoms are sampled? Measure it.

At one equilibrated configuration of alanine dipeptide (ACE-ALA-NME, AMBER ff99SB-ILDN, OBC, 300 K,
backbone map C N CA C N), the constrained estimate ``E[BᵀHB|R] − β Cov(f|R)`` is computed with
each sampler and step, the time between samples fixed (``--stride_fs``), and the script prints per
run: the mapped-force variance per component, the soft eigenvalues and the stiff trace of the
estimate (with their batch-means standard errors), the GHMC acceptance, and — the independent
check — the configurational temperature of the moving atoms, ``⟨|∇u|²⟩ / (k_B ⟨∇²u⟩)``, which
equals the bath temperature for exact Boltzmann sampling (Laplacian by central differences of
OpenMM forces along every moving coordinate).

    python benchmarks/pmf_reference_convergence.py [--samples 2000] [--temperature_samples 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def configuration(seed: int = 1):
    import openmm as mm
    from openmm import unit

    from cglight.prepare.reference import make_context
    from cglight.prepare.systems import build_system

    aa = build_system("alanine-dipeptide", "implicit-obc")
    integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    context = make_context(aa.system, "Reference", integrator)
    context.setPositions(aa.positions)
    mm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    integrator.step(5000)
    x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    backbone = {("C", "ACE"), ("N", "ALA"), ("CA", "ALA"), ("C", "ALA"), ("N", "NME")}
    mapped = [a.index for a in aa.topology.atoms() if (a.name, a.residue.name) in backbone]
    return aa.system, x, mapped


def configurational_temperature(system, x0, mapped, sampler: str, timestep_fs: float, stride_fs: float, samples: int) -> tuple:
    """``(T_conf, stderr)`` of the moving atoms over ``samples`` configurations of ``sampler``."""
    from openmm import unit

    from cglight.prepare.pmf_hessian import constrained_sampler
    from cglight.prepare.reference import make_context
    from cglight.units import KB_KJ_PER_MOL_K

    n = system.getNumParticles()
    context, integrator, _ = constrained_sampler(system, x0, mapped, 300.0, sampler, timestep_fs, seed=2)  # the estimator's
    stride = max(1, int(round(stride_fs / timestep_fs)))
    integrator.step(int(round(2000 / timestep_fs)))
    probe = make_context(system, "Reference")  # forces only
    moving = [i for i in range(n) if i not in set(mapped)]

    def forces(x):
        probe.setPositions(x)
        return probe.getState(getForces=True).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)

    eps, grad2, laplacian = 1e-5, [], []
    for _ in range(samples):
        integrator.step(stride)
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        grad2.append(float((forces(x)[moving] ** 2).sum()))
        trace = 0.0
        for i in moving:
            for d in range(3):
                up, down = x.copy(), x.copy()
                up[i, d] += eps
                down[i, d] -= eps
                trace -= (forces(up)[i, d] - forces(down)[i, d]) / (2 * eps)
        laplacian.append(trace)
    grad2, laplacian = np.array(grad2), np.array(laplacian)
    blocks = np.array_split(np.arange(samples), 10)
    per = [grad2[b].mean() / laplacian[b].mean() / KB_KJ_PER_MOL_K for b in blocks]
    return grad2.mean() / laplacian.mean() / KB_KJ_PER_MOL_K, float(np.std(per, ddof=1) / np.sqrt(len(per)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--stride_fs", type=float, default=20.0)
    parser.add_argument("--temperature_samples", type=int, default=400, help="0: skip the configurational temperature")
    parser.add_argument("--runs", default="langevin:1,langevin:0.5,langevin:0.25,ghmc:2,ghmc:1,ghmc:0.5")
    args = parser.parse_args()

    from cglight.evaluate.curvature import curvature_report, subspace_basis
    from cglight.prepare.pmf_hessian import conditional_pmf_hessian
    from cglight.units import NM_TO_ANGSTROM

    system, x0, mapped = configuration()
    basis = subspace_basis(x0[mapped] * NM_TO_ANGSTROM, [[0, 1], [1, 2], [2, 3], [3, 4]])
    print(f"alanine dipeptide, one configuration, {args.samples} samples {args.stride_fs:g} fs apart\n")
    print(f"{'sampler':<9} {'dt fs':>6} {'accept':>7} {'Var(f) per comp.':>18} {'soft eigenvalues':>28} {'stiff trace':>14} "
          f"{'T_conf (K)':>12} {'s':>5}")
    for run in args.runs.split(","):
        sampler, dt = run.split(":")
        dt = float(dt)
        t = time.perf_counter()
        est = conditional_pmf_hessian(system, x0, mapped, 300.0, samples=args.samples, stride_steps=int(round(args.stride_fs / dt)),
                                      timestep_fs=dt, sampler=sampler, seed=2)
        report = curvature_report(est.hessian, None, basis, reference_samples=est.per_block)
        blocks = est.per_block.shape[0]
        soft = report["soft"]
        eig = ", ".join(f"{v:.0f} ± {e:.0f}" for v, e in zip(soft["reference_eigenvalues"], soft["reference_eigenvalues_stderr"]))
        stiff = f"{report['stiff']['reference_trace']:.0f} ± {report['stiff']['reference_trace_stderr']:.0f}"
        tconf = ""
        if args.temperature_samples:
            tc, se = configurational_temperature(system, x0, mapped, sampler, dt, args.stride_fs, args.temperature_samples)
            tconf = f"{tc:.0f} ± {se:.0f}"
        print(f"{sampler:<9} {dt:>6g} {est.acceptance:>7.3f} {est.force_variance:>18.1f} {eig:>28} {stiff:>14} {tconf:>12} "
              f"{time.perf_counter() - t:>5.0f}  ({blocks} blocks)", flush=True)


if __name__ == "__main__":
    main()
