"""Bias of the finite-difference HVP against the exact one, in float32, as a function of ε.

    python benchmarks/hvp_fd_bias.py --data data/ala2 [--frames 32] [--force-steps 100]

The quickstart graph network (briefly trained by force matching so that its curvature is that of
a real model, not of a random initialisation) is evaluated on real alanine-dipeptide frames.
Reference: the exact HVP by double back-propagation in float64. For each ε (Å) it prints the
relative RMS error of the float32 one-sided and central forms, and that error's RMS against the
RMS of the ``hvp_cov`` target (the noise the loss has to average over anyway).
"""

from __future__ import annotations

import argparse

import torch

from cglight.data import ShardDataset, keys
from cglight.losses import CovarianceHVPLoss
from cglight.training import BackboneConfig, CGPotential

EPS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ala2")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--force-steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = ShardDataset(args.data)
    model = CGPotential(backbone=BackboneConfig(embedding_dimension=64, num_layers=3, cutoff_upper=8.0)).train()
    model.objective.calibrate([data.__getitems__(list(range(256)))])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(args.force_steps):
        b = data.__getitems__(torch.randint(0, len(data), (32,), generator=g).tolist())
        loss, _ = model.objective(b, model.evaluate(b[keys.POS], b[keys.BEAD_TYPES]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    batch = data.__getitems__(list(range(len(data) - args.frames, len(data))))
    pos, types = batch[keys.POS], batch[keys.BEAD_TYPES]
    v = torch.randint(0, 2, (4, *pos.shape), generator=g).float() * 2 - 1
    ref = torch.stack([model.double().hvp(pos.double(), types, vk.double()) for vk in v])
    model.float()
    target = CovarianceHVPLoss()
    with torch.enable_grad():
        out = model.evaluate(pos, types)
        exact32 = torch.stack([out.hvp(vk) for vk in v]).detach()
        hv = torch.einsum("bij,kbj->kbi", batch[keys.HESSIAN], v.flatten(2))
        t = torch.stack([target._target(hv[k], v[k].flatten(1), batch, out.forces.detach().flatten(1)) for k in range(4)])
    rms = lambda x: float(x.double().pow(2).mean().sqrt())  # noqa: E731
    print(f"model HVP RMS {rms(ref):.3g} kcal/mol/Å², hvp_cov target RMS {rms(t):.3g} (model forces in it)")
    print(f"exact float32 vs float64: relative RMS error {rms(exact32 - ref) / rms(ref):.2e}")
    print(f"{'eps (Å)':>8} {'one-sided rel':>14} {'/ target RMS':>13} {'central rel':>12} {'/ target RMS':>13}")
    for eps in EPS:
        row = [f"{eps:>8.0e}"]
        for central in (False, True):
            with torch.enable_grad():
                fd = model.evaluate(pos, types).hvp_fd(v, eps, central=central).detach()
            err = rms(fd - ref)
            row += [f"{err / rms(ref):>14.2e}", f"{err / rms(t):>13.2e}"]
        print(" ".join(row))


if __name__ == "__main__":
    main()
