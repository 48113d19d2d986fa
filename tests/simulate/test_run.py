"""``cglight simulate`` and ``cglight evaluate`` end to end on a tiny trained model."""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest

from cglight.cli import main


def _simulate(ckpt, data, out, steps, extra=()):
    args = ["simulate", "--checkpoint", str(ckpt), "--starts", str(data), "--out", str(out), "--replicas", "4",
            "--steps", str(steps), "--save_every", "20", "--flush_every", "40", "--seed", "3", *extra]
    return main(args)


@pytest.mark.slow
def test_simulate_writes_readable_trajectories_and_restarts_step_for_step(checkpoint, tiny_dataset, tmp_path):
    two = ["--workers", "2"]  # the restart state gathered from two worker processes continues step for step
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "whole", 120, two) == 0
    top = tmp_path / "whole/ala2/topology.pdb"
    traj = md.load(str(tmp_path / "whole/ala2/replica-000.dcd"), top=str(top))
    assert traj.n_frames == 6 and traj.n_atoms == 5 and traj.topology.n_bonds == 4
    assert [a.name for a in traj.topology.atoms] == ["C", "N", "CA", "C", "N"]
    summary = json.loads((tmp_path / "whole/simulation.json").read_text())
    assert summary["systems"]["ala2"]["steps"] == 120
    # the same run in two pieces: continue a finished 80-step run to 120 steps
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "parts", 80, two) == 0
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "parts", 120, two) == 0
    for r in range(4):
        a = md.load(str(tmp_path / f"whole/ala2/replica-{r:03d}.dcd"), top=str(top)).xyz
        b = md.load(str(tmp_path / f"parts/ala2/replica-{r:03d}.dcd"), top=str(top)).xyz
        np.testing.assert_array_equal(a, b)
    # a setting that defines the run cannot change on continuation
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "parts", 160, ["--timestep_fs", "2.0"]) == 2


@pytest.mark.slow
def test_simulate_then_evaluate_round_trip(checkpoint, tiny_dataset, tmp_path):
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "sim", 200) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", "--reference", str(tiny_dataset), "--simulation", str(tmp_path / "sim"), "--out", str(out),
                 "--lag", "2", "--bootstrap", "20"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["systems"]["ala2"]
    for key in ("kl_tic1", "js_tic1", "kl_tic12", "kl_phi_psi"):
        m = metrics[key]
        assert np.isfinite(m["value"]) and m["low"] <= m["high"], key
    assert 0 <= metrics["js_tic1"]["value"] <= np.log(2)
    for png in ("tic1.png", "tic12.png", "phi_psi.png", "geometry.png"):
        assert (out / "ala2" / png).read_bytes()[:4] == b"\x89PNG"
    assert "KL TIC1" in (out / "report.md").read_text()
    assert metrics["temperature"] == {"reference": 300.0, "model": 300.0}
    assert "differ by temperature" not in (out / "report.md").read_text()
    # a simulation at another temperature than the reference's is flagged (as simulation.json records it)
    record = json.loads((tmp_path / "sim/simulation.json").read_text())
    record["systems"]["ala2"]["temperature"] = 350.0
    (tmp_path / "sim/simulation.json").write_text(json.dumps(record))
    assert main(["evaluate", "--reference", str(tiny_dataset), "--simulation", str(tmp_path / "sim"), "--out", str(tmp_path / "hot"),
                 "--lag", "2", "--bootstrap", "5"]) == 0
    assert "ran at 350.0 K, the reference at 300.0 K" in (tmp_path / "hot/report.md").read_text()


def test_simulate_errors_are_one_line(tmp_path, capsys):
    assert main(["simulate", "--checkpoint", str(tmp_path / "missing.ckpt"), "--starts", str(tmp_path)]) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_simulate_refuses_a_device_it_cannot_use_before_writing(checkpoint, tiny_dataset, tmp_path, capsys):
    import torch

    assert _simulate(checkpoint, tiny_dataset, tmp_path / "a", 20, ["--device", "gpu0"]) == 2
    assert "'device' 'gpu0' is not a torch device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert _simulate(checkpoint, tiny_dataset, tmp_path / "b", 20, ["--device", "cuda"]) == 2
        assert "sees no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_device_auto_is_the_gpu_when_torch_sees_one():
    import torch

    from cglight.simulate.run import SimulateConfig, beads_per_call

    config = SimulateConfig()
    assert config.device == "auto"
    assert config.torch_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert SimulateConfig(device="cpu").torch_device() == "cpu"
    assert beads_per_call(SimulateConfig(device="cpu")) == 512


@pytest.mark.slow
def test_validation_by_simulation_logs_slow_mode_metrics(tiny_dataset, tmp_path):
    import csv
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    args = ["fit", "--config", str(root / "configs/quickstart.yaml"), "--data.path", str(tiny_dataset), "--data.build", "null",
            "--trainer.max_epochs", "1", "--model.backbone.embedding_dimension", "16", "--model.backbone.num_layers", "1",
            "--data.batch_size", "8", "--simulation_check.enabled", "true", "--simulation_check.replicas", "4",
            "--simulation_check.steps", "60", "--simulation_check.save_every", "10", "--simulation_check.lag", "2"]
    r = subprocess.run([sys.executable, "-m", "cglight.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (path,) = tmp_path.glob("runs/cglight/version_*/metrics.csv")
    rows = [row for row in csv.DictReader(open(path)) if row.get("val/sim_kl_tic1")]
    assert len(rows) == 1
    assert 0 <= float(rows[0]["val/sim_js_tic1"]) <= np.log(2) and float(rows[0]["val/sim_kl_tic1"]) >= 0
    assert 0 <= float(rows[0]["val/sim_stopped"]) <= 1


@pytest.mark.slow
def test_configurational_temperature_of_a_simulated_cg_model(checkpoint, tiny_dataset):
    """⟨|∇U|²⟩ / ⟨∇²U⟩ = kT on frames that the integrator sampled from a trained model (priors + network)."""
    import torch

    from cglight.data.manifest import read_manifest
    from cglight.simulate.langevin import LangevinIntegrator
    from cglight.simulate.masses import bead_masses
    from cglight.data.reader import start_frames
    from cglight.simulate.block import force_function, load_energy_model
    from cglight.simulate.settings import LangevinSettings
    from cglight.units import kt

    torch.manual_seed(0)
    model = load_energy_model(str(checkpoint), "cpu").double()
    manifest = read_manifest(tiny_dataset)
    info = manifest.systems["ala2"]
    types, replicas = torch.tensor(info.bead_types), 128
    start = torch.from_numpy(start_frames(tiny_dataset, manifest, "ala2", replicas, 0)).double()
    masses = torch.from_numpy(bead_masses(tiny_dataset, "ala2", info))
    integ = LangevinIntegrator(force_function(model, types, info.bonds), masses, LangevinSettings(0.5, 5.0, 300.0), seed=1)
    state = integ.init_state(start)
    integ.run(state, 600)  # 0.3 ps to equilibrate
    frames = []
    for _ in range(40):
        integ.run(state, 50)
        frames.append(state.pos.clone())
    x = torch.stack(frames, 1)  # [R, F, n, 3]
    flat = x.reshape(-1, 5, 3)
    grad = -model.forces(flat, types, info.bonds)
    lap = torch.zeros(len(flat), dtype=torch.float64)
    for chunk in torch.arange(len(flat)).split(replicas):  # the backbone's neighbour search is quadratic in the batch
        for k in range(15):
            e = torch.zeros(len(chunk), 15, dtype=torch.float64)
            e[:, k] = 1.0
            lap[chunk] += model.hvp(flat[chunk], types, e.reshape(-1, 5, 3), info.bonds).reshape(len(chunk), 15)[:, k]
    num = grad.pow(2).sum((1, 2)).reshape(replicas, -1).mean(1)
    den = lap.reshape(replicas, -1).mean(1)
    t_conf = float(num.mean() / den.mean())
    loo = (num.sum() - num) / (den.sum() - den)
    se = float(((len(loo) - 1) / len(loo) * (loo - loo.mean()).pow(2).sum()).sqrt())
    assert state.alive.all()
    assert se < 0.03 * kt(300.0)
    print(f"configurational temperature {t_conf / kt(300.0) * 300.0:.1f} K ± {se / kt(300.0) * 300.0:.1f} K")
    assert abs(t_conf - kt(300.0)) < 4 * se + 0.01 * kt(300.0), (t_conf, kt(300.0), se)


@pytest.mark.slow
def test_simulate_runs_two_systems_in_one_force_call_as_if_alone(network_checkpoint, tmp_path):
    """Two systems of one run share each step's force call; system a follows the trajectory it
    follows when simulated alone (same seed), to float32 rounding."""
    from tests.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "ds", {"a": [12], "b": [12]}, temperature=300.0)
    masses = ["--masses", "[12.0, 14.0, 12.0, 12.0, 14.0]"]
    assert _simulate(network_checkpoint, data, tmp_path / "both", 60, masses) == 0
    assert _simulate(network_checkpoint, data, tmp_path / "alone", 60, [*masses, "--systems", "[a]"]) == 0
    summary = json.loads((tmp_path / "both/simulation.json").read_text())["systems"]
    assert summary["a"]["steps"] == summary["b"]["steps"] == 60
    top = str(tmp_path / "both/a/topology.pdb")
    for r in range(4):
        both = md.load(str(tmp_path / f"both/a/replica-{r:03d}.dcd"), top=top).xyz
        alone = md.load(str(tmp_path / f"alone/a/replica-{r:03d}.dcd"), top=top).xyz
        assert both.shape == alone.shape and both.shape[0] >= 1
        np.testing.assert_allclose(both, alone, atol=1e-4)
    assert not (tmp_path / "alone/b").exists()
