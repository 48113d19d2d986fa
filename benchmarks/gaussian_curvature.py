"""Force matching vs force + Hessian matching on a Gaussian system with an exact PMF Hessian.

    python benchmarks/gaussian_curvature.py [--frames 128 512 2048] [--steps 1600]

All-atom: 6 atoms in 3-D on a chain of stiff springs plus weak random couplings,
``u = ½ xᵀ K x``. CG: the slice map keeping atoms 0, 2 and 4 (9 coordinates). The PMF is
quadratic with Hessian ``P = (M K⁻¹ Mᵀ)⁻¹`` (docs/method.md §10.1;
``cglight.gaussian_oracle``). A small MLP potential is trained
on exact samples with the shipped loss classes, and its Hessian at held-out points is compared
with ``P`` (relative Frobenius error, mean over 64 points). Force matching constrains only the
gradient, so its curvature error stays large; ``hvp_cov`` matches the curvature directly.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from cglight.data import keys
from cglight.gaussian_oracle import spring_chain
from cglight.losses import ModelOutput, Objective

def hessian_error(model: "MLPPotential", test: torch.Tensor, pmf: np.ndarray) -> float:
    """Mean relative Frobenius error of the model Hessian against ``pmf`` over ``test`` points."""
    h = model.hessians(test).double().numpy()
    return float(np.mean([np.linalg.norm(hi - pmf) / np.linalg.norm(pmf) for hi in h]))


class MLPPotential(nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(9, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))

    def forces(self, pos: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            pos = pos.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.net(pos.flatten(1)).sum(), pos, create_graph=True)
        return -g

    def output(self, pos: torch.Tensor, create_graph: bool = True) -> ModelOutput:
        pos = pos.detach().requires_grad_(True)
        energy = self.net(pos.flatten(1)).squeeze(-1)
        (g,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        return ModelOutput(energy, -g, pos, create_graph, force_fn=self.forces)

    def hessians(self, pos: torch.Tensor) -> torch.Tensor:
        out = self.output(pos, create_graph=False)
        cols = []
        for i in range(9):
            v = torch.zeros(len(pos), 9)
            v[:, i] = 1.0
            cols.append(out.hvp(v.reshape(pos.shape)).flatten(1).detach())
        return torch.stack(cols, -1)


def train(losses: dict, data: dict, steps: int, seed: int = 0, batch: int = 64, lr: float = 2e-3,
          history: list | None = None, width: int = 64) -> MLPPotential:
    """Train an MLP potential; ``history`` (if given) receives every step's logged values."""
    torch.manual_seed(seed)
    model = MLPPotential(width)
    objective = Objective(losses)
    objective.calibrate([data])
    n = len(data[keys.POS])
    per_epoch = max(n // batch, 1)
    epochs = max(steps // per_epoch, 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * per_epoch, eta_min=lr / 100)
    g = torch.Generator().manual_seed(seed)
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, max(n - batch, 0) + 1, batch):
            b = {k: v[perm[s : s + batch]] for k, v in data.items()}
            objective.set_step(step)
            loss, logs = objective(b, model.output(b[keys.POS]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if history is not None:
                history.append({k: float(v) for k, v in logs.items()})
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--steps", type=int, default=1600, help="optimizer steps per run (the same budget for every size)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng, system = spring_chain()
    pmf, bare = system.pmf_hessian(), system.bare_hessian()
    print(f"PMF Hessian vs bare BᵀKB: relative difference {np.linalg.norm(bare - pmf) / np.linalg.norm(pmf):.2f}")
    test = system.batch(system.sample(rng, 64))[keys.POS]
    configs = {"force": {"force": {"weight": 1.0}}, "force + hvp (w=1)": {"force": {"weight": 1.0}, "hvp": {"weight": 1.0, "probes": 4}}}
    for w in (1.0, 3.0, 30.0):
        configs[f"force + hvp_cov (w={w:g})"] = {"force": {"weight": 1.0}, "hvp_cov": {"weight": w, "probes": 4}}
    print(f"{'frames':>7} {'losses':<24} {'Hessian error':>14} {'force RMSE':>11} {'time (s)':>9}")
    for n in args.frames:
        data = system.batch(system.sample(rng, n))
        for name, losses in configs.items():
            t = time.perf_counter()
            model = train(losses, data, args.steps)
            h = model.hessians(test).double().numpy()
            err = np.mean([np.linalg.norm(hi - pmf) / np.linalg.norm(pmf) for hi in h])
            mean_force = -(test.flatten(1).double().numpy() @ pmf)
            rmse = np.sqrt(np.mean((model.output(test).forces.detach().flatten(1).double().numpy() - mean_force) ** 2))
            print(f"{n:>7} {name:<24} {err:>14.3f} {rmse:>11.3f} {time.perf_counter() - t:>9.1f}")


if __name__ == "__main__":
    main()
