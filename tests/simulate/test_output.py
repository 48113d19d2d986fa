"""``SimulationOutput``, the one owner of ``cglight simulate``'s files.

Oracles: mdtraj, json and torch reading the files directly; the positions the test wrote.
"""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest
import torch

from cglight.atomic import partial_path
from cglight.errors import ConfigError
from cglight.simulate.output import STATE_KEYS, SimulationOutput
from cglight.simulate.trajectory import cg_topology

NAMES = ["N", "CA", "C"]


def _written(tmp_path, replicas=3, frames=4):
    out = SimulationOutput(tmp_path / "sim")
    top = cg_topology(NAMES, [[0, 1], [1, 2]])
    rng = np.random.default_rng(0)
    pos = rng.normal(0.0, 2.0, (replicas, frames, 3, 3)) + np.arange(3)[:, None] * 1.5
    out.write_topology("a", top, pos[0, 0])
    for r in range(replicas):
        out.append("a", r, top, pos[r, :2], 0.002, 10)
        out.append("a", r, top, pos[r, 2:], 0.002, 10)
    return out, pos


def test_trajectories_read_back_are_the_frames_written_and_what_mdtraj_reads(tmp_path):
    out, pos = _written(tmp_path)
    assert [p.name for p in out.trajectory_paths("a")] == ["replica-000.dcd", "replica-001.dcd", "replica-002.dcd"]
    assert out.systems(["a", "b"]) == ["a"]
    top = out.read_topology("a")
    assert [a.name for a in top.atoms] == NAMES
    runs = out.trajectories("a", 1, top)
    assert list(runs) == ["0", "1", "2"]
    for r, xyz in runs.items():
        path = out.trajectory_path("a", int(r))
        direct = md.load_dcd(str(path), top=str(out.topology_path("a"))).xyz * 10.0
        np.testing.assert_allclose(xyz, direct[1:], rtol=0, atol=1e-5)
        np.testing.assert_allclose(xyz, pos[int(r), 1:], rtol=0, atol=1e-3)  # float32 Å on disk


def test_record_and_restart_round_trip_as_plain_data(tmp_path):
    out = SimulationOutput(tmp_path / "sim")
    assert out.read_record() is None
    record = {"settings": {"seed": 1}, "systems": {"a": {"temperature": 300.0, "stopped": {"2": "step 60: NaN"}}}}
    out.write_record(record)
    assert json.loads(out.record_path.read_text()) == record and out.read_record() == record["systems"]
    state = {k: torch.zeros(2, 3) for k in ("pos", "vel", "forces")} | {"alive": torch.ones(2, dtype=torch.bool),
                                                                          "keys": torch.zeros(2, 2), "step": 40, "failures": {}}
    assert set(state) == set(STATE_KEYS)
    restart = {"config": {"seed": 1}, "model": {"sha256": "f" * 64}, "systems": {"a": {"state": state, "frames": [2, 2]}}}
    out.write_restart(restart)
    assert torch.load(out.restart_path, weights_only=True)["systems"]["a"]["frames"] == [2, 2]
    assert out.read_restart(["a"], 2)["model"]["sha256"] == "f" * 64
    with pytest.raises(ConfigError, match=r"restart\.pt: not a cglight restart state \(system 'a': no list 'frames' of 3"):
        out.read_restart(["a"], 3)


def test_a_run_owns_its_files_and_their_temporary_copies_only(tmp_path):
    out = SimulationOutput(tmp_path / "sim")
    owns = [out.owns(p, ["a"], 2) for p in (
        "started.json", "a", "a/topology.pdb", "a/replica-001.dcd",  # written before the first restart state
        partial_path("restart.pt").as_posix(), partial_path("simulation.json").as_posix(),  # killed while writing them
        partial_path("a/topology.pdb").as_posix())]
    assert all(owns)
    for foreign in ("notes.txt", "a/replica-002.dcd", "restart.pt", "a/analysis.npy.partial-12", "b/topology.pdb"):
        assert not out.owns(foreign, ["a"], 2), foreign
