"""``cglight simulate``: Langevin dynamics of a trained CG model from reference starting structures.

For every system of the starting dataset, ``replicas`` copies start from frames drawn (seeded)
from that system's reference frames. The replicas are cut into contiguous blocks, one per worker
process (``workers``; one on a GPU); each worker integrates its block of every system together,
one batched force call per step (``CGEnergy.forces_groups``: one backbone call for molecules of
different bead counts; ``cglight.simulate.block``). Every system keeps its own integrator (masses,
temperature, bond check) and every replica its own noise stream keyed by (seed, system, replica),
so a system follows the trajectory it would follow alone and the result does not depend on the
number of workers. This process gathers the frames and writes every file under ``out``
(``cglight.simulate.output.SimulationOutput``: per system a topology PDB and one DCD per replica,
``started.json``, ``restart.pt`` and ``simulation.json``).

Rerunning the same command continues from ``restart.pt`` (raise ``steps`` to run longer), with
the same model only (:func:`~cglight.simulate.block.model_fingerprint`); a run killed before
its first flush starts again from scratch. A system whose every replica stopped fails the command.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from cglight.data.manifest import read_manifest
from cglight.data.reader import start_frames
from cglight.errors import CGLightError, ConfigError
from cglight.newest_checkpoint import DEFAULT_RUNS, is_latest, resolve
from cglight.progress import progress
from cglight.simulate.block import (
    BlockJob,
    SystemSpec,
    bond_check,
    force_function,
    integrate_block,
    load_energy_model,
    model_fingerprint,
    state_arrays,
    state_tensors,
    time_steps,
)
from cglight.simulate.config import SimulateConfig
from cglight.simulate.langevin import LangevinState
from cglight.simulate.masses import bead_masses
from cglight.simulate.output import SimulationOutput
from cglight.simulate.settings import LangevinSettings
from cglight.simulate.trajectory import cg_topology
from cglight.pool import cores
from cglight.pool import even_blocks as split
from cglight.simulate.workers import run_jobs, worker_count
from cglight.units import PS_TO_NS, SECONDS_PER_DAY

log = logging.getLogger(__name__)
# settings that must not change when a run is continued
FIXED = ("checkpoint", "starts", "systems", "replicas", "timestep_fs", "friction_per_ps", "temperature", "save_every", "seed",
         "masses", "max_bond_factor")


CPU_BEADS_PER_CALL = 512


def beads_per_call(config: SimulateConfig) -> int:
    """The cap on beads per backbone call the run uses (0: none)."""
    if config.max_beads_per_call is not None:
        return config.max_beads_per_call
    return CPU_BEADS_PER_CALL if torch.device(config.torch_device()).type == "cpu" else 0


class SimulationStoppedError(CGLightError):
    """Every replica of a system stopped (blew up): the run produced no trajectory worth its steps."""


def _beginnings(output: SimulationOutput, settings: dict, names: list[str]) -> list[Path]:
    """The files a run killed before its first flush left in ``output`` (no restart state), to remove
    before it starts again; refuses an ``out`` holding anything else, or the start of another run."""
    out = output.root
    if not out.exists() or not any(out.iterdir()):
        return []
    try:
        record = output.read_started()
        changed = [k for k in FIXED if record.get(k) != settings[k]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"{out} exists, is not empty and holds no {output.RESTART} (nor a readable {output.STARTED}): "
                          "choose another 'out' or remove it") from None
    if changed:
        raise ConfigError(f"simulate: {out} holds the start of a run killed before its first flush, with different {changed}; "
                          "keep them, or remove it, or choose another 'out'")
    found = {p.relative_to(out).as_posix(): p for p in out.rglob("*")}
    foreign = sorted(f for f in found if not output.owns(f, names, settings["replicas"]))
    if foreign:
        raise ConfigError(f"{out} holds no {output.RESTART} and files cglight simulate did not write there "
                          f"({', '.join(foreign[:5])}): choose another 'out' or remove them")
    return sorted(found.values(), key=lambda p: -len(p.parts))  # files before their folders


def _start_afresh(output: SimulationOutput, leftovers: list[Path], settings: dict) -> None:
    """Remove a killed run's ``leftovers``, then record the settings of this one in ``started.json``."""
    if leftovers:
        log.info("%s holds the start of this run, killed before its first flush: starting it again", output.root)
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    output.write_started(settings)


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


def _report(run: _Run, steps: int, seconds: float | None = None, started: int = 0) -> None:
    """Warn of stopped replicas; fail when every replica of a system stopped (after every file is written);
    else the summary: what was simulated, how fast (``seconds`` of wall time for this command's steps), where it
    went, and the command that evaluates it (``started``: the step this command started from)."""
    sims, out = run.sims, run.output.root
    dead = [stopped_summary(n, s["state"]) for n, s in sims.items() if not bool(s["state"].alive.any())]
    if dead:
        raise SimulationStoppedError(
            f"simulate: {'; '.join(dead)}; {out} holds their frames up to the stops, and its restart state step {steps}; "
            f"a smaller timestep_fs (now {run.langevin.timestep_fs}), more friction or another model may keep them together"
        )
    partly = [n for n, s in sims.items() if s["state"].failures]
    for name in partly:
        log.warning("%s (simulation.json lists every one)", stopped_summary(name, sims[name]["state"]))
    for line in summary(sims, out, run.config, run.langevin, steps, seconds, started):
        log.info("%s", line)


def summary(sims: dict, out: Path, config: SimulateConfig, langevin: LangevinSettings, steps: int, seconds: float | None,
            started: int = 0) -> list[str]:
    """The closing lines of ``cglight simulate``: what, how fast (``steps - started`` steps in ``seconds``), where,
    and the next command."""
    alive = ", ".join(f"{n}: {int(s['state'].alive.sum())} of {config.replicas} replicas ran to the end" for n, s in sims.items())
    per_replica_ps = steps * langevin.timestep_ps
    took = ""
    if seconds is not None and seconds > 0 and steps > started:
        resumed = f", steps {started}-{steps}" if started else ""
        rate = ns_per_day(steps - started, seconds, langevin.timestep_ps)
        took = f" in {duration(seconds)}{resumed} ({rate:.3g} ns/day per replica)"
    lines = [f"simulated {per_replica_ps:g} ps per replica ({steps} steps of {langevin.timestep_fs:g} fs){took}; {alive}"]
    every = config.save_every * langevin.timestep_ps
    output = SimulationOutput(out)
    files = "; ".join(f"{output.trajectory_path(n, 0)} … {output.trajectory_path(n, config.replicas - 1).name} "
                      f"({'up to ' if s['state'].failures else ''}{max(s['frames'])} frames each, one every {every:g} ps) "
                      f"and {output.TOPOLOGY}" for n, s in sims.items())
    lines.append(f"wrote {files}; {output.record_path} and {output.restart_path} (rerun with more steps to continue)")
    lines.append(f"next: {evaluate_command(config.starts, out, list(sims))}")
    return lines


def evaluate_command(starts: str, out: Path, names: list[str]) -> str:
    """The ``cglight evaluate`` command for the simulation in ``out`` (with the system's config when there is one here)."""
    config = Path("configs") / "evaluate" / f"{names[0]}.yaml"
    if len(names) == 1 and config.is_file():
        return f"cglight evaluate --config {config} --reference {starts} --simulation {out}"
    return f"cglight evaluate --reference {starts} --simulation {out} --out evaluations/{out.name}"


def duration(seconds: float) -> str:
    """``seconds`` for a person: ``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def ns_per_day(steps: float, seconds: float, timestep_ps: float) -> float:
    """Simulated nanoseconds per day of wall time of one replica that made ``steps`` steps of ``timestep_ps`` in ``seconds``."""
    return steps * timestep_ps * PS_TO_NS / seconds * SECONDS_PER_DAY


class FrameRate:
    """The rate the progress bar shows: ns/day per replica from COMPLETED frames (every worker has reached
    them) and the wall time since the first of them (after the workers' start-up), so it changes only when
    a frame completes, and then smoothly (the average over the whole run so far)."""

    def __init__(self, timestep_ps: float) -> None:
        self.timestep_ps = timestep_ps
        self.first: tuple[int, float] | None = None
        self.step = -1
        self.value: float | None = None
        self.per_step = float("nan")

    def update(self, completed_step: int, now: float) -> float | None:
        """The rate after the workers have all reached ``completed_step`` (wall clock ``now``, seconds)."""
        if self.first is None:
            self.first, self.step = (completed_step, now), completed_step
        elif completed_step > self.step:
            self.step = completed_step
            step0, t0 = self.first
            if now > t0:
                self.value = ns_per_day(completed_step - step0, now - t0, self.timestep_ps)
                self.per_step = (now - t0) / (completed_step - step0)
        return self.value

    def seconds_left(self, total_steps: int) -> float:
        """Wall time to ``total_steps`` at the rate measured so far."""
        return max(0, total_steps - self.step) * self.per_step


WARMUP_STEPS = (5, 30)
"""Untimed, then timed steps of the estimate printed before a run starts (not saved)."""


def slowdown(workers: int, cores: int, load: float | None) -> float:
    """How many times longer ``workers`` single-threaded processes take than on cores of their own: they share
    the ``cores`` with each other and with the jobs already running (``load``: the 1-minute load average,
    which counts this process too)."""
    others = max(0.0, (load or 0.0) - 1.0)
    return max(1.0, (workers + others) / cores)


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform
        return None


def estimate(model, job: BlockJob, steps_left: int, workers: int) -> str:
    """One line: the wall time ``steps_left`` steps will take, from a short timed warm-up of ``job``'s block
    (the largest block, in this process, one thread: what one worker does), slowed down by the workers
    sharing the cores with each other and with other jobs (:func:`slowdown`)."""
    untimed, timed = WARMUP_STEPS
    load = _load() if torch.device(job.device).type == "cpu" else None
    per_step = time_steps(model, job, untimed, timed)
    factor = slowdown(workers, cores(), load) if torch.device(job.device).type == "cpu" else 1.0
    seconds = per_step * steps_left * factor
    shared = load is not None and factor > max(1.0, workers / cores())
    busy = f", the cores shared with other jobs (load average {load:.1f} on {cores()} cores)" if shared else ""
    rate = ns_per_day(1, per_step * factor, job.langevin.timestep_ps)
    return (f"estimated wall time: about {duration(seconds)} for {steps_left} steps ({rate:.3g} ns/day per replica; from {timed} "
            f"timed warm-up steps of {job.count} replica(s), not saved{busy}; the measured rate follows after the first frames)")


@dataclass
class _Run:
    """A run of ``cglight simulate`` once everything is checked and its outputs are open: what the integration,
    the writer and the summary share."""

    config: SimulateConfig
    """With the checkpoint resolved (``latest`` → a file)."""
    langevin: LangevinSettings
    output: SimulationOutput
    settings: dict
    """The config as recorded in ``started.json``, ``restart.pt`` and ``simulation.json``."""
    device: str
    workers: int
    specs: list[SystemSpec]
    starts: list[np.ndarray]
    """Per system the starting frames ``[replicas, n, 3]`` (a continued run starts from ``restart`` instead)."""
    sims: dict
    """Per system: its state (None before the first step), frames written per replica, topology and temperature."""
    restart: dict | None
    """The restart state continued (None: a new run)."""
    fingerprint: str
    done: int
    """The step the run starts from."""


def simulate(config: SimulateConfig) -> Path:
    """Run (or continue) the simulation described by ``config``; returns the output directory."""
    run, model = _open_run(config)
    steps = run.config.steps
    if run.done >= steps:
        log.info("%s holds %d steps already (steps: %d); nothing to do", run.output.root, run.done, steps)
        _report(run, run.done)
        return run.output.root
    blocks = split(run.config.replicas, run.workers)
    timing = estimate(model, _job(run, 0, blocks[0], from_starts=True), steps - run.done, run.workers)
    del model  # every worker loads its own
    seconds = _integrate(run, blocks, timing)
    _report(run, steps, seconds, run.done)
    return run.output.root


def _open_run(config: SimulateConfig) -> tuple[_Run, object]:
    """Check everything before a file is written (the config, the restart state, the model, every system's starts),
    then open the outputs: a new run's topologies written, a continued run's trajectories trimmed to its state.
    Returns the run and its model (loaded once here, for the checks and the estimate)."""
    asked = config.checkpoint
    if config.checkpoint:  # latest, latest:DIR: the newest last.ckpt (logged); the run records the file
        config = replace(config, checkpoint=resolve(config.checkpoint))
    langevin = config.validate()
    root = Path(config.starts)
    manifest = read_manifest(root)
    names = config.systems or list(manifest.systems)
    unknown = [n for n in names if n not in manifest.systems]
    if unknown:
        raise ConfigError(f"simulate: systems {unknown} are not in {root} (it has {sorted(manifest.systems)})")
    device = config.torch_device()
    workers = worker_count(config.workers, device, config.replicas)
    output, settings = SimulationOutput(Path(config.out)), asdict(config)
    restart, leftovers = _restart_or_leftovers(output, settings, names, asked)
    model, fingerprint = _checked_model(config, asked, names, root, restart, device)  # a bad checkpoint fails here
    specs, starts = _systems(config, langevin, manifest, names, model, device)
    if restart is None:
        _start_afresh(output, leftovers, settings)
    sims = _open_systems(output, manifest, specs, starts, restart, config.replicas)
    done = 0 if restart is None else min(s["state"].step for s in sims.values())
    run = _Run(config, langevin, output, settings, device, workers, specs, starts, sims, restart, fingerprint, done)
    return run, model


def _restart_or_leftovers(output: SimulationOutput, settings: dict, names: list[str], asked: str
                          ) -> tuple[dict | None, list[Path]]:
    """Continue or start: the restart state in ``output`` (refused when a fixed setting changed), or None and
    the files a start killed before its first flush left there (:func:`_beginnings`). ``asked``: the checkpoint
    as given (``latest`` names the file it now is in the message)."""
    if not output.restart_path.is_file():
        return None, _beginnings(output, settings, names)
    restart = output.read_restart(names, settings["replicas"])
    changed = [k for k in FIXED if restart["config"].get(k) != settings[k]]
    if changed:
        newer = ""
        if "checkpoint" in changed and asked != settings["checkpoint"]:
            before = restart["config"].get("checkpoint")
            newer = (f" ('{asked}' is {settings['checkpoint']} now, {output.root} was simulated with {before}: "
                     "give that file to continue it)")
        raise ConfigError(f"simulate: {output.root} holds a run with different {changed}{newer}; keep them or choose "
                          "another 'out'")
    return restart, []


def _checked_model(config: SimulateConfig, asked: str, names: list[str], root: Path, restart: dict | None, device: str):
    """The model of ``config.checkpoint`` and its :func:`model_fingerprint`; refuses the newest checkpoint of a run
    on other molecules (``asked``: ``latest``), and another model than the one a continued run was simulated with."""
    model = load_energy_model(config.checkpoint, device, config.trusted_backbones)
    other = [n for n in names if n not in model.systems]
    if is_latest(asked) and model.systems and other:  # the newest run was of another molecule: not the model meant
        raise ConfigError(f"simulate: checkpoint {asked} is {config.checkpoint}, a model fitted on {sorted(model.systems)}, "
                          f"not on {other} of {root}; give the checkpoint of a run on these data "
                          "(--checkpoint PATH or latest:DIR)")
    fingerprint = model_fingerprint(model)
    if restart is not None and restart["model"]["sha256"] != fingerprint:
        raise ConfigError(f"simulate: {config.checkpoint} is not the model {Path(config.out)} was simulated with (its weights or "
                          "settings changed since); continue with that model, or choose another 'out' for this one")
    return model, fingerprint


def _systems(config: SimulateConfig, langevin: LangevinSettings, manifest, names: list[str], model, device: str
             ) -> tuple[list[SystemSpec], list[np.ndarray]]:
    """Per system what a worker integrates (masses, temperature, noise seed, bond limit) and its starting frames;
    one force call on a start refuses bead types the model cannot evaluate (e.g. priors without their parameters)."""
    root, specs, starts = Path(config.starts), [], []
    for i, name in enumerate(names):
        info = manifest.systems[name]
        masses = np.asarray(config.masses, dtype=np.float64) if config.masses else bead_masses(root, name, info)
        if len(masses) != info.n_beads:
            raise ConfigError(f"simulate: {len(masses)} masses given for system '{name}' of {info.n_beads} beads")
        start = start_frames(root, manifest, name, config.replicas, config.seed + i)
        longest = max((float(np.nanmax(np.linalg.norm(start[:, a] - start[:, b], axis=-1))) for a, b in info.bonds),
                      default=0.0)
        specs.append(SystemSpec(name, list(info.bead_types), info.bonds, masses.tolist(),
                                langevin.at(info.temperature).temperature, (config.seed, i), langevin.bond_limit(longest)))
        types = torch.tensor(info.bead_types, device=device)
        force_function(model, types, info.bonds)(torch.from_numpy(start[:1]).to(device))
        starts.append(start)
    return specs, starts


def _open_systems(output: SimulationOutput, manifest, specs: list[SystemSpec], starts: list[np.ndarray],
                  restart: dict | None, replicas: int) -> dict:
    """Per system what the writer keeps (``_Run.sims``): a new run writes each topology; a continued one reads
    its state and drops the frames a run killed between the two writes of a flush appended past it."""
    sims = {}
    for spec, start in zip(specs, starts, strict=True):
        name, info = spec.name, manifest.systems[spec.name]
        (output.root / name).mkdir(parents=True, exist_ok=True)
        top = cg_topology(info.bead_names, info.bonds)
        if restart is None:
            output.write_topology(name, top, start[0])
            state, frames = None, [0] * replicas
        else:
            state = state_tensors(restart["systems"][name]["state"])
            frames = restart["systems"][name]["frames"]
            for r in range(replicas):
                output.trim(name, r, frames[r], info.n_beads)
        sims[name] = dict(state=state, frames=frames, top=top, temperature=spec.temperature)
    return sims


def _job(run: _Run, worker: int, block: range, from_starts: bool) -> BlockJob:
    """Replicas ``block`` of every system for ``worker``, from their starting frames or from the run's state."""
    c = run.config
    return BlockJob(worker, block.start, len(block), c.checkpoint, run.device, run.langevin, c.save_every, c.flush_every,
                    c.steps, run.specs, beads_per_call(c),
                    starts=[x[block.start:block.stop] for x in run.starts] if from_starts else None,
                    states=None if from_starts else [state_arrays(s["state"].block(block.start, block.stop))
                                                     for s in run.sims.values()],
                    trusted_backbones=list(c.trusted_backbones), model_sha256=run.fingerprint)


def _integrate(run: _Run, blocks: list[range], timing: str) -> float:
    """Integrate every block up to ``steps`` in the workers, this process writing; the wall time (s)."""
    jobs = [_job(run, w, b, from_starts=run.restart is None) for w, b in enumerate(blocks)]
    replicas, systems = run.config.replicas, len(run.sims)
    if run.workers > 1:
        log.info("simulating %d replicas of %d systems in %d worker processes (replicas %s)", replicas, systems,
                 run.workers, ", ".join(f"{b.start}-{b.stop - 1}" for b in blocks))
    else:
        log.info("simulating %d replicas of %d systems in one process on %s", replicas, systems, run.device)
    log.info("%s", timing)
    writer = _Writer(run, blocks)
    t0 = time.perf_counter()
    try:
        run_jobs(integrate_block, jobs, writer)
    finally:
        writer.bar.close()
    return time.perf_counter() - t0


class _Writer:
    """The parent's side: gathers the blocks' messages (``cglight.simulate.block``), draws one
    progress bar for all of them and, once every block has reached a flush step, writes that
    step's frames of every replica, then the restart state and the summary."""

    def __init__(self, run: _Run, blocks: list[range]) -> None:
        self.output, self.sims, self.settings, self.config = run.output, run.sims, run.settings, run.config
        self.blocks, self.fingerprint = blocks, run.fingerprint
        self.dt_ps = run.langevin.timestep_ps
        self.reached, self.pending = [run.done] * len(blocks), {}
        self.rate = FrameRate(run.langevin.timestep_ps)
        self.told = False  # whether the measured time left has been logged
        self.bar = progress(None, desc="simulate", unit="frame", initial=run.done // run.config.save_every,
                            total=run.config.steps // run.config.save_every)

    def __call__(self, message: tuple) -> None:
        kind, worker, step = message[:3]
        if kind == "tick":
            self.reached[worker] = step
            shown = min(self.reached) // self.config.save_every
            if shown > self.bar.n:  # a frame every worker has reached: the bar and its rate move together
                self.bar.update(shown - self.bar.n)
                rate = self.rate.update(min(self.reached), time.perf_counter())
                if rate is not None:
                    self.bar.set_postfix(ns_per_day=f"{rate:.3g}")
                    self._tell(min(self.reached))
        elif kind == "flush":
            self.pending.setdefault(step, {})[worker] = message[3:]
            if len(self.pending[step]) == len(self.blocks):
                self._flush(self.pending.pop(step))
        else:
            raise ValueError(f"unknown message {kind!r} from a simulate worker")

    def _tell(self, step: int) -> None:
        """Once a tenth of the run (at least two frames) is done: the measured rate and the time left, in the log."""
        total = self.config.steps
        if self.told or step - self.rate.first[0] < max(2 * self.config.save_every, (total - self.rate.first[0]) // 10):
            return
        self.told = True
        left = self.rate.seconds_left(total)
        if step < total:
            log.info("measured over steps %d-%d: %.3g ns/day per replica, about %s left", self.rate.first[0], step,
                     self.rate.value, duration(left))

    def _flush(self, parts: dict[int, tuple]) -> None:
        """Append the frames to the DCDs, then write the restart state atomically, then the summary."""
        ordered = [parts[w] for w in range(len(self.blocks))]
        for k, (name, s) in enumerate(self.sims.items()):
            s["state"] = LangevinState.join([state_tensors(states[k]) for _, states in ordered])
            frames = np.concatenate([f[k][0] for f, _ in ordered], axis=1)  # [F, R, n, 3]
            alive = np.concatenate([f[k][1] for f, _ in ordered], axis=1)  # [F, R]: a stopped replica's frozen frames: not saved
            for r in range(frames.shape[1]):
                if alive[:, r].any():
                    self.output.append(name, r, s["top"], frames[:, r][alive[:, r]], self.dt_ps, self.config.save_every)
                    s["frames"][r] += int(alive[:, r].sum())
        state = {"config": self.settings, "model": {"sha256": self.fingerprint},  # plain data: read with weights_only=True
                 "systems": {n: {"state": s["state"].state_dict(), "frames": s["frames"]} for n, s in self.sims.items()}}
        self.output.write_restart(state)
        summary = {
            "settings": self.settings,
            "model_sha256": self.fingerprint,
            "systems": {
                n: {"temperature": s["temperature"], "steps": s["state"].step, "frames": sum(s["frames"]),
                    "alive": int(s["state"].alive.sum()), "stopped": {str(r): why for r, why in sorted(s["state"].failures.items())}}
                for n, s in self.sims.items()
            },
        }
        self.output.write_record(summary)
