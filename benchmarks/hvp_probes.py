"""Model-Hessian error per unit of training cost, for K = 1, 2, 4 probes and both HVP methods.

    python benchmarks/hvp_probes.py [--frames 128] [--budget 1600] [--rho-exact 1.2] [--rho-fd 0.9]

On the Gaussian oracle of gaussian_curvature.py (exact PMF Hessian) an MLP potential is trained
with ``force + hvp_cov`` (weight 10, centered estimator) under the same cost budget: ``--budget``
force-matching steps' worth, i.e. ``budget / (1 + ρK)`` steps with ``ρ`` the cost per probe of the
method measured on the graph network through the CLI (benchmarks/hvp_cost.py). Printed: steps
taken, the model-Hessian error (mean relative Frobenius error at 64 held-out points, mean of
``--seeds`` seeds) and the wall time here. Force matching alone gets the full budget.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cglight.data import keys
from cglight.gaussian_oracle import spring_chain
from gaussian_curvature import hessian_error, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--budget", type=int, nargs="+", default=[1600, 4800], help="cost budgets in force-matching steps")
    parser.add_argument("--rho-exact", type=float, default=1.2)
    parser.add_argument("--rho-fd", type=float, default=0.9)
    parser.add_argument("--weight", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng, system = spring_chain()
    pmf = system.pmf_hessian()
    data = system.batch(system.sample(rng, args.frames))
    test = system.batch(system.sample(rng, 64))[keys.POS]
    runs = [("force", 0, 0.0, {"force": {"weight": 1.0}})]
    for method, rho in (("autograd", args.rho_exact), ("finite_difference", args.rho_fd)):
        for probes in (1, 2, 4):
            options = {"weight": args.weight, "probes": probes, "method": method}
            runs.append((method, probes, rho, {"force": {"weight": 1.0}, "hvp_cov": options}))
    print(f"{'budget':>6} {'method':<18} {'K':>2} {'steps':>6} {'Hessian error':>14} {'wall time (s)':>14}")
    for budget, (method, probes, rho, losses) in ((b, r) for b in args.budget for r in runs):
        steps = int(budget / (1 + rho * probes))
        errors, t = [], time.perf_counter()
        for seed in range(args.seeds):
            errors.append(hessian_error(train(losses, data, steps, seed=seed), test, pmf))
        wall = (time.perf_counter() - t) / args.seeds
        print(f"{budget:>6} {method:<18} {probes:>2} {steps:>6} {statistics.mean(errors):>14.3f} {wall:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
