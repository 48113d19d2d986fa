"""A block of replicas of every system, integrated in one process.

``cglight simulate`` cuts the replicas of each system into contiguous blocks (the same replica
indices for every system); :func:`integrate_block` integrates one block of ALL systems together,
one batched force call per step (``CGEnergy.forces_groups``), and emits what the parent writes:

    ("tick", worker, step)                            after every saved frame
    ("flush", worker, step, frames, states)           every ``flush_every`` steps and at the end

``frames`` per system: positions ``[F, replicas, n, 3]`` (float32 Å) and alive flags
``[F, replicas]``; ``states`` per system: the block's :class:`LangevinState` as NumPy arrays
(:func:`state_arrays`). Every replica draws its noise from its own stream, keyed by its index in
the whole run, so a block follows the trajectories the replicas follow in any other split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from cglight.errors import ConfigError
from cglight.simulate.langevin import LangevinIntegrator, LangevinState, run_together
from cglight.simulate.settings import LangevinSettings


def load_energy_model(checkpoint: str, device: str, trusted_backbones: Collection[str] | None = None):
    """The trained energy model of a ``cglight fit`` checkpoint (no Lightning), in evaluation mode,
    its parameters frozen: forces need the gradient in the positions only, and a graph that also
    leads to the weights costs about 4 % of a step at 10 beads (``benchmarks/simulate_speed.py``).
    A backbone by dotted class path loads only if it is in ``trusted_backbones``."""
    from cglight.energy import CGEnergy

    model = CGEnergy.from_checkpoint(checkpoint, map_location=device, trusted_backbones=trusted_backbones)
    return model.to(device).requires_grad_(False)


def model_fingerprint(model) -> str:
    """sha256 of what defines a ``CGEnergy``'s energy: its backbone and prior settings and every entry
    of its state dict (names, dtypes, shapes, values; the fitted systems), whatever the device. A
    checkpoint saved again with the same weights (another epoch count, optimizer state) keeps it."""
    digest = hashlib.sha256()
    settings = {"backbone": asdict(model.backbone_config), "priors": asdict(model.priors_config)}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        if torch.is_tensor(value):
            value = value.detach().cpu().contiguous()
            digest.update(f"{value.dtype} {tuple(value.shape)}".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(json.dumps(value, sort_keys=True).encode())
    return digest.hexdigest()


def force_function(model, bead_types: torch.Tensor, bonds: list[list[int]] | None = None):
    """``pos [R, n, 3] -> forces`` of ``model`` for one system (no graph kept: simulation only)."""

    def forces(pos: torch.Tensor) -> torch.Tensor:
        return model.forces(pos, bead_types, bonds)

    return forces


def force_calls(sizes: list[tuple[int, int]], max_beads: int) -> list[list[tuple[int, int, int]]]:
    """How to cut systems of ``(replicas, beads)`` into backbone calls of at most ``max_beads`` beads.

    Returns one list per call of ``(system, first replica, count)`` pieces, in system and replica
    order (a replica is never cut; a replica larger than the cap gets a call of its own; a system's
    replicas are spread evenly over its calls); ``max_beads`` 0: one call for everything.
    """
    pieces = []
    for k, (replicas, beads) in enumerate(sizes):
        if not replicas:
            continue
        most = replicas if max_beads <= 0 else max(1, max_beads // max(beads, 1))  # replicas a call may hold
        per = -(-replicas // -(-replicas // most))  # as many calls as needed, evenly filled
        pieces += [(k, first, min(per, replicas - first), beads) for first in range(0, replicas, per)]
    calls, load = [], 0
    for k, first, count, beads in pieces:
        if not calls or (max_beads > 0 and load + count * beads > max_beads):
            calls.append([])
            load = 0
        calls[-1].append((k, first, count))
        load += count * beads
    return calls


def group_force_function(energy, bead_types: list[torch.Tensor], bonds: list[list[list[int]] | None] | None = None,
                         max_beads_per_call: int = 0):
    """``[pos_1 [R_1, n_1, 3], ...] -> [forces_1, ...]`` of the ``CGEnergy`` ``energy`` for several
    systems in one backbone call (no graph kept: simulation only); ``bonds`` per system, or looked up.
    A system without replicas (``R_i = 0``: all stopped) gets an empty result and no place in the call.

    ``max_beads_per_call`` > 0 cuts the replicas into several calls of at most that many beads
    (:func:`force_calls`): the backbone's brute-force neighbour search costs the square of the beads
    of a call, so on a CPU a few hundred beads per call are cheaper per replica than thousands."""
    bonds = bonds or [None] * len(bead_types)

    def forces(pos: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(pos) != len(bead_types):
            raise ValueError(f"{len(pos)} position batches for {len(bead_types)} systems")
        out = [torch.zeros_like(p) for p in pos]
        for call in force_calls([(len(p), p.shape[1]) for p in pos], max_beads_per_call):  # no empty piece or call
            computed = energy.forces_groups([(pos[k][first:first + count], bead_types[k], bonds[k]) for k, first, count in call])
            for (k, first, count), f in zip(call, computed, strict=True):
                out[k][first:first + count] = f
        return out

    return forces


def bond_check(bonds: list[list[int]], limit: float, device: str | torch.device = "cpu"):
    """``check_fn`` for :class:`LangevinIntegrator`: every CG bond shorter than ``limit`` (Å); None without bonds."""
    if len(bonds) == 0:
        return None
    b = torch.as_tensor(bonds, device=device)

    def check(pos: torch.Tensor) -> torch.Tensor:
        return (pos[:, b[:, 0]] - pos[:, b[:, 1]]).norm(dim=-1).amax(-1) < limit

    return check


def state_arrays(state: LangevinState) -> dict:
    """``state`` as NumPy arrays and plain values (what crosses a process boundary)."""
    return {k: v.detach().cpu().numpy() if torch.is_tensor(v) else v for k, v in state.state_dict().items()}


def state_tensors(d: dict, device: str | torch.device = "cpu") -> LangevinState:
    """The inverse of :func:`state_arrays` (tensors or arrays), on ``device``."""
    return LangevinState.from_state_dict({k: torch.as_tensor(v, device=device) if isinstance(v, np.ndarray | torch.Tensor) else v
                                          for k, v in d.items()})


@dataclass
class SystemSpec:
    """One system as a worker integrates it (picklable)."""

    name: str
    bead_types: list[int]
    bonds: list[list[int]]
    masses: list[float]
    """amu per bead."""
    temperature: float
    """Kelvin: the run's, else the system's data's (:meth:`LangevinSettings.at`)."""
    seed: tuple[int, ...]
    """Noise streams: replica ``r`` of this system is keyed by ``(*seed, r)``."""
    bond_limit: float
    """Å; a replica stops when a CG bond grows longer."""


@dataclass
class BlockJob:
    """Replicas ``first … first + count − 1`` of every system, from their starts or their state."""

    worker: int
    first: int
    count: int
    checkpoint: str
    device: str
    langevin: LangevinSettings
    """The run's timestep, friction and temperature (None: each system's, in its :class:`SystemSpec`)."""
    save_every: int
    flush_every: int
    steps: int
    systems: list[SystemSpec]
    max_beads_per_call: int = 0
    """Beads per backbone call (0: no cap), see :func:`group_force_function`."""
    starts: list[np.ndarray] | None = None
    """A new run: the block's starting positions ``[count, n, 3]`` per system."""
    states: list[dict] | None = None
    """A continued run: the block's state per system (:func:`state_arrays`)."""
    trusted_backbones: list[str] = field(default_factory=list)
    """Dotted class paths the checkpoint's backbone may name (:meth:`CGEnergy.from_checkpoint`)."""
    model_sha256: str = ""
    """The :func:`model_fingerprint` the parent loaded; the worker refuses a checkpoint changed since ("": no check)."""


def _integrators(model, job: BlockJob) -> tuple[list[LangevinIntegrator], list[LangevinState], Callable]:
    """The block's integrators and states (from its starts or its saved states), and its group force function."""
    integs, states, types = [], [], []
    for k, spec in enumerate(job.systems):
        types.append(torch.tensor(spec.bead_types, device=job.device))
        integ = LangevinIntegrator(force_function(model, types[-1], spec.bonds), torch.tensor(spec.masses, dtype=torch.float32),
                                   job.langevin.at(spec.temperature), seed=spec.seed,
                                   check_fn=bond_check(spec.bonds, spec.bond_limit, job.device))
        if job.states is None:
            start = torch.from_numpy(job.starts[k]).to(job.device)
            states.append(integ.init_state(start, replicas=range(job.first, job.first + job.count)))
        else:
            states.append(state_tensors(job.states[k], job.device))
        integs.append(integ)
    return integs, states, group_force_function(model, types, [s.bonds for s in job.systems], job.max_beads_per_call)


def time_steps(model, job: BlockJob, untimed: int, timed: int) -> float:
    """Seconds per step of ``job``'s block, integrated as :func:`integrate_block` does it, measured over
    ``timed`` steps after ``untimed`` ones (the first calls pay one-off costs); nothing is kept or saved."""
    import time

    integs, states, forces = _integrators(model, job)
    sync = torch.cuda.synchronize if torch.device(job.device).type == "cuda" else (lambda: None)
    run_together(integs, states, untimed, forces)
    sync()
    t0 = time.perf_counter()
    run_together(integs, states, timed, forces)
    sync()
    return (time.perf_counter() - t0) / timed


def integrate_block(job: BlockJob, emit: Callable[[tuple], None]) -> None:
    """Integrate the block up to ``job.steps``, emitting ticks, frames and states (module doc)."""
    model = load_energy_model(job.checkpoint, job.device, job.trusted_backbones)
    if job.model_sha256 and model_fingerprint(model) != job.model_sha256:
        raise ConfigError(f"simulate: {job.checkpoint} changed while the run was starting (another model at that path); "
                          "rerun the command")
    integs, states, forces = _integrators(model, job)
    step, buffer = states[0].step, []
    while step < job.steps:
        n = min(job.save_every, job.steps - step)
        run_together(integs, states, n, forces)
        step += n
        buffer.append([(st.pos.detach().cpu().numpy().astype(np.float32), st.alive.cpu().numpy().copy()) for st in states])
        emit(("tick", job.worker, step))
        if step % job.flush_every == 0 or step >= job.steps:
            frames = [(np.stack([b[k][0] for b in buffer]), np.stack([b[k][1] for b in buffer])) for k in range(len(states))]
            emit(("flush", job.worker, step, frames, [state_arrays(st) for st in states]))
            buffer = []
