"""Cost of ``hvp_cov`` per probe, measured through the real CLI (``cglight fit``).

    python benchmarks/hvp_cost.py [--beads 10 35 80] [--probes 4] [--steps 30]

For each chain length it writes a synthetic dataset (valid shards and manifest: a random
self-avoiding chain of beads 3.8 Å apart, random forces, random symmetric positive Hessians),
then runs ``cglight fit`` with the quickstart graph network and batch 32 for ``force`` alone and
for ``force + hvp_cov`` with the exact (``autograd``) and the ``finite_difference`` method. A
timing callback (``step_timer.StepTimer``) records each training step's CPU time; the first ``--skip`` are
dropped and the median is used; the configurations run ``--repeats`` times in turn and each keeps
its fastest median (the machine is shared). Printed: the step times and the cost per probe
``ρ = (t_hvp / t_force − 1) / K`` (1.0: a probe costs as much as a whole force-matching step).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from cglight.data import keys
from cglight.data.manifest import Manifest, ShardInfo, SystemInfo, write_manifest
from cglight.data.shards import write_shard

HERE = Path(__file__).resolve().parent
BACKBONE = ["--model.backbone.name", "graph-network", "--model.backbone.embedding_dimension", "64",
            "--model.backbone.num_layers", "3", "--model.backbone.cutoff_upper", "8.0", "--model.backbone.max_num_neighbors", "64"]


def chain(rng: np.random.Generator, n: int, bond: float = 3.8, clash: float = 4.0) -> np.ndarray:
    """A random self-avoiding chain (no two beads closer than ``clash`` Å but bonded pairs)."""
    while True:
        x = [np.zeros(3)]
        direction = rng.normal(size=3)
        for _ in range(n - 1):
            for _attempt in range(100):
                d = direction / np.linalg.norm(direction) + 0.8 * rng.normal(size=3)
                step = bond * d / np.linalg.norm(d)
                new = x[-1] + step
                if len(x) < 2 or np.linalg.norm(np.array(x[:-1]) - new, axis=1).min() > clash:
                    x.append(new)
                    direction = step
                    break
            else:
                break
        if len(x) == n:
            return np.array(x)


def write_dataset(root: Path, n: int, frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ref = chain(rng, n)
    pos = ref + 0.3 * rng.normal(size=(frames, n, 3))
    forces = 10.0 * rng.normal(size=(frames, n, 3))
    a = rng.normal(size=(frames, 3 * n, 3 * n))
    hessian = np.einsum("fij,fkj->fik", a, a) * (30.0 / (3 * n))
    name = f"chain{n}"
    arrays = {keys.POS: pos, keys.FORCES: forces, keys.HESSIAN: hessian, keys.FRAME_INDEX: np.arange(frames)}
    digest = write_shard(root / name / "shard-00000.h5", arrays)
    system = SystemInfo(temperature=300.0, bead_types=[1 + i % 5 for i in range(n)], bead_names=[f"B{i}" for i in range(n)],
                        bonds=[[i, i + 1] for i in range(n - 1)], mapping="synthetic", hessian="full")
    write_manifest(root, Manifest({name: system}, [ShardInfo(f"{name}/shard-00000.h5", name, frames, digest)]))


def fit(data: Path, work: Path, losses: dict, steps: int, tag: str) -> list[float]:
    out = work / f"{tag}.json"
    args = [sys.executable, "-m", "cglight.cli", "fit", "--data.path", str(data), "--data.batch_size", "32",
            "--data.val_fraction", "0.2", *BACKBONE, "--model.losses", json.dumps(losses),
            "--model.calibration_frames", "64", "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
            "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.accelerator", "cpu",
            "--trainer.callbacks+=step_timer.StepTimer", f"--trainer.callbacks.out={out}"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               CGLIGHT_PROGRESS="0", CGLIGHT_NUM_THREADS="1")
    r = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"cglight fit failed ({tag}):\n{r.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beads", type=int, nargs="+", default=[10, 35, 80])
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--skip", type=int, default=5, help="first steps dropped (warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration (alternating; the fastest median counts)")
    parser.add_argument("--methods", nargs="+", default=["autograd", "finite_difference"],
                        help="'default' leaves the method key out (for timing an older cglight)")
    args = parser.parse_args()
    k = args.probes
    print(f"{'beads':>5} {'losses':<44} {'median step (CPU ms)':>21} {'× force':>8} {'ρ per probe':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.beads:
            work = Path(tmp) / f"n{n}"
            data = work / "data"
            write_dataset(data, n, frames=200)
            configs = {"force": {"force": {"weight": 1.0}}}
            for method in args.methods:
                options = {"weight": 1.0, "probes": k} | ({} if method == "default" else {"method": method})
                configs[f"force + hvp_cov ({method}, K={k})"] = {"force": {"weight": 1.0}, "hvp_cov": options}
            medians: dict[str, float] = {}
            for r in range(args.repeats):  # alternate the configurations; keep each one's fastest run
                for i, (name, losses) in enumerate(configs.items()):
                    times = fit(data, work, losses, args.steps, f"run{r}-{i}")[args.skip :]
                    medians[name] = min(medians.get(name, float("inf")), statistics.median(times) * 1e3)
            base = None
            for name, t in medians.items():
                base = base or t
                rho = "" if name == "force" else f"{(t / base - 1) / k:>12.2f}"
                print(f"{n:>5} {name:<44} {t:>21.1f} {t / base:>8.2f} {rho}", flush=True)


if __name__ == "__main__":
    main()
