"""Choosing the quickstart's ``hvp_cov`` weight and learning rate on alanine dipeptide.

    python benchmarks/quickstart_weights.py --data data/ala2 [--steps 400] [--weights 0.1 1 10 30]

Short runs of the quickstart graph network (batch 32, cosine schedule) on the training frames,
evaluated on the held-out last 10 %: the normalised validation ``force`` loss, the normalised
validation ``hvp_cov`` loss, its noise floor (``noise_sq / scale``: the loss a model equal to the
target's conditional mean would have), and how far the model's curvature moved away from that of
the force-only model (relative RMS change of ``∇²U_θ v`` on the validation frames). There is no
exact PMF Hessian for alanine dipeptide; the Gaussian oracle (gaussian_curvature.py) says
whether a move goes the right way, this script how large the weight must be to move at all
without costing force accuracy.
"""

from __future__ import annotations

import argparse
import time

import torch

from cglight.data import ShardDataset, keys
from cglight.training import BackboneConfig, CGPotential


def run(data: ShardDataset, train_idx: list[int], val: dict, losses: dict, steps: int, lr: float) -> tuple[CGPotential, dict]:
    torch.manual_seed(0)
    model = CGPotential(backbone=BackboneConfig(embedding_dimension=64, num_layers=3, cutoff_upper=8.0), losses=losses, lr=lr).train()
    model.objective.calibrate([data.__getitems__(train_idx[i : i + 256]) for i in range(0, 1024, 256)])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        idx = torch.randint(0, len(train_idx), (32,), generator=g)
        b = data.__getitems__([train_idx[i] for i in idx])
        model.objective.set_step(step)
        loss, _ = model.objective(b, model.evaluate(b[keys.POS], b[keys.BEAD_TYPES]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    torch.manual_seed(1)
    probe = CGPotential(backbone=model.hparams.backbone, losses={"force": {}, "hvp_cov": {"probes": 4, "method": "autograd"}})
    probe.net.load_state_dict(model.net.state_dict())
    probe.objective.calibrate([data.__getitems__(train_idx[i : i + 256]) for i in range(0, 1024, 256)])
    probe.eval()
    _, logs = probe.objective(val, probe.evaluate(val[keys.POS], val[keys.BEAD_TYPES], create_graph=False))
    term = probe.objective.terms["hvp_cov"]
    result = {"force": float(logs["force"]), "hvp_cov": float(logs["hvp_cov"]), "floor": float(logs["hvp_cov/noise_sq"] / term.scale)}
    return model, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ala2")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.1, 1.0, 10.0, 30.0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3])
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--method", default="autograd")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = ShardDataset(args.data)
    n = len(data)
    train_idx, val = list(range(int(0.9 * n))), data.__getitems__(list(range(int(0.9 * n), n)))
    v = torch.randint(0, 2, val[keys.POS].shape, generator=torch.Generator().manual_seed(2)).float() * 2 - 1
    print(f"{'lr':>7} {'hvp_cov w':>9} {'val force':>10} {'val hvp_cov':>12} {'floor':>7} {'curvature moved':>16} {'time (s)':>9}")
    for lr in args.lrs:
        base, res = run(data, train_idx, val, {"force": {"weight": 1.0}}, args.steps, lr)
        ref = base.hvp(val[keys.POS], val[keys.BEAD_TYPES][0], v)
        print(f"{lr:>7.0e} {0:>9g} {res['force']:>10.4f} {res['hvp_cov']:>12.4f} {res['floor']:>7.4f} {0:>16.3f}", flush=True)
        for w in args.weights:
            t = time.perf_counter()
            model, res = run(data, train_idx, val, {"force": {"weight": 1.0}, "hvp_cov": {"weight": w, "probes": args.probes, "method": args.method}}, args.steps, lr)
            moved = float((model.hvp(val[keys.POS], val[keys.BEAD_TYPES][0], v) - ref).norm() / ref.norm())
            print(f"{lr:>7.0e} {w:>9g} {res['force']:>10.4f} {res['hvp_cov']:>12.4f} {res['floor']:>7.4f} {moved:>16.3f} {time.perf_counter() - t:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
