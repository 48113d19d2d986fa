"""A ``cglight simulate``-shaped output made without a model: reference frames of the tiny
dataset plus noise, written with the simulate module's own trajectory writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cglight.data.manifest import read_manifest
from cglight.evaluate.run import reference_trajectories
from cglight.simulate.trajectory import append_frames, cg_topology, write_topology_pdb

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
    folder = sim / system
    folder.mkdir(parents=True)
    pad = np.zeros((extra_beads, 3)) + 20.0
    write_topology_pdb(folder / "topology.pdb", top, np.concatenate([ref[0], pad]))
    for r in range(replicas):
        x = ref[rng.integers(0, len(ref), frames)] + rng.normal(0, 0.05, (frames, info.n_beads, 3))
        x = np.concatenate([x, np.broadcast_to(pad, (frames, extra_beads, 3))], axis=1)
        append_frames(folder / f"replica-{r:03d}.dcd", top, x, 0.002, 20)
    if record:
        entry = {"temperature": info.temperature, "steps": 20 * frames, "frames": replicas * frames,
                 "alive": replicas - len(stopped), "stopped": {str(r): REASON for r in stopped}}
        (sim / "simulation.json").write_text(json.dumps({"settings": {}, "systems": {system: entry}}))
    return sim
