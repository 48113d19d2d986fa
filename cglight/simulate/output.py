"""``SimulationOutput``: the files of one ``cglight simulate`` run, the one place that knows them.

Under the output directory ``root``::

    <system>/topology.pdb     CG topology (one residue per bead, CG bonds as CONECT)
    <system>/replica-NNN.dcd  one continuous trajectory per replica (Å)
    started.json              the settings, written before anything else
    restart.pt                everything needed to continue: plain data only
    simulation.json           the settings; per system its temperature (K), the steps done and any stopped replicas

``cglight simulate`` writes them through this class, ``cglight evaluate`` reads them back through it.
Every file but the DCDs (appended frame by frame, trimmed on restart) is written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cglight.atomic import atomic_path, atomic_write, partial_target
from cglight.errors import ConfigError, DatasetError
from cglight.simulate.trajectory import append_frames, dcd_frames, dcd_header_frames, trim_dcd, write_topology_pdb
from cglight.units import NM_TO_ANGSTROM

STATE_KEYS = ("pos", "vel", "forces", "step", "alive", "failures", "keys")
"""What the restart state of every system holds (``LangevinState.state_dict``)."""


class SimulationOutput:
    """The files of the simulation in directory ``root``: their paths, writing them, reading them back."""

    RESTART = "restart.pt"
    STARTED = "started.json"
    RECORD = "simulation.json"
    TOPOLOGY = "topology.pdb"
    REPLICA = "replica-{:03d}.dcd"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    @property
    def restart_path(self) -> Path:
        return self.root / self.RESTART

    @property
    def started_path(self) -> Path:
        return self.root / self.STARTED

    @property
    def record_path(self) -> Path:
        return self.root / self.RECORD

    def topology_path(self, system: str) -> Path:
        return self.root / system / self.TOPOLOGY

    def trajectory_path(self, system: str, replica: int) -> Path:
        return self.root / system / self.REPLICA.format(replica)

    def trajectory_paths(self, system: str) -> list[Path]:
        """Every replica DCD of ``system`` there is, in replica order."""
        return sorted((self.root / system).glob("replica-*.dcd"))

    @staticmethod
    def replica_label(path: Path) -> str:
        """The replica a DCD holds, as ``simulation.json`` names it (``"7"`` for ``replica-007.dcd``)."""
        label = path.stem.removeprefix("replica-")
        return str(int(label)) if label.isdigit() else label

    def systems(self, names: list[str]) -> list[str]:
        """Those of ``names`` this directory holds a topology of."""
        return [n for n in names if self.topology_path(n).is_file()]

    def own_files(self, names: list[str], replicas: int) -> set[str]:
        """Every path (relative, POSIX; folders included) a run of ``names`` with ``replicas`` replicas
        writes before its first restart state."""
        ours = {self.STARTED}
        for name in names:
            ours |= {name, f"{name}/{self.TOPOLOGY}"} | {f"{name}/{self.REPLICA.format(r)}" for r in range(replicas)}
        return ours

    def owns(self, relative: str, names: list[str], replicas: int) -> bool:
        """Whether ``relative`` (POSIX, under ``root``) is one of :meth:`own_files`, or a temporary file of one
        of them or of the restart state or the record (a run killed while writing it)."""
        ours = self.own_files(names, replicas)
        target = partial_target(relative)
        return relative in ours or (target is not None and target.as_posix() in ours | {self.RESTART, self.RECORD})

    # ------------------------------------------------------------------ writing
    def write_started(self, settings: dict) -> None:
        atomic_write(self.started_path, json.dumps({"settings": settings}, indent=2) + "\n")

    def read_started(self) -> dict:
        """The settings ``started.json`` records (``OSError``, ``ValueError``, ``KeyError`` ... when it has none)."""
        return json.loads(self.started_path.read_text())["settings"]

    def write_topology(self, system: str, topology, pos: np.ndarray) -> None:
        """``topology`` (OpenMM) with positions ``pos [n, 3]`` (Å) as ``<system>/topology.pdb``."""
        self.topology_path(system).parent.mkdir(parents=True, exist_ok=True)
        write_topology_pdb(self.topology_path(system), topology, pos)

    def append(self, system: str, replica: int, topology, pos: np.ndarray, dt_ps: float, interval: int) -> None:
        """Append ``pos [F, n, 3]`` (Å) to the replica's DCD (created if missing)."""
        append_frames(self.trajectory_path(system, replica), topology, pos, dt_ps, interval)

    def trim(self, system: str, replica: int, frames: int, n_beads: int) -> None:
        """Drop the replica's frames past ``frames`` (written after the last restart state)."""
        path = self.trajectory_path(system, replica)
        if dcd_frames(path) > frames:
            trim_dcd(path, frames, n_beads)

    def write_restart(self, state: dict) -> None:
        """The restart state (plain data only: it is read with ``weights_only=True``)."""
        import torch

        with atomic_path(self.restart_path) as tmp:
            torch.save(state, tmp)

    def write_record(self, record: dict) -> None:
        atomic_write(self.record_path, json.dumps(record, indent=2) + "\n")

    # ------------------------------------------------------------------ reading back
    def read_restart(self, names: list[str], replicas: int) -> dict:
        """The restart state, read as plain data (``torch.load(weights_only=True)``: no code runs), its layout
        checked for ``names`` of ``replicas`` replicas each."""
        import torch

        from cglight.energy.core import load_plain

        path = self.restart_path
        restart = load_plain(path, "cpu", f"{self.RESTART} holds plain data only; continue in another 'out'")

        def bad(what: str) -> ConfigError:
            return ConfigError(f"{path}: not a cglight restart state ({what}); continue in another 'out'")

        if not (isinstance(restart, dict) and isinstance(restart.get("config"), dict)
                and isinstance(restart.get("systems"), dict)):
            raise bad("no 'config' or 'systems'")
        if not isinstance(restart.get("model"), dict) or not isinstance(restart["model"].get("sha256"), str):
            raise ConfigError(f"{path}: a restart state without the model's fingerprint (written by an older cglight); "
                              "continue it with that version or start a new 'out'")
        for name in names:
            system = restart["systems"].get(name)
            if not isinstance(system, dict) or not isinstance(system.get("state"), dict):
                raise bad(f"no state of system '{name}'")
            if not (isinstance(system.get("frames"), list) and len(system["frames"]) == replicas
                    and all(isinstance(f, int) for f in system["frames"])):
                raise bad(f"system '{name}': no list 'frames' of {replicas} counts")
            missing = [k for k in STATE_KEYS if k not in system["state"]]
            if missing:
                raise bad(f"system '{name}': the state lacks {missing}")
            state = system["state"]
            shaped = all(torch.is_tensor(state[k]) and state[k].dim() > 0 and len(state[k]) == replicas
                         for k in ("pos", "vel", "forces", "alive", "keys"))
            if not shaped or not isinstance(state["step"], int) or not isinstance(state["failures"], dict):
                raise bad(f"system '{name}': the state's tensors are not of {replicas} replicas, "
                          "or its step or failures malformed")
        return restart

    def read_record(self) -> dict[str, dict] | None:
        """Per system what ``simulation.json`` records (temperature, stopped replicas, ...), or None when there is
        none (trajectories from elsewhere)."""
        path = self.record_path
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path} is not valid JSON ({exc})") from None
        systems = record.get("systems") if isinstance(record, dict) else None
        if not isinstance(systems, dict):
            raise DatasetError(f"{path} is not a cglight simulate record (no 'systems' mapping)")
        for name, entry in systems.items():
            stopped = entry.get("stopped", {}) if isinstance(entry, dict) else None
            temperature = entry.get("temperature") if isinstance(entry, dict) else None
            if not isinstance(stopped, dict) or not all(isinstance(v, str) for v in stopped.values()) or (
                    temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float)))):
                raise DatasetError(f"{path} is not a cglight simulate record (system '{name}': 'temperature' must be a number "
                                   "and 'stopped' a mapping of replica to reason)")
        return systems

    def read_topology(self, system: str):
        """The mdtraj topology of ``<system>/topology.pdb``; refused when unreadable or without beads."""
        import mdtraj as md

        path = self.topology_path(system)
        try:
            top = md.load_topology(str(path))
        except IndexError:  # mdtraj's answer to a PDB without a model
            raise DatasetError(f"{path} holds no beads (no readable ATOM records)") from None
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"{path} cannot be read as a PDB topology ({type(exc).__name__}: {exc})") from None
        if top.n_atoms == 0:
            raise DatasetError(f"{path} holds no beads")
        return top

    @staticmethod
    def read_trajectory(path: Path, top) -> np.ndarray:
        """``[F, n, 3]`` positions (Å) of a DCD of ``top``'s beads; refused if unreadable, truncated or not finite."""
        import mdtraj as md

        from cglight.console import DCD_NOTICES, native_lines_dropped

        try:
            with native_lines_dropped(1, DCD_NOTICES, rest_to=2):  # mdtraj's C reader prints a notice per file on stdout
                xyz = md.load_dcd(str(path), top=top).xyz.astype(np.float64) * NM_TO_ANGSTROM
        except (OSError, ValueError, IndexError) as exc:
            raise DatasetError(f"{path} cannot be read as a DCD of {top.n_atoms} beads ({type(exc).__name__}: {exc})") from None
        header = dcd_header_frames(path)
        if header is not None and header > len(xyz):
            raise DatasetError(f"{path} is truncated: its header says {header} frames, the file holds {len(xyz)} complete ones")
        bad = ~np.isfinite(xyz).reshape(len(xyz), -1).all(1)
        if bad.any():
            raise DatasetError(f"{path}: {int(bad.sum())} frame(s) with non-finite positions "
                               f"(first: frame {int(np.argmax(bad))})")
        return xyz

    def trajectories(self, system: str, skip: int, top) -> dict[str, np.ndarray]:
        """Replica (as ``simulation.json`` names it) → its frames after the first ``skip``; replicas with none left out."""
        trajs = {}
        for path in self.trajectory_paths(system):
            xyz = self.read_trajectory(path, top)
            if len(xyz) > skip:
                trajs[self.replica_label(path)] = xyz[skip:]
        return trajs
