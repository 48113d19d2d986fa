"""Median training-step time of CGPotential on one fixed batch, per loss configuration.

    python benchmarks/step_time.py --data data/ala2 [--batch 32] [--repeats 30]

A step is forward + forces + loss (+ HVPs) + backward + AdamW update, on one thread.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cglight.data import ShardDataset, keys
from cglight.training import BackboneConfig, CGPotential

CONFIGS = {
    "force": {"force": {"weight": 1.0}},
    "force + hvp_cov (1 probe, exact)": {"force": {"weight": 1.0}, "hvp_cov": {"weight": 10.0, "probes": 1, "method": "autograd"}},
    "force + hvp_cov (4 probes, exact)": {"force": {"weight": 1.0}, "hvp_cov": {"weight": 10.0, "probes": 4, "method": "autograd"}},
    "force + hvp_cov (1 probe, FD)": {"force": {"weight": 1.0}, "hvp_cov": {"weight": 10.0, "probes": 1, "method": "finite_difference"}},
    "force + hvp_cov (4 probes, FD)": {"force": {"weight": 1.0}, "hvp_cov": {"weight": 10.0, "probes": 4, "method": "finite_difference"}},
}


def step_times(losses: dict, batch: dict, repeats: int, warmup: int = 3) -> list[float]:
    torch.manual_seed(0)
    model = CGPotential(backbone=BackboneConfig(embedding_dimension=64, num_layers=3, cutoff_upper=8.0), losses=losses).train()
    model.objective.calibrate([batch])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        out = model.evaluate(batch[keys.POS], batch[keys.BEAD_TYPES], create_graph=True)
        loss, _ = model.objective(batch, out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ala2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    batch = ShardDataset(args.data).__getitems__(list(range(args.batch)))
    base = None
    print(f"{'losses':<36} {'median step (ms)':>17} {'× force':>8}")
    for name, losses in CONFIGS.items():
        med = statistics.median(step_times(losses, batch, args.repeats)) * 1e3
        base = base or med
        print(f"{name:<36} {med:>17.1f} {med / base:>8.2f}")


if __name__ == "__main__":
    main()
