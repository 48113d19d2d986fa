"""When and why ``force + hvp_cov`` runs away, on the Gaussian system of gaussian_curvature.py.

    python benchmarks/hvp_cov_stability.py [--frames 512] [--steps 800] [--weights 1 3 10 30]

Linear analysis (docs/hvp.md): for a quadratic model ``U = ½ RᵀAR`` the mean ``hvp_cov`` target
is ``A P⁻¹ A`` (the ``+β F_θF_θᵀ`` part feeds the model's curvature back, with gain 2), so
near ``A = P`` the term pushes ``δA`` away at rate ``w_H/s_H`` while force matching pulls it back
at rate ``w_F λ(Σ)/s_F`` (``Σ`` the CG positions' covariance). It is stable only while
``w_H < w* = w_F (s_H/s_F) λ_min(Σ)``. The script prints ``w*`` and, for each weight (and with a
warm-up), the final model-Hessian error, the largest normalised ``hvp_cov`` loss and the largest
``model_sq / s_H`` seen, the quantities the safeguard watches.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from cglight.data import keys
from cglight.gaussian_oracle import spring_chain
from cglight.losses import Objective
from gaussian_curvature import hessian_error, train


def first_alarm(ratios: list[float], losses: list[float], limit: float = 1.0, max_loss: float = 100.0, patience: int = 10) -> int | None:
    """The step at which RunawayGuard's defaults would stop (model_sq/s_H > limit or normalised
    loss > max_loss for ``patience`` steps in a row, or a non-finite loss), counted in steps the
    term was computed."""
    streak = 0
    for i, (r, loss) in enumerate(zip(ratios, losses, strict=True)):
        if not math.isfinite(loss):
            return i
        streak = streak + 1 if not (r <= limit and loss <= max_loss) else 0
        if streak >= patience:
            return i
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0])
    parser.add_argument("--warmup", type=int, default=200, help="warm-up steps of the scheduled variant")
    parser.add_argument("--estimators", nargs="+", default=["uncentered", "centered"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng, system = spring_chain()
    pmf = system.pmf_hessian()
    data = system.batch(system.sample(rng, args.frames))
    test = system.batch(system.sample(rng, 64))[keys.POS]
    objective = Objective({"force": {}, "hvp_cov": {}})
    scales = objective.calibrate([data])
    sigma = np.linalg.inv(pmf) / system.beta
    w_star = scales["hvp_cov"] / scales["force"] * np.linalg.eigvalsh(sigma).min()
    print(f"s_F = {scales['force']:.4g} (kcal/mol/Å)², s_H = {scales['hvp_cov']:.4g} (kcal/mol/Å²)², "
          f"λ(Σ) in [{np.linalg.eigvalsh(sigma).min():.3g}, {np.linalg.eigvalsh(sigma).max():.3g}] Å²")
    print(f"quadratic-model stability limit w* = (s_H/s_F) λ_min(Σ) = {w_star:.3g} (w_F = 1)")
    print(f"{'estimator':>10} {'hvp_cov weight':>14} {'warm-up':>8} {'Hessian error':>14} {'max hvp_cov':>12} {'max model_sq/s_H':>17} {'guard step':>11} {'loss > 1e6 at':>13} {'time (s)':>9}")
    t = time.perf_counter()
    err = hessian_error(train({"force": {"weight": 1.0}}, data, args.steps), test, pmf)
    print(f"{'(force)':>10} {0:>14g} {0:>8d} {err:>14.3f} {'':>12} {'':>17} {'':>11} {'':>13} {time.perf_counter() - t:>9.1f}", flush=True)
    variants = [(e, w, 0) for e in args.estimators for w in args.weights]
    variants += [("uncentered", w, args.warmup) for w in args.weights if w >= 10]
    for est, w, warm in variants:
        t = time.perf_counter()
        history: list[dict] = []
        options = {"weight": w, "probes": 4, "method": "autograd", "warmup_steps": warm, "ramp_steps": warm, "estimator": est}
        losses = {"force": {"weight": 1.0}, "hvp_cov": options}
        model = train(losses, data, args.steps, history=history)
        err = hessian_error(model, test, pmf)
        hv = [h["hvp_cov"] for h in history if "hvp_cov" in h]
        ms = [h["hvp_cov/model_sq"] / scales["hvp_cov"] for h in history if "hvp_cov" in h]
        peak = lambda xs: max((x if math.isfinite(x) else math.inf) for x in xs)  # noqa: E731
        guard = first_alarm(ms, hv)
        blowup = next((i for i, x in enumerate(hv) if not math.isfinite(x) or x > 1e6), None)
        print(f"{est:>10} {w:>14g} {warm:>8d} {err:>14.3f} {peak(hv):>12.3g} {peak(ms):>17.3g} {str(guard):>11} {str(blowup):>13} {time.perf_counter() - t:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
