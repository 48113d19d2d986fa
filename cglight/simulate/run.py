"""``cglight simulate``: Langevin dynamics of a trained CG model from reference starting structures.

For every system of the starting dataset, ``replicas`` copies start from frames drawn (seeded)
from that system's reference frames. All replicas of all systems are integrated together, one
batched force call per step (``CGEnergy.forces_groups``: one backbone call for molecules of
different bead counts); every system keeps its own integrator (masses, temperature, random
stream, bond check), so it follows the trajectory it would follow alone. Output under ``out``::

    out/<system>/topology.pdb            CG topology (one residue per bead, CG bonds as CONECT)
    out/<system>/replica-NNN.dcd         one continuous trajectory per replica (Å)
    out/restart.pt                       everything needed to continue (written atomically)
    out/simulation.json                  the settings, the steps done and any stopped replicas

Rerunning the same command continues from ``restart.pt`` (raise ``steps`` to run longer).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from cglight.data.manifest import read_manifest
from cglight.errors import ConfigError
from cglight.progress import progress
from cglight.simulate.langevin import LangevinIntegrator, LangevinState, run_together
from cglight.simulate.masses import bead_masses
from cglight.simulate.trajectory import append_frames, cg_topology, dcd_frames, trim_dcd, write_topology_pdb

log = logging.getLogger(__name__)
RESTART = "restart.pt"
# settings that must not change when a run is continued
FIXED = ("checkpoint", "starts", "systems", "replicas", "timestep_fs", "friction_per_ps", "temperature", "save_every", "seed")


@dataclass
class SimulateConfig:
    """Every key of ``cglight simulate``; each is also a command-line option."""

    checkpoint: str = ""
    """A trained model: the ``.ckpt`` written by ``cglight fit``."""
    starts: str = ""
    """A dataset directory; starting structures are drawn from its frames."""
    out: str = "simulations/run"
    """Output directory (trajectories, topology, restart state)."""
    systems: list[str] = field(default_factory=list)
    """Systems of the dataset to simulate; empty: all of them."""
    replicas: int = 32
    """Independent replicas per system, integrated together."""
    steps: int = 10000
    """Total integration steps (a rerun with more steps continues the same run)."""
    timestep_fs: float = 1.0
    friction_per_ps: float = 1.0
    """Langevin collision rate γ."""
    temperature: float | None = None
    """Kelvin; default: the temperature of each system's data."""
    save_every: int = 100
    """Steps between saved frames."""
    flush_every: int = 5000
    """Steps between writing trajectories and the restart state."""
    seed: int = 0
    max_bond_factor: float = 2.0
    """A replica stops when a CG bond grows past this factor times the longest bond in the starts."""
    masses: list[float] | None = None
    """Bead masses (amu) when the dataset has no map/reference topology to take them from."""
    device: str = "cpu"

    def validate(self) -> None:
        if not self.checkpoint:
            raise ConfigError("simulate: 'checkpoint' is required (a .ckpt written by cglight fit)")
        if not Path(self.checkpoint).is_file():
            raise ConfigError(f"simulate: checkpoint {self.checkpoint} does not exist")
        if not self.starts:
            raise ConfigError("simulate: 'starts' is required (a dataset directory to draw starting structures from)")
        for name in ("replicas", "steps", "save_every", "flush_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"simulate: '{name}' must be >= 1, got {getattr(self, name)}")
        if self.flush_every % self.save_every:
            raise ConfigError(f"simulate: 'flush_every' ({self.flush_every}) must be a multiple of 'save_every' ({self.save_every})")
        if self.max_bond_factor <= 1:
            raise ConfigError(f"simulate: 'max_bond_factor' must be > 1, got {self.max_bond_factor}")


def load_energy_model(checkpoint: str, device: str):
    """The trained energy model of a ``cglight fit`` checkpoint (no Lightning), in evaluation mode."""
    from cglight.energy import CGEnergy

    return CGEnergy.from_checkpoint(checkpoint, map_location=device).to(device)


def force_function(model, bead_types: torch.Tensor, bonds: list[list[int]] | None = None):
    """``pos [R, n, 3] -> forces`` of ``model`` for one system (no graph kept: simulation only)."""

    def forces(pos: torch.Tensor) -> torch.Tensor:
        return model.forces(pos, bead_types, bonds)

    return forces


def group_force_function(energy, bead_types: list[torch.Tensor], bonds: list[list[list[int]] | None] | None = None):
    """``[pos_1 [R_1, n_1, 3], ...] -> [forces_1, ...]`` of the ``CGEnergy`` ``energy`` for several
    systems in one backbone call (no graph kept: simulation only); ``bonds`` per system, or looked up."""
    bonds = bonds or [None] * len(bead_types)

    def forces(pos: list[torch.Tensor]) -> list[torch.Tensor]:
        return energy.forces_groups([(p, t, b) for p, t, b in zip(pos, bead_types, bonds, strict=True)])

    return forces


def _starts(root: Path, manifest, name: str, replicas: int, seed: int) -> np.ndarray:
    import h5py

    from cglight.data import keys

    shards = [s for s in manifest.shards if s.system == name]
    total = sum(s.frames for s in shards)
    if total == 0:
        raise ConfigError(f"{root}: system '{name}' has no frames to start from")
    picks = np.sort(np.random.default_rng([seed, 7]).choice(total, size=replicas, replace=total < replicas))
    pos, offset = [], 0
    for s in shards:
        local = picks[(picks >= offset) & (picks < offset + s.frames)] - offset
        if len(local):
            with h5py.File(root / s.path, "r") as f:
                pos.append(f[keys.POS][np.unique(local)][np.searchsorted(np.unique(local), local)])
        offset += s.frames
    return np.concatenate(pos).astype(np.float32)


def bond_check(bonds: list[list[int]], limit: float, device: str | torch.device = "cpu"):
    """``check_fn`` for :class:`LangevinIntegrator`: every CG bond shorter than ``limit`` (Å); None without bonds."""
    if len(bonds) == 0:
        return None
    b = torch.as_tensor(bonds, device=device)

    def check(pos: torch.Tensor) -> torch.Tensor:
        return (pos[:, b[:, 0]] - pos[:, b[:, 1]]).norm(dim=-1).amax(-1) < limit

    return check


def simulate(config: SimulateConfig) -> Path:
    """Run (or continue) the simulation described by ``config``; returns the output directory."""
    config.validate()
    root, out = Path(config.starts), Path(config.out)
    manifest = read_manifest(root)
    names = config.systems or list(manifest.systems)
    unknown = [n for n in names if n not in manifest.systems]
    if unknown:
        raise ConfigError(f"simulate: systems {unknown} are not in {root} (it has {sorted(manifest.systems)})")
    restart_path = out / RESTART
    restart = torch.load(restart_path, weights_only=False) if restart_path.is_file() else None
    if restart is None and out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists, is not empty and holds no {RESTART}: choose another 'out' or remove it")
    settings = asdict(config)
    if restart is not None:
        changed = [k for k in FIXED if restart["config"][k] != settings[k]]
        if changed:
            raise ConfigError(f"simulate: {out} holds a run with different {changed}; keep them or choose another 'out'")
    model = load_energy_model(config.checkpoint, config.device)
    torch.manual_seed(config.seed)
    sims = {}
    for i, name in enumerate(names):
        info = manifest.systems[name]
        masses = np.asarray(config.masses, dtype=np.float64) if config.masses else bead_masses(root, name, info)
        if len(masses) != info.n_beads:
            raise ConfigError(f"simulate: {len(masses)} masses given for system '{name}' of {info.n_beads} beads")
        start = _starts(root, manifest, name, config.replicas, config.seed + i)
        limit = config.max_bond_factor * max(
            (float(np.linalg.norm(start[:, a] - start[:, b], axis=-1).max()) for a, b in info.bonds), default=0.0
        )
        types = torch.tensor(info.bead_types, device=config.device)
        integ = LangevinIntegrator(
            force_function(model, types, info.bonds), torch.tensor(masses, dtype=torch.float32), config.temperature or info.temperature,
            config.timestep_fs, config.friction_per_ps, seed=config.seed + i, check_fn=bond_check(info.bonds, limit, config.device),
        )
        (out / name).mkdir(parents=True, exist_ok=True)
        top = cg_topology(info.bead_names, info.bonds)
        if restart is None:
            state = integ.init_state(torch.from_numpy(start).to(config.device))
            write_topology_pdb(out / name / "topology.pdb", top, start[0])
            frames = [0] * config.replicas
        else:
            state = LangevinState.from_state_dict(restart["systems"][name]["state"])
            frames = restart["systems"][name]["frames"]
            for r in range(config.replicas):  # a run killed between the two writes: drop the extra frames
                path = out / name / f"replica-{r:03d}.dcd"
                if dcd_frames(path) > frames[r]:
                    trim_dcd(path, frames[r], info.n_beads)
        sims[name] = dict(integ=integ, state=state, frames=frames, top=top, types=types, bonds=info.bonds)

    all_forces = group_force_function(model, [s["types"] for s in sims.values()], [s["bonds"] for s in sims.values()])
    done = min(s["state"].step for s in sims.values())
    dt_ps = config.timestep_fs * 1e-3
    t0, steps0 = time.perf_counter(), done
    bar = progress(range(done, config.steps, config.save_every), desc="simulate", unit="frame", initial=done // config.save_every,
                   total=config.steps // config.save_every)
    for step in bar:
        n = min(config.save_every, config.steps - step)
        run_together([s["integ"] for s in sims.values()], [s["state"] for s in sims.values()], n, all_forces)
        for s in sims.values():
            st = s["state"]
            s.setdefault("buffer", []).append((st.pos.detach().cpu().numpy().copy(), st.alive.cpu().numpy().copy()))
        finished = step + n
        elapsed = time.perf_counter() - t0
        if elapsed > 0:
            bar.set_postfix(ns_per_day=f"{(finished - steps0) * dt_ps * 1e-3 / elapsed * 86400:.2f}")
        if finished % config.flush_every == 0 or finished >= config.steps:
            _flush(out, sims, settings, config, dt_ps)
    for name, s in sims.items():
        for r, why in sorted(s["state"].failures.items()):
            log.warning("system %s, replica %d stopped at %s", name, r, why)
    log.info("simulated %s for %d steps into %s", ", ".join(sims), config.steps, out)
    return out


def _flush(out: Path, sims: dict, settings: dict, config: SimulateConfig, dt_ps: float) -> None:
    """Append buffered frames to the DCDs, then write the restart state atomically."""
    for name, s in sims.items():
        buffer = s.pop("buffer", [])
        if buffer:
            frames = np.stack([b[0] for b in buffer], 1)  # [R, F, n, 3]
            alive = np.stack([b[1] for b in buffer], 1)  # [R, F]: a stopped replica's frozen frames are not saved
            for r in range(frames.shape[0]):
                if alive[r].any():
                    append_frames(out / name / f"replica-{r:03d}.dcd", s["top"], frames[r][alive[r]], dt_ps, config.save_every)
                    s["frames"][r] += int(alive[r].sum())
    state = {"config": settings, "systems": {n: {"state": s["state"].state_dict(), "frames": s["frames"]} for n, s in sims.items()}}
    tmp = out / (RESTART + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / RESTART)
    summary = {
        "settings": settings,
        "systems": {
            n: {"steps": s["state"].step, "frames": sum(s["frames"]), "alive": int(s["state"].alive.sum()),
                "stopped": {str(r): why for r, why in s["state"].failures.items()}}
            for n, s in sims.items()
        },
    }
    tmp = out / "simulation.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, out / "simulation.json")
