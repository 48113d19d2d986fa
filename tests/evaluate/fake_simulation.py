"""A ``cglight simulate``-shaped output made without a model: reference frames of the tiny
dataset plus noise, written through the simulate module's own ``SimulationOutput``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cglight.data.manifest import read_manifest
from cglight.data.reader import reference_trajectories
from cglight.simulate.output import SimulationOutput
from cglight.simulate.trajectory import cg_topology

REASON = "step 60: non-finite positions"


def fake_simulation(data: Path, sim: Path, *, replicas: int = 4, frames: int = 40, stopped: tuple[int, ...] = (),
                    extra_beads: int = 0, bead_names: list[str] | None = None, record: bool = True, system: str = "ala2") -> Path:
    """``sim/<system>/topology.pdb`` and ``replica-NNN.dcd`` (``frames`` each), and a
    ``simulation.json`` (unless ``record`` is False) saying that the replicas ``stopped`` stopped.
    ``extra_beads`` beads (named X) are appended to every frame; ``bead_names`` renames the beads."""
    manifest = read_manifest(data)
    info = manifest.systems[system]
    ref = np.concatenate(reference_trajectories(data, manifest, system))
    rng = np.random.default_rng(0)
    names = (bead_names or info.bead_names) + ["X"] * extra_beads
    top = cg_topology(names, info.bonds)
    output = SimulationOutput(sim)
    pad = np.zeros((extra_beads, 3)) + 20.0
    output.write_topology(system, top, np.concatenate([ref[0], pad]))
    for r in range(replicas):
        x = ref[rng.integers(0, len(ref), frames)] + rng.normal(0, 0.05, (frames, info.n_beads, 3))
        x = np.concatenate([x, np.broadcast_to(pad, (frames, extra_beads, 3))], axis=1)
        output.append(system, r, top, x, 0.002, 20)
    if record:
        entry = {"temperature": info.temperature, "steps": 20 * frames, "frames": replicas * frames,
                 "alive": replicas - len(stopped), "stopped": {str(r): REASON for r in stopped}}
        output.write_record({"settings": {}, "systems": {system: entry}})
    return sim
