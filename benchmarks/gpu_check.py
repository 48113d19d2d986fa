"""One GPU check of cglight: fit, simulate and prepare on the GPU against the CPU, in one table.

    python benchmarks/gpu_check.py [--quick] [--budget-s 420] [--skip fit simulate prepare]

(``benchmarks/gpu_check.sh`` installs cglight from a folder of wheels first, then runs this.)
Rows, each on the CPU (one torch thread) and on the GPU (``skipped: no GPU`` where torch sees none):

- ``fit``: ``cglight fit`` steps/s on the quickstart's data (alanine dipeptide, built here by
  ``cglight prepare`` with fewer frames) and model, ``force`` against ``force + hvp_cov`` (the
  quickstart's: finite-difference HVP, one probe), batch 32 and 512; wall time of each training step
  (CUDA synchronised), median after a warm-up; the cost per probe ``ρ = (t_hvp / t_force − 1) / K``
  (``benchmarks/hvp_cost.py``, docs/hvp.md);
- ``simulate``: replica-steps/s of cglight's batched BAOAB integrator (as ``cglight simulate`` runs it:
  one force call per step, per-replica noise streams) at 10, 35 and 270 beads for 64, 1024 and 4096
  replicas, on an untrained quickstart-size graph network with bond and angle priors on a synthetic chain
  (``simulate_speed.chain_model``); torchmd's integrator on the same model and device where torchmd is
  importable; aggregate ns/day at 1 fs;
- ``prepare``: OpenMM ns/day of chignolin (implicit solvent, 1 fs) on the CPU and CUDA platforms, and
  full projected-Hessian frames/s (the chignolin recipe's CA map and finite-difference step).

Every GPU row gives torch's peak allocated memory (OpenMM rows: n/a) and the mean GPU utilisation
sampled by ``nvidia-smi`` during the row (n/a without it). A row that would overrun ``--budget-s``
(measured from the start) is skipped and says so; a row that fails says why and the rest go on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

START = time.perf_counter()
TIMESTEP_FS = 1.0
BACKBONE = ["--model.backbone.name", "graph-network", "--model.backbone.embedding_dimension", "64",
            "--model.backbone.num_layers", "3", "--model.backbone.cutoff_upper", "8.0"]
PRIORS = '{bonds: {}, angles: {}, dihedrals: {terms: 2}, repulsion: {min_bonds_apart: 4}}'
FORCE = "{force: {weight: 1.0}}"
HVP_COV = "{force: {weight: 1.0}, hvp_cov: {weight: 3.0, probes: 1, method: finite_difference}}"


class Table:
    """The one table: printed row by row as it is measured."""

    HEADER = f"{'part':<9} {'case':<52} {'device':<7} {'value':>12} {'unit':<16} {'GPU mem peak':>12} {'GPU util':>8}  note"

    def __init__(self) -> None:
        print(self.HEADER)
        print("-" * len(self.HEADER), flush=True)

    def row(self, part: str, case: str, device: str, value: float | str, unit: str = "", mem: str = "", util: str = "",
            note: str = "") -> None:
        text = value if isinstance(value, str) else f"{value:>12.4g}"
        print(f"{part:<9} {case:<52} {device:<7} {text:>12} {unit:<16} {mem:>12} {util:>8}  {note}", flush=True)


class Utilisation:
    """Mean GPU utilisation (%) sampled by nvidia-smi every 0.2 s while the block runs ("n/a" without it)."""

    def __init__(self, device: str) -> None:
        self.on = device == "cuda" and shutil.which("nvidia-smi") is not None
        self.samples: list[float] = []
        self._stop = threading.Event()

    def _sample(self) -> None:
        index = str(torch.cuda.current_device())
        while not self._stop.is_set():
            r = subprocess.run(["nvidia-smi", "-i", index, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip():
                self.samples.append(float(r.stdout.split()[0]))
            self._stop.wait(0.2)

    def __enter__(self) -> Utilisation:
        if self.on:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.on:
            self._stop.set()
            self._thread.join()

    def text(self) -> str:
        return f"{statistics.fmean(self.samples):.0f} %" if self.samples else "n/a"


def mib(n_bytes: float | None) -> str:
    return "n/a" if n_bytes is None else f"{n_bytes / 2**20:.0f} MiB"


def left(budget_s: float) -> float:
    return budget_s - (time.perf_counter() - START)


def devices() -> list[str]:
    return ["cpu", "cuda"]


def gpu() -> bool:
    return torch.cuda.is_available()


# --------------------------------------------------------------------------------------------- fit


class WallStepTimer(Callback):
    """Lightning callback (``--trainer.callbacks+=gpu_check.WallStepTimer``): the wall time of every
    training step, CUDA synchronised at both ends, and torch's peak allocated memory, written as JSON."""

    def __init__(self, out: str) -> None:
        self.out, self.times, self._start = out, [], 0.0

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_start(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.times.append(time.perf_counter() - self._start)

    def on_train_end(self, trainer, pl_module) -> None:
        peak = torch.cuda.max_memory_allocated(pl_module.device) if pl_module.device.type == "cuda" else None
        Path(self.out).write_text(json.dumps({"times": self.times, "peak": peak}))


def build_data(work: Path, frames: int) -> Path:
    data = work / "ala2"
    r = subprocess.run([sys.executable, "-m", "cglight.cli", "prepare", "--config", str(ROOT / "configs/prepare/ala2.yaml"),
                        "--out", str(data), "--frames", str(frames)], cwd=work, capture_output=True, text=True,
                       env=dict(os.environ, CGLIGHT_PROGRESS="0"))
    if r.returncode != 0:
        raise RuntimeError(f"cglight prepare failed: {r.stderr.strip().splitlines()[-1:]}")
    return data


def fit_run(data: Path, work: Path, device: str, batch: int, losses: str, steps: int, tag: str) -> tuple[list[float], float | None]:
    out = work / f"{tag}.json"
    args = [sys.executable, "-m", "cglight.cli", "fit", "--data.path", str(data), "--data.build", "null",
            "--data.batch_size", str(batch), *BACKBONE, "--model.priors", PRIORS, "--model.losses", losses,
            "--model.calibration_frames", "256", "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
            "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.enable_model_summary", "false",
            "--loss_curves.enabled", "false", "--run_summary.enabled", "false",
            "--trainer.accelerator", "gpu" if device == "cuda" else "cpu", "--trainer.devices", "1",
            "--trainer.callbacks+=gpu_check.WallStepTimer", f"--trainer.callbacks.out={out}"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               CGLIGHT_PROGRESS="0", CGLIGHT_NUM_THREADS="1")
    r = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cglight fit failed: {r.stderr.strip().splitlines()[-1:]}")
    result = json.loads(out.read_text())
    return result["times"], result["peak"]


def fit_rows(table: Table, args, work: Path) -> None:
    frames = 1400 if args.quick else 3000  # 80 % train: batch 512 gets 2 (quick) or 4 steps an epoch
    try:
        data = build_data(work, frames)
    except RuntimeError as e:
        table.row("fit", "quickstart data", "cpu", "failed", note=str(e))
        return
    steps = {32: (10, 30), 512: (4, 10)} if args.quick else {32: (15, 60), 512: (5, 20)}
    for device in devices():
        for batch in (32, 512):
            skip, n = steps[batch]
            if device == "cpu" and batch == 512 and args.quick:
                n, skip = 6, 2
            medians = {}
            for name, losses in (("force", FORCE), ("force + hvp_cov (fd, K=1)", HVP_COV)):
                case = f"quickstart fit, batch {batch}, {name}"
                if device == "cuda" and not gpu():
                    table.row("fit", case, device, "skipped", note="skipped: no GPU")
                    continue
                if left(args.budget_s) < 30:
                    table.row("fit", case, device, "skipped", note="skipped: --budget-s spent")
                    continue
                try:
                    with Utilisation(device) as util:
                        times, peak = fit_run(data, work, device, batch, losses, n, f"{device}-{batch}-{len(medians)}")
                except RuntimeError as e:
                    table.row("fit", case, device, "failed", note=str(e))
                    continue
                medians[name] = statistics.median(times[skip:])
                table.row("fit", case, device, 1 / medians[name], "steps/s", mib(peak) if device == "cuda" else "",
                          util.text() if device == "cuda" else "", f"median of {len(times) - skip} steps")
            if len(medians) == 2:
                t_force, t_hvp = medians.values()
                table.row("fit", f"cost per probe ρ, batch {batch}", device, t_hvp / t_force - 1, "× a force step",
                          note="ρ = (t_hvp / t_force − 1) / K, K = 1")


# ---------------------------------------------------------------------------------------- simulate


def ns_per_day(replica_steps_per_s: float) -> float:
    from cglight.units import FS_TO_PS, PS_TO_NS, SECONDS_PER_DAY

    return replica_steps_per_s * TIMESTEP_FS * FS_TO_PS * PS_TO_NS * SECONDS_PER_DAY


def timed_rate(step, replicas: int, device: str, seconds: float, most: int) -> float:
    """Replica-steps/s of ``step(k)`` (k steps): two warm-up steps, then batches of steps until ``seconds`` pass."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    step(2)
    sync()
    done, k, t = 0, 1, time.perf_counter()
    while done < most:
        step(k)
        done += k
        sync()
        if time.perf_counter() - t > seconds:
            break
        k = min(2 * k, most - done) or 1
    return done * replicas / (time.perf_counter() - t)


def simulate_rows(table: Table, args) -> None:
    from cglight.simulate.block import force_function
    from cglight.simulate.langevin import LangevinIntegrator
    from simulate_speed import chain_model, torchmd_integrator

    backbone = {"name": "graph-network", "embedding_dimension": 64, "num_layers": 3, "cutoff_upper": 8.0}
    seconds = 2.0 if args.quick else 5.0
    have_torchmd = True
    try:
        import torchmd  # noqa: F401
    except ImportError:
        have_torchmd = False
    for beads in (10, 35, 270):
        model, types, bonds, start = chain_model(backbone, beads, 1)
        for device in devices():
            for replicas in (64, 1024, 4096):
                case = f"{beads} beads × {replicas} replicas"
                if device == "cuda" and not gpu():
                    table.row("simulate", case, device, "skipped", note="skipped: no GPU")
                    continue
                if device == "cpu" and (replicas > 64 or (beads > 35 and args.quick)):
                    table.row("simulate", case, device, "not run", note="CPU: 64 replicas" + (" up to 35 beads" * args.quick))
                    continue
                if left(args.budget_s) < 20:
                    table.row("simulate", case, device, "skipped", note="skipped: --budget-s spent")
                    continue
                m = model.to(device)
                t, pos = types.to(device), start.expand(replicas, beads, 3).clone().to(device)
                masses = torch.full((beads,), 12.0, device=device)
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                try:
                    with Utilisation(device) as util:
                        integ = LangevinIntegrator(force_function(m, t, bonds), masses, 300.0, TIMESTEP_FS, 1.0, seed=0)
                        state = integ.init_state(pos)
                        ours = timed_rate(lambda k: integ.run(state, k), replicas, device, seconds, 10_000)
                except torch.OutOfMemoryError:
                    table.row("simulate", case, device, "out of memory", note="one force call for all replicas")
                    continue
                peak = mib(torch.cuda.max_memory_allocated()) if device == "cuda" else ""
                table.row("simulate", f"{case}: cglight", device, ours, "replica-steps/s", peak, util.text() if device == "cuda" else "",
                          f"{ns_per_day(ours):.3g} ns/day aggregate at 1 fs")
                if not have_torchmd:
                    table.row("simulate", f"{case}: torchmd", device, "n/a", note="torchmd not installed")
                    continue
                tmd = torchmd_integrator(m, t, bonds, pos, masses.cpu(), device)
                try:
                    with Utilisation(device) as util:
                        theirs = timed_rate(tmd.step, replicas, device, seconds, 10_000)
                except torch.OutOfMemoryError:
                    table.row("simulate", f"{case}: torchmd", device, "out of memory")
                    continue
                table.row("simulate", f"{case}: torchmd", device, theirs, "replica-steps/s", "", util.text() if device == "cuda" else "",
                          f"cglight/torchmd {ours / theirs:.2f}")
                del integ, state, tmd
        model.to("cpu")


# ----------------------------------------------------------------------------------------- prepare


def prepare_rows(table: Table, args) -> None:
    import numpy as np
    import openmm as mm
    from openmm import unit

    from cglight.prepare.config_file import load_prepare_config
    from cglight.prepare.hessian import ProjectedHessian
    from cglight.prepare.mapping import make_map
    from cglight.prepare.reference import make_context
    from cglight.prepare.systems import build_system
    from cglight.units import FS_TO_PS, PS_TO_NS, SECONDS_PER_DAY

    c = load_prepare_config(ROOT / "configs" / "prepare" / "chignolin.yaml")
    aa = build_system(c.molecule, c.solvent, c.pdb, c.forcefield, c.constraints, c.add_hydrogens)
    cg = make_map(aa.topology, aa.masses, c.mapping)
    names = [mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]
    context = make_context(aa.system, "CPU")
    context.setPositions(aa.positions)
    mm.LocalEnergyMinimizer.minimize(context, 10.0, 200)
    x0 = context.getState(getPositions=True).getPositions(asNumpy=True)
    atoms = aa.system.getNumParticles()
    for platform, device in (("CPU", "cpu"), ("CUDA", "cuda")):
        case = f"chignolin ({atoms} atoms) MD, OpenMM {platform}"
        if device == "cuda" and not gpu():
            table.row("prepare", case, device, "skipped", note="skipped: no GPU")
            continue
        if platform not in names:
            table.row("prepare", case, device, "n/a", note=f"OpenMM has no {platform} platform (has {', '.join(names)})")
            continue
        if left(args.budget_s) < 15:
            table.row("prepare", case, device, "skipped", note="skipped: --budget-s spent")
            continue
        with Utilisation(device) as util:
            integ = mm.LangevinMiddleIntegrator(c.temperature * unit.kelvin, c.friction_per_ps / unit.picosecond,
                                                c.timestep_fs * unit.femtosecond)
            ctx = make_context(aa.system, platform, integ)
            ctx.setPositions(x0)
            ctx.setVelocitiesToTemperature(c.temperature * unit.kelvin, 1)
            integ.step(100)
            ctx.getState(getEnergy=True)
            steps = 1000 if args.quick else 5000
            t = time.perf_counter()
            integ.step(steps)
            ctx.getState(getEnergy=True)  # waits for the device
            rate = steps / (time.perf_counter() - t)
        table.row("prepare", case, device, rate * c.timestep_fs * FS_TO_PS * PS_TO_NS * SECONDS_PER_DAY, "ns/day",
                  "n/a" if device == "cuda" else "", util.text() if device == "cuda" else "", "1 fs, implicit solvent")
        hess_platform = "CPU" if device == "cpu" else "CUDA"
        case = f"chignolin Hessian (full, {3 * cg.n_beads} columns), {hess_platform}"
        with Utilisation(device) as util:
            ph = ProjectedHessian(make_context(aa.system, hess_platform), cg.force_matrix(), c.hessian_eps_nm, "full")
            x = np.asarray(x0.value_in_unit(unit.nanometer))
            ph(x)
            frames, t = 0, time.perf_counter()
            while time.perf_counter() - t < (1.0 if args.quick else 3.0):
                ph(x + 1e-3 * np.random.default_rng(frames).normal(size=x.shape))
                frames += 1
            rate = frames / (time.perf_counter() - t)
        table.row("prepare", case, device, rate, "frames/s", "n/a" if device == "cuda" else "", util.text() if device == "cuda" else "",
                  f"ε = {c.hessian_eps_nm:g} nm (the recipe's)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer frames, steps and seconds per row")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip the rows that would start after this many seconds")
    parser.add_argument("--skip", nargs="*", default=[], choices=["fit", "simulate", "prepare"])
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("CGLIGHT_NUM_THREADS", "1")))
    logging.getLogger("cglight").setLevel(logging.ERROR)  # the synthetic chains' prior-fit notes would cut the table
    name = torch.cuda.get_device_name() if gpu() else "none (GPU rows skipped)"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cglight GPU check, {time.strftime('%Y-%m-%d %H:%M')}: torch {torch.__version__}, GPU: {name}, "
          f"{os.cpu_count()} cores, load {load}, {'--quick' if args.quick else 'full'}, budget {args.budget_s:.0f} s")
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        for part, rows in (("fit", lambda: fit_rows(table, args, Path(tmp))), ("simulate", lambda: simulate_rows(table, args)),
                           ("prepare", lambda: prepare_rows(table, args))):
            if part not in args.skip:
                rows()
    print(f"total {time.perf_counter() - START:.0f} s; load at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
