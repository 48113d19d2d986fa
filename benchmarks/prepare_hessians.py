"""Cost of `cglight prepare`: Hessian modes against raw OpenMM force evaluations, MD cost per
simulated ns, the force autocorrelation time that sets each recipe's stride, and the speed-up
from 1 to 2 worker processes.

    python benchmarks/prepare_hessians.py [--recipes ala2 chignolin trpcage villin] [--frames 4]
        [--md-ps 2] [--workers-frames 16]

For each recipe (configs/prepare/<name>.yaml) it prints, measured in the same run:
- per frame: `full` and `probes` (K from the recipe) time, the time of the same number of bare
  OpenMM force evaluations (setPositions + getState(getForces)) at the same position right after,
  and the ratio (target <= 1.15): medians over the frame pairs;
- MD: ms per step on the recipe's MD platform, seconds per simulated ns and per saved frame;
- the autocorrelation <f(t)·f(t+lag)>/<|f|²> of the mapped forces at 0.1, 0.2, 0.5 and 1 ps and at the
  recipe's stride, from a short run sampled every 10 fs (the stride is chosen where it has decayed).
Then the wall and CPU time of re-evaluating frames with `workers: 1` and `workers: 2`.
Everything runs on one thread per process.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from cglight.prepare.config_file import load_prepare_config
from cglight.prepare import prepare_dataset
from cglight.prepare.hessian import ProjectedHessian
from cglight.prepare.mapping import make_map
from cglight.prepare.reference import langevin_frames, make_context, replica_seed
from cglight.prepare.systems import SOLVENTS, build_system, pdb_text
from cglight.units import fs_to_ps, steps_in

ROOT = Path(__file__).resolve().parents[1]


def _raw(context, xs, evaluations: int) -> float:
    """Seconds for ``evaluations`` bare force evaluations, spread evenly over the frames ``xs``."""
    per_frame = evaluations // len(xs)
    t0 = time.perf_counter()
    for i in range(evaluations):
        context.setPositions(xs[min(i // per_frame, len(xs) - 1)])
        np.asarray(context.getState(getForces=True).getForces(asNumpy=True)._value)
    return time.perf_counter() - t0


def recipe(name: str, frames: int, md_ps: float) -> dict:
    c = load_prepare_config(ROOT / "configs" / "prepare" / f"{name}.yaml")
    aa = build_system(c.molecule, c.solvent, c.pdb, c.forcefield, c.constraints, c.add_hydrogens)
    cg = make_map(aa.topology, aa.masses, c.mapping)
    md_platform = c.md_platform or c.platform
    stride_fs = 10.0
    steps = int(round(stride_fs / c.timestep_fs))
    n_samples = steps_in(md_ps, stride_fs)
    t0 = time.perf_counter()
    xs = np.stack(list(langevin_frames(aa.system, aa.positions, c.temperature, c.timestep_fs, c.friction_per_ps, 1.0,
                                       n_samples, steps, replica_seed(c.seed, 0), md_platform)))
    # MD cost: time a further stretch without the set-up (minimisation, equilibration)
    import openmm as mm
    from openmm import unit

    integ = mm.LangevinMiddleIntegrator(c.temperature * unit.kelvin, c.friction_per_ps / unit.picosecond, c.timestep_fs * unit.femtosecond)
    ctx = make_context(aa.system, md_platform, integ)
    ctx.setPositions(xs[-1])
    ctx.setVelocitiesToTemperature(c.temperature * unit.kelvin, 1)
    n_steps = 2000
    t1 = time.perf_counter()
    integ.step(n_steps)
    ms_step = (time.perf_counter() - t1) / n_steps * 1e3
    _ = t0
    hess_ctx = make_context(aa.system, c.platform)
    b = cg.force_matrix()
    forces = []
    for x in xs:
        hess_ctx.setPositions(x)
        f = np.asarray(hess_ctx.getState(getForces=True).getForces(asNumpy=True)._value)
        forces.append((b.T @ f).reshape(-1))
    forces = np.array(forces)
    forces -= forces.mean(axis=0)

    def force_acf(lag_ps: float) -> float:
        """<f(t)·f(t+lag)> / <|f|²> of the mapped forces (NaN when the run is too short)."""
        lag = steps_in(lag_ps, stride_fs)
        if lag >= len(forces) // 2:
            return float("nan")
        return float((forces[:-lag] * forces[lag:]).sum(1).mean() / (forces * forces).sum(1).mean())

    stride_ps = fs_to_ps(c.stride_steps * c.timestep_fs)
    frames_x = xs[:: max(1, len(xs) // frames)][:frames]
    probe = ProjectedHessian(hess_ctx, b, c.hessian_eps_nm, "full")
    t = time.perf_counter()
    probe(frames_x[0])
    # small systems: cycle the frames so that the timings of a mode last >= 1 s in all
    cycles = max(1, int(np.ceil(1.0 / max(time.perf_counter() - t, 1e-6) / len(frames_x))))
    frames_x = np.concatenate([frames_x] * cycles)
    out = {"name": name, "atoms": aa.system.getNumParticles(), "beads": cg.n_beads, "md_platform": md_platform, "ms_step": ms_step,
           "s_per_ns": ms_step * 1e6 / c.timestep_fs / 1e3, "s_per_frame_md": ms_step * c.stride_steps / 1e3,
           "stride_ps": stride_ps, "acf": {lag: force_acf(lag) for lag in (0.1, 0.2, 0.5, 1.0)}, "acf_stride": force_acf(stride_ps)}
    for mode, k in (("full", 0), ("probes", c.hessian_probes)):
        # frame by frame, a Hessian then the same number of bare evaluations right after it; the
        # medians over many such pairs resist the bursts of a shared machine
        ph = ProjectedHessian(hess_ctx, b, c.hessian_eps_nm, mode, k)
        rng = np.random.default_rng(0)
        pairs = []
        for x in frames_x:
            n0 = ph.evaluations
            t = time.perf_counter()
            ph(x, rng)
            dt = time.perf_counter() - t
            pairs.append((dt, _raw(hess_ctx, x[None], ph.evaluations - n0)))
        dt, raw = np.array(pairs).T
        out[mode] = {"s_per_frame": float(np.median(dt)), "raw_s_per_frame": float(np.median(raw)),
                     "ratio": float(np.median(dt / raw)), "evaluations": ph.evaluations // len(frames_x), "k": k}
    out["config"], out["xs"], out["aa"] = c, xs, aa
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def workers_speedup(r: dict, n_frames: int) -> tuple[float, float, float, float]:
    """Best wall time of two runs re-evaluating ``n_frames`` frames (full Hessians) with 1 and with 2 workers."""
    from openmm import app, unit

    c, aa = r["config"], r["aa"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "top.pdb").write_text(pdb_text(aa.topology, aa.positions))
        with open(tmp / "traj.dcd", "wb") as f:
            dcd = app.DCDFile(f, aa.topology, 0.01)
            for x in r["xs"][:n_frames]:
                dcd.writeModel(x * unit.nanometer)
        times, cpus = {1: float("inf"), 2: float("inf")}, {1: 0.0, 2: 0.0}
        for run, workers in enumerate((1, 2, 1, 2)):  # alternate and keep the best of each: the machine is shared
            cfg = type(c)(**{**c.__dict__, "pdb": str(tmp / "top.pdb"), "trajectory": [str(tmp / "traj.dcd")],
                             "forcefield": c.forcefield or list(SOLVENTS[c.solvent]),
                             "frames": n_frames, "shard_frames": max(1, n_frames // 8), "hessian": "full", "workers": workers})
            t, cpu = time.perf_counter(), _cpu_seconds()
            prepare_dataset(cfg, tmp / f"w{workers}-{run}")
            if time.perf_counter() - t < times[workers]:
                times[workers], cpus[workers] = time.perf_counter() - t, _cpu_seconds() - cpu
    return times[1], times[2], cpus[1], cpus[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["ala2", "chignolin", "trpcage", "villin"])
    p.add_argument("--frames", type=int, default=4, help="frames timed per Hessian mode")
    p.add_argument("--md-ps", type=float, default=10.0, help="ps of MD sampled every 10 fs for the force autocorrelation")
    p.add_argument("--workers-frames", type=int, default=16, help="frames re-evaluated for the 1 vs 2 workers timing (0: skip)")
    p.add_argument("--workers-recipe", default="chignolin")
    args = p.parse_args()
    os.environ.setdefault("CGLIGHT_PROGRESS", "0")
    rows = {}
    print(f"{'recipe':<10} {'atoms':>5} {'beads':>5} {'mode':<10} {'evals':>5} {'s/frame':>8} {'raw s':>8} {'ratio':>6}")
    for name in args.recipes:
        r = recipe(name, args.frames, args.md_ps)
        rows[name] = r
        for mode in ("full", "probes"):
            m = r[mode]
            label = mode if mode == "full" else f"probes K={m['k']}"
            print(f"{name:<10} {r['atoms']:>5} {r['beads']:>5} {label:<10} {m['evaluations']:>5} {m['s_per_frame']:>8.4f} "
                  f"{m['raw_s_per_frame']:>8.4f} {m['ratio']:>6.3f}")
    print(f"\n{'recipe':<10} {'MD on':<9} {'ms/step':>8} {'s/ns':>8} {'stride ps':>9} {'MD s/frame':>10}   force ACF at 0.1 0.2 0.5 1 ps, at stride")
    for name, r in rows.items():
        acf = " ".join(f"{v:6.3f}" for v in r["acf"].values())
        print(f"{name:<10} {r['md_platform']:<9} {r['ms_step']:>8.3f} {r['s_per_ns']:>8.0f} {r['stride_ps']:>9.2f} "
              f"{r['s_per_frame_md']:>10.3f}   {acf}, {r['acf_stride']:6.3f}")
    if args.workers_frames and args.workers_recipe in rows:
        one, two, cpu1, cpu2 = workers_speedup(rows[args.workers_recipe], args.workers_frames)
        print(f"\nworkers ({args.workers_recipe}, {args.workers_frames} frames, full Hessians, re-evaluation; cores: {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.1f}):\n  wall: 1 worker {one:.2f} s, 2 workers {two:.2f} s, speed-up {one / two:.2f}x\n"
              f"  CPU time: 1 worker {cpu1:.2f} s, 2 workers {cpu2:.2f} s (parallel efficiency {cpu1 / cpu2:.2f}; "
              f"on a loaded machine the wall-time speed-up mostly measures the scheduler)")


if __name__ == "__main__":
    main()
