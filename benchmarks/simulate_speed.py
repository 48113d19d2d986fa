"""Batched CG Langevin speed: cglight's integrator against torchmd's, in one run.

    python benchmarks/simulate_speed.py [--beads 10 35] [--replicas 32] [--steps 300]

The same untrained ``graph-network`` energy (the quickstart's backbone) drives both; printed are
replica-steps per second for cglight's BAOAB integrator, torchmd 1.1.2's integrator (an
optional benchmark dependency: ``pip install --no-deps torchmd==1.1.2``), and the model's bare
forward + gradient on the same batch, which bounds both. Then two systems of different sizes (the
``--beads`` given) in one run: integrated separately (one force call per system per step, as
before) against together (``run_together``: one batched force call per step for both), in
replica-steps per second of both systems. The box is passed to torchmd but
ignored by the model (torchmd-net 3.1 treats a zero box as periodic and returns NaN).
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

import numpy as np
import torch

from cglight.energy import CGEnergy
from cglight.simulate.langevin import LangevinIntegrator, run_together
from cglight.simulate.run import force_function, group_force_function


def chain(n: int, replicas: int, seed: int = 0) -> torch.Tensor:
    """A compact random walk of ``n`` beads 3.8 Å apart (every bead has neighbours within the cutoff)."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(replicas, n, 3, generator=g)
    steps = 3.8 * steps / steps.norm(dim=-1, keepdim=True)
    return torch.cumsum(steps, 1)


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
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("CGLIGHT_NUM_THREADS", "1")))
    torch.manual_seed(0)
    backbone = {"name": "graph-network", "embedding_dimension": 64, "num_layers": 3, "cutoff_upper": 8.0}
    print(f"torch threads: {torch.get_num_threads()}, replicas: {args.replicas}, graph-network 64×3, replica-steps/s")
    print(f"{'beads':>5} {'forward+grad':>13} {'cglight':>9} {'torchmd':>9} {'cglight/torchmd':>16}")
    for n in args.beads:
        pos = chain(n, args.replicas)
        types = torch.randint(1, 10, (n,), generator=torch.Generator().manual_seed(n))
        masses = torch.full((n,), 12.0)
        # bond and angle priors fitted to noisy copies of the chain keep every replica together, as in
        # a real CG simulation (an untrained network alone lets the beads drift apart, and a sparser
        # graph is cheaper to evaluate: the rates would not be comparable)
        bonds = [[i, i + 1] for i in range(n - 1)]
        model = CGEnergy(backbone, {"bonds": {}, "angles": {}}).eval()
        frames = pos[:1] + 0.05 * torch.randn(2000, n, 3, generator=torch.Generator().manual_seed(1))
        model.fit_priors([(frames, types)], {"bench": SimpleNamespace(temperature=300.0, bead_types=types.tolist(), bonds=bonds)})
        pos = pos[:1].expand(args.replicas, n, 3).clone()
        forces = force_function(model, types, bonds)

        def bare(k):
            for _ in range(k):
                forces(pos)

        integ = LangevinIntegrator(forces, masses, 300.0, 1.0, 1.0, seed=0)
        state = integ.init_state(pos.clone())
        ours = rate(lambda k: integ.run(state, k), args.steps, args.replicas)
        theirs = float("nan")
        try:
            from torchmd.forces import Forces
            from torchmd.integrator import Integrator, maxwell_boltzmann
            from torchmd.systems import System

            class External:
                def calculate(self, p, box):
                    with torch.enable_grad():
                        q = p.detach().requires_grad_(True)
                        e = model.energy(q, types, bonds)
                        (g,) = torch.autograd.grad(e.sum(), q)
                    return e.detach(), -g

            system = System(n, args.replicas, torch.float32, "cpu")
            system.set_positions(pos.permute(1, 2, 0))
            system.masses[:] = 12.0
            system.set_velocities(maxwell_boltzmann(system.masses, 300.0, args.replicas))
            ff = Forces(SimpleNamespace(nonbonded_params=None, masses=masses.numpy()), terms=[], external=External())
            ff.compute(system.pos, system.box, system.forces)
            tmd = Integrator(system, ff, timestep=1.0, device="cpu", gamma=1.0, T=300.0)
            theirs = rate(tmd.step, args.steps, args.replicas)
        except ImportError:
            print("(torchmd is not installed: pip install --no-deps torchmd==1.1.2)")
        # interleaved rounds, median of each: the machine is shared, so one pass is noisy
        runs = {"raw": [], "ours": [ours], "theirs": [theirs]}
        for _ in range(args.rounds):
            runs["raw"].append(rate(bare, args.steps, args.replicas))
            runs["ours"].append(rate(lambda k: integ.run(state, k), args.steps, args.replicas))
            if theirs == theirs:  # torchmd available
                runs["theirs"].append(rate(tmd.step, args.steps, args.replicas))
        raw, ours, theirs = (float(np.median(v)) for v in (runs["raw"], runs["ours"], runs["theirs"]))
        print(f"{n:>5} {raw:>13.0f} {ours:>9.0f} {theirs:>9.0f} {ours / theirs:>16.2f}")
    if len(args.beads) >= 2:
        mixed(backbone, args.beads[:2], args.replicas, args.steps)


def mixed(backbone: dict, beads: list[int], replicas: int, steps: int) -> None:
    """Two systems in one run: separate integrators and force calls against one batched call."""
    types = [torch.randint(1, 10, (n,), generator=torch.Generator().manual_seed(n)) for n in beads]
    pos = [chain(n, 1, seed=i).expand(replicas, n, 3).clone() for i, n in enumerate(beads)]
    bonds = [[[i, i + 1] for i in range(n - 1)] for n in beads]
    model = CGEnergy(backbone, {"bonds": {}, "angles": {}}).eval()
    g = torch.Generator().manual_seed(1)
    model.fit_priors([(p[:1] + 0.05 * torch.randn(2000, *p.shape[1:], generator=g), t) for p, t in zip(pos, types, strict=True)],
                     {f"s{i}": SimpleNamespace(temperature=300.0, bead_types=t.tolist(), bonds=b) for i, (t, b) in enumerate(zip(types, bonds, strict=True))})

    def integrators():
        integs = [LangevinIntegrator(force_function(model, t, b), torch.full((n,), 12.0), 300.0, 1.0, 1.0, seed=i)
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
    print(f"two systems in one run ({beads[0]} + {beads[1]} beads, {replicas} replicas each), replica-steps/s of both:")
    print(f"{'separate':>9} {'together':>9} {'together/separate':>18}")
    print(f"{apart:>9.0f} {together:>9.0f} {together / apart:>18.2f}")


if __name__ == "__main__":
    main()
