"""``cglight simulate``'s settings: bad values refused before anything is written, the temperature
default (the data's) reaching the integrator, the settings fixed on continuation, the bond check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cglight.cli import main
from cglight.units import KCAL_PER_MOL_TO_AMU_A2_PER_PS2, kt


def _simulate(ckpt, data, out, steps, extra=()):
    args = ["simulate", "--checkpoint", str(ckpt), "--starts", str(data), "--out", str(out), "--replicas", "4",
            "--steps", str(steps), "--save_every", "20", "--flush_every", "40", "--seed", "3", "--workers", "1", *extra]
    return main(args)


@pytest.mark.parametrize("extra, key", [
    (["--timestep_fs", "0"], "timestep_fs"),
    (["--friction_per_ps", "-1"], "friction_per_ps"),
    (["--temperature", "0"], "temperature"),  # once ran silently at the data's temperature
    (["--temperature", "-5"], "temperature"),
    (["--seed", "-1"], "seed"),  # once a traceback
    (["--steps", "50"], "save_every"),  # frames at 20, 40, 50 under a header of 20-step intervals
    (["--masses", "[12.0, -1.0, 12.0, 12.0, 14.0]"], "masses"),
])
def test_a_bad_setting_is_refused_on_one_line_before_anything_is_written(checkpoint, tiny_dataset, tmp_path, capsys, extra, key):
    out = tmp_path / "sim"
    assert _simulate(checkpoint, tiny_dataset, out, 40, extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"'{key}'" in err, err
    assert not out.exists()  # a rerun with the value fixed starts cleanly


@pytest.mark.parametrize("key, value", [
    ("timestep_fs", float("nan")), ("timestep_fs", float("inf")), ("friction_per_ps", float("nan")),
    ("friction_per_ps", float("inf")), ("temperature", float("nan")), ("temperature", float("inf")),
    ("max_bond_factor", float("nan")), ("masses", [12.0, float("nan")]),
])
def test_non_finite_settings_are_refused(tmp_path, key, value):
    """Non-finite numbers (the command line refuses them already; a config built in Python may not)."""
    from cglight.errors import ConfigError
    from cglight.simulate.run import SimulateConfig

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    config = SimulateConfig(checkpoint=str(ckpt), starts=str(tmp_path), out=str(tmp_path / "sim"), **{key: value})
    with pytest.raises(ConfigError, match=f"'{key}'"):
        config.validate()


@pytest.mark.parametrize("key, value", [("timestep_fs", 0.0), ("timestep_fs", float("inf")), ("friction_per_ps", -0.1),
                                        ("temperature", 0.0), ("max_bond_factor", 1.0)])
def test_langevin_settings_refuse_a_bad_value_by_its_key(key, value):
    from cglight.errors import ConfigError
    from cglight.simulate.settings import LangevinSettings

    with pytest.raises(ConfigError, match=f"^'{key}' must be"):
        LangevinSettings(**{key: value})


def test_langevin_settings_convert_once_and_fill_in_a_systems_temperature():
    """Oracle: 1 ps = 1000 fs (500 steps of 2 fs are exactly 1 ps); the config's temperature wins over the data's."""
    from dataclasses import FrozenInstanceError

    from cglight.simulate.settings import LangevinSettings

    two = LangevinSettings(timestep_fs=2.0)
    assert two.timestep_ps == 0.002 and 500 * two.timestep_ps == 1.0
    with pytest.raises(FrozenInstanceError):
        two.timestep_fs = 4.0  # the converted timestep could not follow
    assert two.at(450.0).temperature == 450.0 and two.at(450.0).timestep_ps == 0.002 and two.temperature is None
    assert LangevinSettings(temperature=300.0).at(450.0).temperature == 300.0
    assert LangevinSettings(max_bond_factor=3.0).bond_limit(4.0) == 12.0


def _kinetic_temperature(restart_path, masses) -> tuple[float, float]:
    """Equipartition: ⟨m v²⟩ = kT per degree of freedom; mean over replicas and its standard error."""
    state = torch.load(restart_path, weights_only=True)["systems"]["a"]["state"]
    vel = torch.as_tensor(state["vel"], dtype=torch.float64)  # [R, n, 3] Å/ps
    m = torch.tensor(masses, dtype=torch.float64)[None, :, None]
    per_replica = (m * vel**2).mean((1, 2)) / KCAL_PER_MOL_TO_AMU_A2_PER_PS2 / kt(1.0)  # kelvin
    return float(per_replica.mean()), float(per_replica.std() / len(per_replica) ** 0.5)


MASSES = [12.0, 14.0, 12.0, 12.0, 14.0]


@pytest.fixture(scope="module")
def hot(network_checkpoint, tmp_path_factory):
    """A dataset at 450 K (not the usual 300) and a run of 256 replicas without a temperature given."""
    from tests.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("hot")
    data = write_synthetic(root / "ds", {"a": [8]}, temperature=450.0)
    args = ["--replicas", "256", "--save_every", "10", "--flush_every", "10", "--friction_per_ps", "200",
            "--masses", json.dumps(MASSES)]
    assert _simulate(network_checkpoint, data, root / "default", 10, args) == 0
    return data, root, args


def test_the_temperature_defaults_to_the_datas_and_reaches_the_integrator(network_checkpoint, hot):
    """Recorded in simulation.json, and the kinetic temperature of the velocities in the restart
    state (high friction: the O step redraws most of every velocity each step) is that temperature
    within 4 standard errors (each ~2.3 %: 256 replicas × 15 degrees of freedom)."""
    data, root, args = hot
    assert _simulate(network_checkpoint, data, root / "given", 10, [*args, "--temperature", "300"]) == 0
    for run, expected in (("default", 450.0), ("given", 300.0)):
        summary = json.loads((root / run / "simulation.json").read_text())
        assert summary["systems"]["a"]["temperature"] == expected
        assert summary["systems"]["a"]["alive"] == 256
        t, se = _kinetic_temperature(root / run / "restart.pt", MASSES)
        assert se < 0.03 * expected
        assert abs(t - expected) < 4 * se, (run, t, expected, se)


def test_masses_and_max_bond_factor_cannot_change_on_continuation(network_checkpoint, hot, capsys):
    data, root, args = hot
    for change, key in ((["--max_bond_factor", "3.0"], "max_bond_factor"),
                        (["--masses", json.dumps([12.0, 12.0, 12.0, 12.0, 12.0])], "masses")):
        capsys.readouterr()
        assert _simulate(network_checkpoint, data, root / "default", 20, [*args, *change]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"'{key}'" in err, err
    assert json.loads((root / "default/simulation.json").read_text())["systems"]["a"]["steps"] == 10


def test_the_bond_check_stops_a_replica_whose_bond_is_pulled_past_the_limit():
    """Three-bead chains with stiff harmonic bonds (thermal stretch ~0.1 Å); replica 2 alone has its
    last bead pulled by 500 kcal/mol/Å, which stretches its bond past 2 × 3.8 Å within tens of
    steps. It is stopped, frozen at its last state inside the limit; the others run to the end."""
    from cglight.simulate.block import bond_check
    from cglight.simulate.langevin import LangevinIntegrator
    from cglight.simulate.settings import LangevinSettings

    bonds, r0, k, limit = [[0, 1], [1, 2]], 3.8, 50.0, 2 * 3.8

    def force(pos):
        f = torch.zeros_like(pos)
        for i, j in bonds:
            d = pos[:, j] - pos[:, i]
            r = d.norm(dim=-1, keepdim=True)
            fj = -k * (r - r0) * d / r
            f[:, j] += fj
            f[:, i] -= fj
        f[:, 2, 0] += torch.where(pos[:, 0, 2] > 50.0, 500.0, 0.0)  # replica 2, the one 100 Å up in z
        return f

    chain = torch.tensor([[0.0, 0.0, 0.0], [r0, 0.0, 0.0], [2 * r0, 0.0, 0.0]], dtype=torch.float64)
    pos = chain.expand(4, 3, 3).clone()
    pos[2, :, 2] += 100.0  # the force function sees live replicas only, so it picks replica 2 by position
    integ = LangevinIntegrator(force, torch.full((3,), 12.0, dtype=torch.float64), LangevinSettings(1.0, 1.0, 300.0), seed=0,
                               check_fn=bond_check(bonds, limit))
    state = integ.run(integ.init_state(pos), 200)
    assert state.step == 200
    assert state.alive.tolist() == [True, True, False, True]
    assert list(state.failures) == [2] and "failed the physical check" in state.failures[2], state.failures
    stopped_at = int(state.failures[2].split()[1].rstrip(":"))
    assert 1 <= stopped_at < 200
    lengths = (state.pos[:, [0, 1]] - state.pos[:, [1, 2]]).norm(dim=-1)  # [R, bonds]
    assert torch.isfinite(state.pos).all()
    assert float(lengths[2].max()) < limit  # frozen at its last state inside the limit
    assert float((lengths[[0, 1, 3]] - r0).abs().max()) < 1.0  # the others stayed near their rest length
    assert bond_check([], limit) is None  # a system without bonds: no check


def test_the_bond_limit_is_the_factor_times_the_longest_start_bond(network_checkpoint, tmp_path):
    """A factor just above 1 on a 450 K chain: some replicas stretch a bond past the longest bond
    among the starts within 100 steps and are stopped for it (not for NaN); the run goes on. Every
    frame is saved (``save_every`` 1): no saved frame holds a bond past the limit computed here
    from the starts, and a stopped replica's last frame holds a bond just short of it."""
    import mdtraj as md

    from cglight.data.manifest import read_manifest
    from cglight.data.reader import start_frames
    from tests.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "ds", {"a": [8]}, temperature=450.0)
    factor, replicas = 1.001, 16
    out = tmp_path / "sim"
    args = ["--replicas", str(replicas), "--save_every", "1", "--flush_every", "100", "--max_bond_factor", str(factor),
            "--masses", json.dumps(MASSES)]
    assert _simulate(network_checkpoint, data, out, 100, args) == 0
    start = start_frames(data, read_manifest(data), "a", replicas, 3)  # seed 3, system 0: as the run drew them
    bonds = np.array([[i, i + 1] for i in range(4)])
    limit = factor * np.linalg.norm(start[:, bonds[:, 0]] - start[:, bonds[:, 1]], axis=-1).max()
    summary = json.loads((out / "simulation.json").read_text())["systems"]["a"]
    stopped = {int(r): why for r, why in summary["stopped"].items()}
    assert 0 < len(stopped) < replicas and summary["alive"] == replicas - len(stopped)
    assert all("failed the physical check" in why for why in stopped.values()), stopped
    for r in range(replicas):
        path = out / "a" / f"replica-{r:03d}.dcd"
        if not path.exists():
            assert r in stopped and stopped[r].startswith("step 1:")
            continue
        x = 10.0 * md.load(str(path), top=str(out / "a/topology.pdb")).xyz  # Å
        assert len(x) == (100 if r not in stopped else int(stopped[r].split()[1].rstrip(":")) - 1)
        longest = np.linalg.norm(x[:, bonds[:, 0]] - x[:, bonds[:, 1]], axis=-1).max(-1)  # per frame
        assert longest.max() < limit
        if r in stopped:  # its last frame, one step before the stop: a bond just short of the limit (~0.01 Å a step at 450 K)
            assert longest[-1] > limit - 0.05, (r, longest[-1], limit)
