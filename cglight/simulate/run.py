"""``cglight simulate``: Langevin dynamics of a trained CG model from reference starting structures.

For every system of the starting dataset, ``replicas`` copies start from frames drawn (seeded)
from that system's reference frames. The replicas are cut into contiguous blocks, one per worker
process (``workers``; one on a GPU); each worker integrates its block of every system together,
one batched force call per step (``CGEnergy.forces_groups``: one backbone call for molecules of
different bead counts; ``cglight.simulate.block``). Every system keeps its own integrator (masses,
temperature, bond check) and every replica its own noise stream keyed by (seed, system, replica),
so a system follows the trajectory it would follow alone and the result does not depend on the
number of workers. This process gathers the frames and writes every file. Output under ``out``::

    out/<system>/topology.pdb            CG topology (one residue per bead, CG bonds as CONECT)
    out/<system>/replica-NNN.dcd         one continuous trajectory per replica (Å)
    out/started.json                     the settings, written before anything else
    out/restart.pt                       everything needed to continue (written atomically): plain data only
    out/simulation.json                  the settings; per system its temperature (K), the steps done
                                         and any stopped replicas

Rerunning the same command continues from ``restart.pt`` (raise ``steps`` to run longer), with
the same model only (:func:`~cglight.simulate.block.model_fingerprint`); a run killed before
its first flush starts again from scratch. A system whose every replica stopped fails the command.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cglight.data.manifest import read_manifest
from cglight.energy.core import load_plain
from cglight.errors import CGLightError, ConfigError
from cglight.progress import progress
from cglight.simulate.block import (  # noqa: F401 - force_function, bond_check, ...: the public helpers, also from here
    BlockJob,
    SystemSpec,
    bond_check,
    force_function,
    group_force_function,
    integrate_block,
    load_energy_model,
    model_fingerprint,
    state_arrays,
    state_tensors,
)
from cglight.simulate.config import SimulateConfig
from cglight.simulate.langevin import LangevinState
from cglight.simulate.masses import bead_masses
from cglight.simulate.trajectory import append_frames, cg_topology, dcd_frames, trim_dcd, write_topology_pdb
from cglight.simulate.workers import run_jobs, split, worker_count

log = logging.getLogger(__name__)
RESTART = "restart.pt"
STARTED = "started.json"
STATE_KEYS = ("pos", "vel", "forces", "step", "alive", "failures", "keys")
# settings that must not change when a run is continued
FIXED = ("checkpoint", "starts", "systems", "replicas", "timestep_fs", "friction_per_ps", "temperature", "save_every", "seed",
         "masses", "max_bond_factor")


CPU_BEADS_PER_CALL = 512


def beads_per_call(config: SimulateConfig) -> int:
    """The cap on beads per backbone call the run uses (0: none)."""
    if config.max_beads_per_call is not None:
        return config.max_beads_per_call
    return CPU_BEADS_PER_CALL if torch.device(config.torch_device()).type == "cpu" else 0


def _starts(root: Path, manifest, name: str, replicas: int, seed: int) -> np.ndarray:
    from cglight.data import keys
    from cglight.data.shards import shard_file

    shards = [s for s in manifest.shards if s.system == name]
    total = sum(s.frames for s in shards)
    if total == 0:
        raise ConfigError(f"{root}: system '{name}' has no frames to start from")
    picks = np.sort(np.random.default_rng([seed, 7]).choice(total, size=replicas, replace=total < replicas))
    pos, offset = [], 0
    for s in shards:
        local = picks[(picks >= offset) & (picks < offset + s.frames)] - offset
        if len(local):
            with shard_file(root / s.path) as f:
                pos.append(f[keys.POS][np.unique(local)][np.searchsorted(np.unique(local), local)])
        offset += s.frames
    return np.concatenate(pos).astype(np.float32)




class SimulationStoppedError(CGLightError):
    """Every replica of a system stopped (blew up): the run produced no trajectory worth its steps."""


def read_restart(path: Path, names: list[str], replicas: int) -> dict:
    """The restart state at ``path``, read as plain data (``torch.load(weights_only=True)``: no
    code runs), its layout checked for ``names`` of ``replicas`` replicas each."""
    restart = load_plain(path, "cpu", f"{RESTART} holds plain data only; continue in another 'out'")

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{path}: not a cglight restart state ({what}); continue in another 'out'")

    if not (isinstance(restart, dict) and isinstance(restart.get("config"), dict) and isinstance(restart.get("systems"), dict)):
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
            raise bad(f"system '{name}': the state's tensors are not of {replicas} replicas, or its step or failures malformed")
    return restart


def _beginnings(out: Path, settings: dict, names: list[str]) -> list[Path]:
    """The files a run killed before its first flush left in ``out`` (no restart state), to remove
    before it starts again; refuses an ``out`` holding anything else, or the start of another run."""
    if not out.exists() or not any(out.iterdir()):
        return []
    started = out / STARTED
    try:
        record = json.loads(started.read_text())["settings"]
        changed = [k for k in FIXED if record.get(k) != settings[k]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"{out} exists, is not empty and holds no {RESTART} (nor a readable {STARTED}): "
                          "choose another 'out' or remove it") from None
    if changed:
        raise ConfigError(f"simulate: {out} holds the start of a run killed before its first flush, with different {changed}; "
                          "keep them, or remove it, or choose another 'out'")
    ours = {STARTED, RESTART + ".tmp", "simulation.json.tmp"}
    for name in names:
        ours |= {name, f"{name}/topology.pdb", f"{name}/topology.pdb.tmp"}
        ours |= {f"{name}/replica-{r:03d}.dcd" for r in range(settings["replicas"])}
    found = {p.relative_to(out).as_posix(): p for p in out.rglob("*")}
    foreign = sorted(set(found) - ours)
    if foreign:
        raise ConfigError(f"{out} holds no {RESTART} and files cglight simulate did not write there ({', '.join(foreign[:5])}): "
                          "choose another 'out' or remove them")
    return sorted(found.values(), key=lambda p: -len(p.parts))  # files before their folders


def _start_afresh(out: Path, leftovers: list[Path], settings: dict) -> None:
    """Remove a killed run's ``leftovers``, then record the settings of this one in ``out/started.json``."""
    if leftovers:
        log.info("%s holds the start of this run, killed before its first flush: starting it again", out)
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (STARTED + ".tmp")
    tmp.write_text(json.dumps({"settings": settings}, indent=2) + "\n")
    os.replace(tmp, out / STARTED)


def stopped_summary(name: str, state: LangevinState) -> str:
    """One line: how many replicas of system ``name`` stopped, at which steps and why."""
    stopped = []
    for r, why in sorted(state.failures.items()):
        found = re.fullmatch(r"step (\d+): (.*)", why)
        stopped.append((r, int(found.group(1)), found.group(2)) if found else (r, -1, why))
    if len(stopped) <= 6:
        detail = "; ".join(f"replica {r} at step {step}: {why}" for r, step, why in stopped)
    else:
        groups: dict[str, list[int]] = {}
        for _, step, why in stopped:
            groups.setdefault(why, []).append(step)
        detail = "; ".join(f"{len(steps)} at steps {min(steps)}-{max(steps)}: {why}" for why, steps in groups.items())
    total = len(state.alive)
    if not bool(state.alive.any()):
        return f"every replica of system '{name}' stopped ({len(stopped)} of {total}: {detail})"
    return f"{len(stopped)} of {total} replicas of system '{name}' stopped: {detail}"


def _report(sims: dict, out: Path, config: SimulateConfig, steps: int) -> None:
    """Warn of stopped replicas; fail when every replica of a system stopped (after every file is written)."""
    dead = [stopped_summary(n, s["state"]) for n, s in sims.items() if not bool(s["state"].alive.any())]
    if dead:
        raise SimulationStoppedError(
            f"simulate: {'; '.join(dead)}; {out} holds their frames up to the stops, and its restart state step {steps}; "
            f"a smaller timestep_fs (now {config.timestep_fs}), more friction or another model may keep them together"
        )
    partly = [n for n, s in sims.items() if s["state"].failures]
    for name in partly:
        log.warning("%s (simulation.json lists every one)", stopped_summary(name, sims[name]["state"]))
    note = f" (stopped replicas in {', '.join(partly)}, see above)" if partly else ""
    log.info("simulated %s for %d steps into %s%s", ", ".join(sims), steps, out, note)


def simulate(config: SimulateConfig) -> Path:
    """Run (or continue) the simulation described by ``config``; returns the output directory."""
    config.validate()
    root, out = Path(config.starts), Path(config.out)
    manifest = read_manifest(root)
    names = config.systems or list(manifest.systems)
    unknown = [n for n in names if n not in manifest.systems]
    if unknown:
        raise ConfigError(f"simulate: systems {unknown} are not in {root} (it has {sorted(manifest.systems)})")
    device = config.torch_device()
    workers = worker_count(config.workers, device, config.replicas)
    restart_path = out / RESTART
    settings = asdict(config)
    restart = read_restart(restart_path, names, config.replicas) if restart_path.is_file() else None
    leftovers = _beginnings(out, settings, names) if restart is None else []
    if restart is not None:
        changed = [k for k in FIXED if restart["config"].get(k) != settings[k]]
        if changed:
            raise ConfigError(f"simulate: {out} holds a run with different {changed}; keep them or choose another 'out'")
    sims, specs, starts = {}, [], []
    # a bad checkpoint fails here, before any file is written
    model = load_energy_model(config.checkpoint, device, config.trusted_backbones)
    fingerprint = model_fingerprint(model)
    if restart is not None and restart["model"]["sha256"] != fingerprint:
        raise ConfigError(f"simulate: {config.checkpoint} is not the model {out} was simulated with (its weights or settings "
                          "changed since); continue with that model, or choose another 'out' for this one")
    for i, name in enumerate(names):
        info = manifest.systems[name]
        masses = np.asarray(config.masses, dtype=np.float64) if config.masses else bead_masses(root, name, info)
        if len(masses) != info.n_beads:
            raise ConfigError(f"simulate: {len(masses)} masses given for system '{name}' of {info.n_beads} beads")
        start = _starts(root, manifest, name, config.replicas, config.seed + i)
        limit = config.max_bond_factor * max(
            (float(np.nanmax(np.linalg.norm(start[:, a] - start[:, b], axis=-1))) for a, b in info.bonds), default=0.0
        )
        temperature = info.temperature if config.temperature is None else config.temperature
        specs.append(SystemSpec(name, list(info.bead_types), info.bonds, masses.tolist(), temperature, (config.seed, i), limit))
        # so do bead types the model cannot evaluate (e.g. priors without their parameters)
        types = torch.tensor(info.bead_types, device=device)
        force_function(model, types, info.bonds)(torch.from_numpy(start[:1]).to(device))
        starts.append(start)
    del model  # every worker loads its own
    if restart is None:
        _start_afresh(out, leftovers, settings)
    for name, start, spec in zip(names, starts, specs, strict=True):
        info = manifest.systems[name]
        (out / name).mkdir(parents=True, exist_ok=True)
        top = cg_topology(info.bead_names, info.bonds)
        if restart is None:
            write_topology_pdb(out / name / "topology.pdb", top, start[0])
            state, frames = None, [0] * config.replicas
        else:
            state = state_tensors(restart["systems"][name]["state"])
            frames = restart["systems"][name]["frames"]
            for r in range(config.replicas):  # a run killed between the two writes: drop the extra frames
                path = out / name / f"replica-{r:03d}.dcd"
                if dcd_frames(path) > frames[r]:
                    trim_dcd(path, frames[r], info.n_beads)
        sims[name] = dict(state=state, frames=frames, top=top, temperature=spec.temperature)

    done = 0 if restart is None else min(s["state"].step for s in sims.values())
    if done >= config.steps:
        log.info("%s holds %d steps already (steps: %d); nothing to do", out, done, config.steps)
        _report(sims, out, config, done)
        return out
    blocks = split(config.replicas, workers)
    jobs = [
        BlockJob(w, b.start, len(b), config.checkpoint, device, config.timestep_fs, config.friction_per_ps,
                 config.save_every, config.flush_every, config.steps, specs, beads_per_call(config),
                 starts=[x[b.start:b.stop] for x in starts] if restart is None else None,
                 states=None if restart is None else [state_arrays(s["state"].block(b.start, b.stop)) for s in sims.values()],
                 trusted_backbones=list(config.trusted_backbones), model_sha256=fingerprint)
        for w, b in enumerate(blocks)
    ]
    if workers > 1:
        log.info("simulating %d replicas of %d systems in %d worker processes (replicas %s)", config.replicas, len(sims),
                 workers, ", ".join(f"{b.start}-{b.stop - 1}" for b in blocks))
    else:
        log.info("simulating %d replicas of %d systems in one process on %s", config.replicas, len(sims), device)
    writer = _Writer(out, sims, settings, config, blocks, done, fingerprint)
    try:
        run_jobs(integrate_block, jobs, writer)
    finally:
        writer.bar.close()
    _report(sims, out, config, config.steps)
    return out


class _Writer:
    """The parent's side: gathers the blocks' messages (``cglight.simulate.block``), draws one
    progress bar for all of them and, once every block has reached a flush step, writes that
    step's frames of every replica, then the restart state and the summary."""

    def __init__(self, out: Path, sims: dict, settings: dict, config: SimulateConfig, blocks: list[range], done: int,
                 fingerprint: str) -> None:
        self.out, self.sims, self.settings, self.config, self.blocks = out, sims, settings, config, blocks
        self.fingerprint = fingerprint
        self.dt_ps = config.timestep_fs * 1e-3
        self.reached, self.pending = [done] * len(blocks), {}
        self.t0, self.done = time.perf_counter(), done
        self.bar = progress(None, desc="simulate", unit="frame", initial=done // config.save_every,
                            total=config.steps // config.save_every)

    def __call__(self, message: tuple) -> None:
        kind, worker, step = message[:3]
        if kind == "tick":
            self.reached[worker] = step
            shown = min(self.reached) // self.config.save_every
            if shown > self.bar.n:
                self.bar.update(shown - self.bar.n)
            elapsed = time.perf_counter() - self.t0
            if elapsed > 0:  # each replica's rate (the blocks run side by side)
                steps = sum(self.reached) / len(self.reached) - self.done
                self.bar.set_postfix(ns_per_day=f"{steps * self.dt_ps * 1e-3 / elapsed * 86400:.2f}")
        elif kind == "flush":
            self.pending.setdefault(step, {})[worker] = message[3:]
            if len(self.pending[step]) == len(self.blocks):
                self._flush(self.pending.pop(step))
        else:
            raise ValueError(f"unknown message {kind!r} from a simulate worker")

    def _flush(self, parts: dict[int, tuple]) -> None:
        """Append the frames to the DCDs, then write the restart state atomically, then the summary."""
        ordered = [parts[w] for w in range(len(self.blocks))]
        for k, (name, s) in enumerate(self.sims.items()):
            s["state"] = LangevinState.join([state_tensors(states[k]) for _, states in ordered])
            frames = np.concatenate([f[k][0] for f, _ in ordered], axis=1)  # [F, R, n, 3]
            alive = np.concatenate([f[k][1] for f, _ in ordered], axis=1)  # [F, R]: a stopped replica's frozen frames: not saved
            for r in range(frames.shape[1]):
                if alive[:, r].any():
                    append_frames(self.out / name / f"replica-{r:03d}.dcd", s["top"], frames[:, r][alive[:, r]], self.dt_ps,
                                  self.config.save_every)
                    s["frames"][r] += int(alive[:, r].sum())
        state = {"config": self.settings, "model": {"sha256": self.fingerprint},  # plain data: read with weights_only=True
                 "systems": {n: {"state": s["state"].state_dict(), "frames": s["frames"]} for n, s in self.sims.items()}}
        tmp = self.out / (RESTART + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.out / RESTART)
        summary = {
            "settings": self.settings,
            "model_sha256": self.fingerprint,
            "systems": {
                n: {"temperature": s["temperature"], "steps": s["state"].step, "frames": sum(s["frames"]),
                    "alive": int(s["state"].alive.sum()), "stopped": {str(r): why for r, why in sorted(s["state"].failures.items())}}
                for n, s in self.sims.items()
            },
        }
        tmp = self.out / "simulation.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, self.out / "simulation.json")
