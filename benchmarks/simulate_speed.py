"""Batched CG Langevin speed: cglight's integrator against torchmd's, in one run.

    python benchmarks/simulate_speed.py [--beads 10 35] [--replicas 32] [--steps 300] [--workers N]

The same untrained ``graph-network`` energy (the quickstart's backbone) drives both; printed are
replica-steps per second (summed over all replicas) for cglight's BAOAB integrator, torchmd
1.1.2's integrator (an optional benchmark dependency: ``pip install --no-deps torchmd==1.1.2``),
and the model's bare forward + gradient on the same batch, which bounds both, all in this one
process with one torch thread. Then ``cglight simulate``'s own integration
(``cglight.simulate.block.integrate_block`` from a checkpoint, run by ``run_jobs`` as the
command runs it, without the file writing) with 1 worker and with ``--workers`` worker processes
(default: every core), one torch thread each, against torchmd in one process with its best thread
count (1 or every core, measured first), and the ceiling of any integrator in that many
processes: the bare forward + gradient of the same blocks in as many concurrent processes (no
integrator; both tools and the ceiling use the same model with its parameters frozen, as
``cglight simulate`` loads it). Then the cost of the per-replica noise streams, and two
systems of different sizes (the ``--beads`` given) in one run: integrated separately (one force
call per system per step, as before) against together (``run_together``: one batched force call
per step for both), in replica-steps per second of both systems. The box is passed to torchmd but
ignored by the model (torchmd-net 3.1 treats a zero box as periodic and returns NaN).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from cglight.energy import CGEnergy
from cglight.simulate.block import BlockJob, SystemSpec, force_function, group_force_function, integrate_block, load_energy_model
from cglight.simulate.langevin import LangevinIntegrator, run_together
from cglight.simulate.noise import normals, replica_keys
from cglight.simulate.settings import LangevinSettings
from cglight.pool import cores
from cglight.pool import even_blocks as split
from cglight.simulate.workers import run_jobs
from cglight.simulate.run import CPU_BEADS_PER_CALL


def chain(n: int, replicas: int, seed: int = 0) -> torch.Tensor:
    """A compact random walk of ``n`` beads 3.8 Å apart (every bead has neighbours within the cutoff)."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(replicas, n, 3, generator=g)
    steps = 3.8 * steps / steps.norm(dim=-1, keepdim=True)
    return torch.cumsum(steps, 1)


PRIORS = {"bonds": {}, "angles": {}}


def chain_model(backbone: dict, n: int, replicas: int) -> tuple[CGEnergy, torch.Tensor, list[list[int]], torch.Tensor]:
    """An untrained ``backbone`` with bond and angle priors on a chain of ``n`` beads: the model (frozen), its
    bead types, bonds and ``replicas`` copies of the chain [R, n, 3] Å. The priors, fitted to noisy copies of
    the chain, keep every replica together, as in a real CG simulation (an untrained network alone lets the
    beads drift apart, and a sparser graph is cheaper to evaluate: the rates would not be comparable)."""
    pos = chain(n, 1)
    types = torch.randint(1, 10, (n,), generator=torch.Generator().manual_seed(n))
    bonds = [[i, i + 1] for i in range(n - 1)]
    model = CGEnergy(backbone, PRIORS).eval()
    frames = pos + 0.05 * torch.randn(2000, n, 3, generator=torch.Generator().manual_seed(1))
    model.fit_priors([(frames, types)], {"bench": SimpleNamespace(temperature=300.0, bead_types=types.tolist(), bonds=bonds)})
    model.requires_grad_(False)  # as cglight simulate loads it (load_energy_model); torchmd gets the same model
    return model, types, bonds, pos.expand(replicas, n, 3).clone()


def rate(fn, steps: int, replicas: int, warmup: int = 20) -> float:
    fn(warmup)
    t = time.perf_counter()
    fn(steps)
    return steps * replicas / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beads", type=int, nargs="+", default=[10, 35])
    parser.add_argument("--replicas", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (medians are printed)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes of the multi-worker figure (0: every core)")
    args = parser.parse_args()
    threads = int(os.environ.get("CGLIGHT_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    workers = args.workers or cores()
    steps = -(-args.steps // CHUNK) * CHUNK  # whole chunks of cglight simulate's saved frames
    torch.manual_seed(0)
    backbone = {"name": "graph-network", "embedding_dimension": 64, "num_layers": 3, "cutoff_upper": 8.0}
    print(f"torch threads: {torch.get_num_threads()}, replicas: {args.replicas}, graph-network 64×3, replica-steps/s")
    print(f"{'beads':>5} {'forward+grad':>13} {'cglight':>9} {'torchmd':>9} {'cglight/torchmd':>16}")
    rows, noise_rows = [], []
    for n in args.beads:
        model, types, bonds, pos = chain_model(backbone, n, args.replicas)
        priors = PRIORS
        masses = torch.full((n,), 12.0)
        forces = force_function(model, types, bonds)

        def bare(k):
            for _ in range(k):
                forces(pos)

        integ = LangevinIntegrator(forces, masses, LangevinSettings(1.0, 1.0, 300.0), seed=0)
        state = integ.init_state(pos.clone())
        ours = rate(lambda k: integ.run(state, k), args.steps, args.replicas)
        tmd = torchmd_integrator(model, types, bonds, pos, masses)
        if tmd is None:
            print("(torchmd is not installed: pip install --no-deps torchmd==1.1.2)")
        best = best_threads(tmd, sorted({1, cores()}), args.replicas) if tmd is not None else 1
        torch.set_num_threads(threads)
        spec = SystemSpec("bench", types.tolist(), bonds, masses.tolist(), 300.0, (0, 0), 100.0)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / "bench.ckpt"
            torch.save({"hyper_parameters": {"backbone": backbone, "priors": priors},
                        "state_dict": {f"core.{k}": v for k, v in model.state_dict().items()}}, ckpt)
            # interleaved rounds, median of each: the machine is shared, so one pass is noisy
            runs = {k: [] for k in ("raw", "ours", "theirs", "best", "one", "many", "one_cpu", "many_cpu", "ceiling", "ceiling_cpu")}
            runs["ours"].append(ours)
            for _ in range(args.rounds):
                runs["raw"].append(rate(bare, args.steps, args.replicas))
                runs["ours"].append(rate(lambda k: integ.run(state, k), args.steps, args.replicas))
                if tmd is not None:
                    runs["theirs"].append(rate(tmd.step, args.steps, args.replicas))
                    if best != 1:
                        torch.set_num_threads(best)
                        runs["best"].append(rate(tmd.step, args.steps, args.replicas))
                        torch.set_num_threads(threads)
                for key, w, target in (("one", 1, timed_block), ("many", workers, timed_block), ("ceiling", workers, bare_block)):
                    wall, cpu = simulate_rate(ckpt, spec, pos, w, steps, target)
                    runs[key].append(wall)
                    runs[f"{key}_cpu"].append(cpu)
        med = {k: float(np.median(v)) if v else float("nan") for k, v in runs.items()}
        if best == 1:
            med["best"] = med["theirs"]
        print(f"{n:>5} {med['raw']:>13.0f} {med['ours']:>9.0f} {med['theirs']:>9.0f} {med['ours'] / med['theirs']:>16.2f}")
        rows.append((n, best, med))
        noise_rows.append((n, *noise_cost(args.replicas, n, med["ours"])))
    print(f"\ncglight simulate's integration in {workers} worker processes (one torch thread each) against torchmd in one "
          f"process with its best thread count; replica-steps/s summed over all {args.replicas} replicas. 'wall': measured "
          "by the clock; 'cpu': each worker's replica-steps per CPU second it got, summed (what the workers give on "
          "cores of their own; equal to 'wall' when no other load shares the cores); 'ceiling': the bare forward + gradient "
          f"of the same blocks in {workers} concurrent processes, no integrator (what no integrator in {workers} processes "
          "can beat):")
    print(f"{'beads':>5} {'torchmd':>9} {'threads':>7} {'1 worker':>9} {f'{workers} wall':>8} {f'{workers} cpu':>8} "
          f"{'1/torchmd':>10} {f'{workers} wall/torchmd':>16} {f'{workers} cpu/torchmd':>15} {f'{workers} cpu/1':>8} "
          f"{'ceiling':>8} {'ceiling/torchmd':>16} {'wall/ceiling':>13}")
    for n, best, med in rows:
        print(f"{n:>5} {med['best']:>9.0f} {best:>7} {med['one']:>9.0f} {med['many']:>8.0f} {med['many_cpu']:>8.0f} "
              f"{med['one'] / med['best']:>10.2f} {med['many'] / med['best']:>16.2f} {med['many_cpu'] / med['best']:>15.2f} "
              f"{med['many_cpu'] / med['one_cpu']:>8.2f} {med['ceiling']:>8.0f} {med['ceiling'] / med['best']:>16.2f} "
              f"{med['many'] / med['ceiling']:>13.2f}")
    print(f"\nper-replica noise streams against one torch.randn for the whole batch ({args.replicas} replicas), per step:")
    print(f"{'beads':>5} {'streams µs':>11} {'randn µs':>9} {'extra, % of a step':>19}")
    for n, ours_us, randn_us, share in noise_rows:
        print(f"{n:>5} {ours_us:>11.1f} {randn_us:>9.1f} {share:>19.2f}")
    if len(args.beads) >= 2:
        mixed(backbone, args.beads[:2], args.replicas, args.steps)


CHUNK = 20
"""Steps between the frames of the ``cglight simulate`` runs (as its ``save_every``)."""


def torchmd_integrator(model, types, bonds, pos, masses, device: str = "cpu"):
    """torchmd 1.1.2's integrator on the same energy, on ``device`` (None when torchmd is not installed)."""
    try:
        from torchmd.forces import Forces
        from torchmd.integrator import Integrator, maxwell_boltzmann
        from torchmd.systems import System
    except ImportError:
        return None

    class External:
        def calculate(self, p, box):
            with torch.enable_grad():
                q = p.detach().requires_grad_(True)
                e = model.energy(q, types, bonds)
                (g,) = torch.autograd.grad(e.sum(), q)
            return e.detach(), -g

    replicas, n = pos.shape[:2]
    system = System(n, replicas, torch.float32, device)
    system.set_positions(pos.permute(1, 2, 0))
    system.masses[:] = 12.0
    system.set_velocities(maxwell_boltzmann(system.masses, 300.0, replicas))
    ff = Forces(SimpleNamespace(nonbonded_params=None, masses=masses.numpy()), terms=[], external=External())
    ff.compute(system.pos, system.box, system.forces)
    return Integrator(system, ff, timestep=1.0, device=device, gamma=1.0, T=300.0)


def best_threads(tmd, candidates: list[int], replicas: int) -> int:
    """The torch thread count at which torchmd runs fastest (a short probe of each)."""
    speeds = {}
    for t in candidates:
        torch.set_num_threads(t)
        speeds[t] = rate(tmd.step, 10, replicas, warmup=3)
    print("torchmd thread probe: " + ", ".join(f"{t} thread{'s' * (t > 1)} {v:.0f}" for t, v in speeds.items()))
    return max(speeds, key=speeds.get)


def timed_block(job: BlockJob, emit) -> None:
    """``integrate_block``, with the worker's CPU seconds added to every tick."""
    integrate_block(job, lambda m: emit((*m, time.process_time())) if m[0] == "tick" else emit(m))


def bare_block(job: BlockJob, emit) -> None:
    """The force calls of ``integrate_block`` alone (same model loading, blocks and calls per step, at
    the block's starting positions), ticking as it does: the ceiling of any integrator in these processes."""
    model = load_energy_model(job.checkpoint, job.device)
    spec = job.systems[0]
    forces = group_force_function(model, [torch.tensor(spec.bead_types)], [spec.bonds], job.max_beads_per_call)
    pos = [torch.from_numpy(job.starts[0]).to(job.device)]
    for step in range(CHUNK, job.steps + 1, CHUNK):
        for _ in range(CHUNK):
            forces(pos)
        emit(("tick", job.worker, step, time.process_time()))
    emit(("flush", job.worker, job.steps, None, None))


def simulate_rate(ckpt: Path, spec: SystemSpec, pos: torch.Tensor, workers: int, steps: int, target=timed_block) -> tuple[float, float]:
    """Replica-steps/s of ``cglight simulate``'s workers (or another ``target`` run as they are), model loading and a first chunk of steps
    excluded: (wall) the replica-steps of all workers after their first chunk over the wall time
    from the first worker's first chunk to the last worker's last; (cpu) the sum over workers of
    their replica-steps per CPU second they got, which is what they give on cores of their own."""
    blocks = split(len(pos), workers)
    jobs = [BlockJob(w, b.start, len(b), str(ckpt), "cpu", LangevinSettings(), CHUNK, steps + CHUNK, steps + CHUNK, [spec],
                     CPU_BEADS_PER_CALL,
                     starts=[pos[b.start:b.stop].numpy()]) for w, b in enumerate(blocks)]
    first, last = {}, {}

    def handle(message):
        if message[0] == "tick":
            worker, step, cpu = message[1], message[2], message[3]
            if step == CHUNK:
                first[worker] = (time.perf_counter(), cpu)
            last[worker] = (time.perf_counter(), cpu)
        elif message[4] is not None:  # the final flush: every replica must still be alive, or the rate would be flattered
            assert all(s["alive"].all() for s in message[4]), "a replica stopped during the benchmark"

    run_jobs(target, jobs, handle)
    wall = len(pos) * steps / (max(t for t, _ in last.values()) - min(t for t, _ in first.values()))
    cpu = sum(len(b) * steps / (last[w][1] - first[w][1]) for w, b in enumerate(blocks))
    return wall, cpu


def noise_cost(replicas: int, n: int, ours: float, calls: int = 2000) -> tuple[float, float, float]:
    """µs per step of the per-replica streams and of one torch.randn, and the difference in % of a step."""
    keys = replica_keys((0, 0), range(replicas))

    def per_call(fn):
        fn(0)
        t = time.perf_counter()
        for i in range(calls):
            fn(i)
        return (time.perf_counter() - t) / calls

    streams = per_call(lambda i: normals(keys, i, (n, 3), torch.float32))
    randn = per_call(lambda i: torch.randn(replicas, n, 3))
    return streams * 1e6, randn * 1e6, (streams - randn) * ours / replicas * 100


def mixed(backbone: dict, beads: list[int], replicas: int, steps: int) -> None:
    """Two systems in one run: separate integrators and force calls against one batched call."""
    types = [torch.randint(1, 10, (n,), generator=torch.Generator().manual_seed(n)) for n in beads]
    pos = [chain(n, 1, seed=i).expand(replicas, n, 3).clone() for i, n in enumerate(beads)]
    bonds = [[[i, i + 1] for i in range(n - 1)] for n in beads]
    model = CGEnergy(backbone, {"bonds": {}, "angles": {}}).eval()
    g = torch.Generator().manual_seed(1)
    model.fit_priors([(p[:1] + 0.05 * torch.randn(2000, *p.shape[1:], generator=g), t) for p, t in zip(pos, types, strict=True)],
                     {f"s{i}": SimpleNamespace(temperature=300.0, bead_types=t.tolist(), bonds=b) for i, (t, b) in enumerate(zip(types, bonds, strict=True))})
    model.requires_grad_(False)

    def integrators():
        settings = LangevinSettings(1.0, 1.0, 300.0)
        integs = [LangevinIntegrator(force_function(model, t, b), torch.full((n,), 12.0), settings, seed=i)
                  for i, (n, t, b) in enumerate(zip(beads, types, bonds, strict=True))]
        return integs, [integ.init_state(p.clone()) for integ, p in zip(integs, pos, strict=True)]

    integs, states = integrators()

    def separate(k):
        for integ, state in zip(integs, states, strict=True):
            integ.run(state, k)

    apart = rate(separate, steps, 2 * replicas)
    integs, states = integrators()
    forces = group_force_function(model, types, bonds)
    together = rate(lambda k: run_together(integs, states, k, forces), steps, 2 * replicas)
    integs, states = integrators()
    forces = group_force_function(model, types, bonds, CPU_BEADS_PER_CALL)
    capped = rate(lambda k: run_together(integs, states, k, forces), steps, 2 * replicas)
    print(f"two systems in one run ({beads[0]} + {beads[1]} beads, {replicas} replicas each), replica-steps/s of both;")
    print(f"'capped': at most {CPU_BEADS_PER_CALL} beads per backbone call, as cglight simulate on a CPU:")
    print(f"{'separate':>9} {'together':>9} {'capped':>9} {'together/separate':>18} {'capped/separate':>16}")
    print(f"{apart:>9.0f} {together:>9.0f} {capped:>9.0f} {together / apart:>18.2f} {capped / apart:>16.2f}")


if __name__ == "__main__":
    main()
