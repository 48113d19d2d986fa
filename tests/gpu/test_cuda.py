"""The CUDA paths against the CPU: fit in float64, simulate's statistics and restart, the device choice.

Run where torch sees a GPU (``python -m pytest tests/gpu``); skipped, with the reason, elsewhere.
The CPU run is the oracle of every test; the simulation statistics are also held to the physics
(the configurational temperature is kT for any smooth energy sampled at T).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from cglight.cli import main
from cglight.losses import hessian
from cglight.losses.probes import draw_probes
from cglight.units import NM_TO_ANGSTROM, kt

DEVICE = "cuda"
"""The device under test; the CPU is the reference."""

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False")

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
SMALL = ["--model.backbone.embedding_dimension", "16", "--model.backbone.num_layers", "1", "--data.batch_size", "8"]
QUIET = ["--loss_curves.enabled", "false", "--run_summary.enabled", "false", "--trainer.logger", "false",
         "--trainer.limit_val_batches", "0"]


def _cpu_probes(shape, kind, like, generator=None):
    """The probes drawn by the CPU's generator on every device: CUDA's generator gives another stream
    by design, and the comparison needs the same probes on both sides."""
    return draw_probes(shape, kind, like.cpu(), generator).to(like.device)


def _fit(data: Path, root: Path, accelerator: str, method: str) -> dict:
    losses = f"{{force: {{weight: 1.0}}, hvp_cov: {{weight: 3.0, probes: 2, method: {method}}}}}"
    assert main(["fit", "--config", QUICKSTART, "--data.path", str(data), "--data.build", "null", *SMALL, *QUIET,
                 "--model.losses", losses, "--trainer.max_steps", "4", "--trainer.precision", "64-true",
                 "--trainer.accelerator", accelerator, "--trainer.default_root_dir", str(root)]) == 0
    return torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


@pytest.mark.parametrize("method", ["autograd", "finite_difference"])
def test_fit_with_hvp_cov_on_cuda_matches_the_cpu_in_float64(tiny_dataset, tmp_path, monkeypatch, method):
    """Four optimiser steps of force + hvp_cov from the same seed and frames: the same priors, loss
    normalisation, weights and optimiser moments on both devices, to float64 round-off."""
    monkeypatch.setattr(hessian, "draw_probes", _cpu_probes)
    monkeypatch.chdir(tmp_path)
    cpu = _fit(tiny_dataset, tmp_path / "cpu", "cpu", method)
    gpu = _fit(tiny_dataset, tmp_path / "gpu", DEVICE, method)
    assert cpu["global_step"] == gpu["global_step"] == 4
    a, b = cpu["state_dict"], gpu["state_dict"]
    assert a.keys() == b.keys()
    assert a["core.net.representation.embedding.weight"].dtype == torch.float64
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-9, atol=1e-11, msg=lambda m, n=name: f"{n}: {m}")
    moments = 0
    for sa, sb in zip(cpu["optimizer_states"][0]["state"].values(), gpu["optimizer_states"][0]["state"].values(), strict=True):
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sb[key], sa[key], rtol=1e-8, atol=1e-14)
            moments += int(sa[key].abs().gt(0).sum())
    assert moments > 1000  # the gradients reached the weights: the comparison is not of untouched parameters


def _simulate(ckpt: Path, data: Path, out: Path, device: str | None, steps: int, replicas: int, save_every: int = 20) -> None:
    device_args = [] if device is None else ["--device", device, "--workers", "0" if device == "cpu" else "1"]
    assert main(["simulate", "--checkpoint", str(ckpt), "--starts", str(data), "--out", str(out), "--replicas", str(replicas),
                 "--steps", str(steps), "--save_every", str(save_every), "--flush_every", str(2 * save_every), "--seed", "3",
                 "--timestep_fs", "1.0", "--friction_per_ps", "5.0", *device_args]) == 0


def _frames(out: Path, replicas: int) -> np.ndarray:
    """``[R, F, n, 3]`` Å of every replica's DCD."""
    top = str(out / "ala2" / "topology.pdb")
    return np.stack([md.load(str(out / "ala2" / f"replica-{r:03d}.dcd"), top=top).xyz for r in range(replicas)]) * NM_TO_ANGSTROM


def _per_replica_statistics(model, frames: np.ndarray, types: torch.Tensor, bonds: list[list[int]]) -> dict[str, np.ndarray]:
    """Per replica (rows): the mean and the variance of every CG bond length over its frames, and ⟨|∇U|²⟩
    and ⟨∇²U⟩ over every fourth frame (float64, on the CPU)."""
    b = np.asarray(bonds)
    length = np.linalg.norm(frames[:, :, b[:, 0]] - frames[:, :, b[:, 1]], axis=-1)  # [R, F, bonds]
    frames = frames[:, ::4]
    r, f, n, _ = frames.shape
    x = torch.from_numpy(frames.reshape(r * f, n, 3)).double()
    grad = -model.forces(x, types, bonds)
    lap = torch.zeros(len(x), dtype=torch.float64)
    for chunk in torch.arange(len(x)).split(256):
        for k in range(3 * n):
            e = torch.zeros(len(chunk), 3 * n, dtype=torch.float64)
            e[:, k] = 1.0
            lap[chunk] += model.hvp(x[chunk], types, e.reshape(-1, n, 3), bonds).reshape(len(chunk), 3 * n)[:, k]
    return {"bond": length.mean(1), "bond_var": length.var(1),
            "grad_sq": grad.pow(2).sum((1, 2)).reshape(r, f).mean(1).numpy(), "lap": lap.reshape(r, f).mean(1).numpy()}


def _t_conf(s: dict[str, np.ndarray]) -> tuple[float, float]:
    """⟨|∇U|²⟩ / ⟨∇²U⟩ (kcal/mol) and its jackknife standard error over the independent replicas."""
    num, den = s["grad_sq"], s["lap"]
    loo = (num.sum() - num) / (den.sum() - den)
    return float(num.sum() / den.sum()), float(math.sqrt((len(loo) - 1) / len(loo) * ((loo - loo.mean()) ** 2).sum()))


def test_simulate_on_cuda_samples_what_the_cpu_samples(checkpoint, tiny_dataset, tmp_path):
    """512 replicas × 1.2 ps on each device (the first 0.4 ps dropped; the CPU's on every core): the configurational
    temperature is kT on both, and every bond length's mean and spread agree between the devices
    within their statistical errors (independent replicas)."""
    from cglight.data.manifest import read_manifest
    from cglight.simulate.block import load_energy_model

    replicas, steps = 512, 1200
    info = read_manifest(tiny_dataset).systems["ala2"]
    model = load_energy_model(str(checkpoint), "cpu").double()
    types = torch.tensor(info.bead_types)
    stats = {}
    for label, device in (("reference", "cpu"), ("device", DEVICE)):
        _simulate(checkpoint, tiny_dataset, tmp_path / label, device, steps, replicas, save_every=10)
        stats[label] = _per_replica_statistics(model, _frames(tmp_path / label, replicas)[:, 40:], types, info.bonds)
    kt300 = kt(300.0)
    for device, s in stats.items():
        t, se = _t_conf(s)
        assert se < 0.03 * kt300, (device, se)  # the check has teeth: 10 K off is several error bars
        assert abs(t - kt300) < 4 * se + 0.01 * kt300, (device, t / kt300 * 300.0, se / kt300 * 300.0)
    a, b = stats["reference"], stats["device"]
    for key in ("bond", "bond_var"):
        diff = a[key].mean(0) - b[key].mean(0)
        se = np.sqrt(a[key].var(0, ddof=1) / replicas + b[key].var(0, ddof=1) / replicas)
        assert (np.abs(diff) < 4 * se + 1e-4).all(), (key, diff, se)
    (t_a, se_a), (t_b, se_b) = _t_conf(a), _t_conf(b)
    assert abs(t_a - t_b) < 4 * math.hypot(se_a, se_b), (t_a, t_b, se_a, se_b)


def test_simulate_restarts_on_cuda_and_follows_the_cpu_trajectory(checkpoint, tiny_dataset, tmp_path):
    """A CUDA run continued from its restart state (80 then 120 steps) follows the uninterrupted
    CUDA run and the CPU run (the same per-replica noise on every device): 120 fs apart only by
    float32 round-off, where a fresh start or lost velocities would be far off."""
    _simulate(checkpoint, tiny_dataset, tmp_path / "cpu", "cpu", 120, 8)
    _simulate(checkpoint, tiny_dataset, tmp_path / "whole", DEVICE, 120, 8)
    _simulate(checkpoint, tiny_dataset, tmp_path / "parts", DEVICE, 80, 8)
    _simulate(checkpoint, tiny_dataset, tmp_path / "parts", DEVICE, 120, 8)
    assert json.loads((tmp_path / "parts" / "simulation.json").read_text())["systems"]["ala2"]["steps"] == 120
    cpu, whole, parts = (_frames(tmp_path / name, 8) for name in ("cpu", "whole", "parts"))
    assert parts.shape == whole.shape == cpu.shape == (8, 6, 5, 3)
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-3)
    np.testing.assert_allclose(whole, cpu, rtol=0, atol=1e-3)
    assert np.abs(cpu[:, -1] - cpu[:, 0]).max() > 0.05  # the beads moved much more than the tolerance


def test_simulate_picks_the_gpu_by_default(checkpoint, tiny_dataset, tmp_path, caplog):
    from cglight.simulate.config import SimulateConfig

    assert SimulateConfig().torch_device() == "cuda"
    with caplog.at_level(logging.INFO, logger="cglight"):
        _simulate(checkpoint, tiny_dataset, tmp_path / "auto", None, 40, 4)
    assert "in one process on cuda" in caplog.text


def test_fit_with_the_quickstart_config_trains_on_the_gpu(tiny_dataset, tmp_path, monkeypatch):
    """The quickstart's ``trainer.accelerator: auto`` puts the model on the GPU."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "device.txt"
    assert main(["fit", "--config", QUICKSTART, "--data.path", str(tiny_dataset), "--data.build", "null", *SMALL, *QUIET,
                 "--trainer.max_steps", "1", "--trainer.default_root_dir", str(tmp_path / "run"),
                 "--trainer.callbacks+=tests.gpu.recorder.RecordDevice", f"--trainer.callbacks.out={out}"]) == 0
    assert out.read_text().startswith("cuda")


def test_prepare_runs_the_reference_md_on_openmms_cuda_platform(tmp_path):
    """``md_platform: CUDA`` (prepare's choice is explicit: its default stays the double-precision
    Reference platform, which the finite-difference Hessians need); the dataset verifies."""
    import openmm as mm

    from cglight.prepare import PrepareConfig, prepare_dataset

    names = [mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]
    if "CUDA" not in names:
        pytest.skip(f"OpenMM has no CUDA platform here (platforms: {', '.join(names)})")
    config = PrepareConfig(frames=8, stride_steps=50, equilibration_ps=1.0, shard_frames=4, seed=3, md_platform="CUDA")
    out = prepare_dataset(config, tmp_path / "ala2")
    assert main(["data", "verify", str(out)]) == 0
